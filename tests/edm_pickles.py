"""Files with the structure of the released EDM / PFGM++ networks, written by this package's own code (test
fixtures; never files of the original code).

A network is written as torch_utils.persistence pickles it: every layer of an EDMPrecond around a SongUNet is
the call _reconstruct_persistent_obj(meta), meta = its class name, its state (init arguments, parameters,
buffers, submodules) and a module source; enc / dec are torch.nn.ModuleDicts. The source here is a payload
that creates the file $PFGM_PAYLOAD_MARKER if it is ever executed. Files: EDM's network-snapshot (pickle.dump
of a dict with `ema`) or PFGM++'s training-state (torch.save of a dict with `ema`, `net`, `optimizer_state`,
`step`).

    python tests/edm_pickles.py --config CONFIG --checkpoint CKPT --out training-state-N.pt [--D 128]

writes a trained checkpoint of this package's SongUNet (its EMA weights) in PFGM++'s layout (docs/published.md
samples a picture from it after tools/import_checkpoint.py).
"""
import math
import os
import pickle
import sys
import types

import torch

PAYLOAD = "import os\nopen(os.environ['PFGM_PAYLOAD_MARKER'], 'w').write('executed')\n"


def _reconstruct_persistent_obj(meta):  # never called: the importer must not resolve it to this
    raise AssertionError("the original reconstruct function was called")


class Node(torch.nn.Module):
    """A module that pickles as a torch_utils.persistence object of class `name`."""

    def __init__(self, name, **attrs):
        super().__init__()
        object.__setattr__(self, "_fixture_class", name)
        for k, v in attrs.items():
            setattr(self, k, v)

    def __reduce_ex__(self, protocol):
        state = {k: v for k, v in self.__dict__.items() if k != "_fixture_class"}
        meta = dict(type="class", version=6, module_src=PAYLOAD, class_name=self._fixture_class, state=state)
        return _reconstruct_persistent_obj, (meta,)


def as_nodes(module):
    """The same tree of parameters, buffers and submodules, each layer a Node named by its class."""
    if isinstance(module, torch.nn.ModuleDict):
        return torch.nn.ModuleDict({k: as_nodes(v) for k, v in module.items()})
    node = Node(type(module).__name__)
    for name, p in module._parameters.items():
        node._parameters[name] = p
    for name, b in module._buffers.items():
        node._buffers[name] = b
    for name, child in module._modules.items():
        node._modules[name] = None if child is None else as_nodes(child)
    return node


ARCH_KEYS = ("augment_dim", "model_channels", "channel_mult", "channel_mult_emb", "num_blocks", "attn_resolutions",
             "dropout", "label_dropout", "embedding_type", "channel_mult_noise", "encoder_type", "decoder_type",
             "resample_filter")


def precond_tree(unet, config, pfgmpp=True, D=128, unet_class="SongUNet", precond_class="EDMPrecond"):
    """An EDMPrecond-like Node tree around this package's SongUNet `unet` built from `config` (pfgmpp None:
    EDM's own EDMPrecond, which has no pfgmpp / D)."""
    m, res, ch = config.model, config.data.image_size, config.data.num_channels
    node = as_nodes(unet)
    object.__setattr__(node, "_fixture_class", unet_class)
    node._init_args = ()
    node._init_kwargs = dict(img_resolution=res, in_channels=ch, out_channels=ch, label_dim=m.label_dim,
                             **{k: list(m[k]) if isinstance(m[k], tuple) else m[k] for k in ARCH_KEYS})
    extra = dict(pfgmpp=pfgmpp, D=D, N=ch * res * res) if pfgmpp is not None else {}
    top = Node(precond_class, img_resolution=res, img_channels=ch, label_dim=m.label_dim, use_fp16=False, sigma_min=0,
               sigma_max=math.inf, sigma_data=float(m.sigma_data), _init_args=(),
               _init_kwargs=dict(model_type=unet_class), **extra)
    top._modules["model"] = node
    return top


def write(path, top, kind, step=12345):
    """EDM's snapshot (kind 'pkl': pickle.dump of a dict) or PFGM++'s training state ('pt': torch.save)."""
    pkg, mod = types.ModuleType("torch_utils"), types.ModuleType("torch_utils.persistence")
    _reconstruct_persistent_obj.__module__ = "torch_utils.persistence"
    mod._reconstruct_persistent_obj, pkg.persistence = _reconstruct_persistent_obj, mod
    saved = {n: sys.modules.get(n) for n in ("torch_utils", "torch_utils.persistence")}
    sys.modules.update({"torch_utils": pkg, "torch_utils.persistence": mod})
    try:
        if kind == "pkl":
            with open(path, "wb") as f:
                pickle.dump(dict(ema=top, loss_fn=None, augment_pipe=None, dataset_kwargs=dict(path="x.zip")), f)
        else:
            opt = torch.optim.Adam(top.parameters())
            torch.save(dict(optimizer_state=opt.state_dict(), step=step, ema=top, net=top), path)
    finally:
        for n, m in saved.items():
            if m is None:
                sys.modules.pop(n, None)
            else:
                sys.modules[n] = m
    return path


def main():
    import argparse

    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from pfgm import checkpoint
    from pfgm.run_utils import load_config_file

    parser = argparse.ArgumentParser(description="a SongUNet checkpoint written in PFGM++'s training-state layout")
    parser.add_argument("--config", required=True)
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--D", type=float, default=None, help="D written to the file (default: the config's)")
    args = parser.parse_args()
    config = load_config_file(args.config)
    config.device = "cpu"
    model = checkpoint.load_ema_model(config, args.checkpoint, "cpu")
    d = config.training.aug_dim if args.D is None else args.D
    top = precond_tree(model, config, pfgmpp=not math.isinf(d), D=int(d) if not math.isinf(d) else 128)
    step = checkpoint.read_checkpoint(args.checkpoint)["step"]
    write(args.out, top, "pt", step=int(step) * config.training.batch_size)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
