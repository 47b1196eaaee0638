"""Released EDM / PFGM++ networks imported as this package's SongUNet and PFGM++ method, without running
their code (the file is read by pfgm.safe_pickle).

Read: the `ema` entry of EDM's `network-snapshot-*.pkl` (a pickled dict) or of PFGM++'s
`training-state-*.pt` (a torch.save dict whose `ema` / `net` are whole modules): an `EDMPrecond` around a
`SongUNet`. Mapped: EDMPrecond's img_resolution, img_channels, label_dim, sigma_min, sigma_max, sigma_data and,
for PFGM++'s, pfgmpp / D (D = inf when pfgmpp is off and for EDM's own, the diffusion limit); SongUNet's init
arguments (EDM's defaults where absent) to the model.* keys of configs/default_songunet.set_songunet. Written:
DIR/config.py (a config file for --config) and DIR/checkpoints/checkpoint_<step>.pth in this package's
layout (weights only), so `python -m pfgm.main --config DIR/config.py --workdir DIR --mode eval` samples from it.
"""
import math
import os
import re

import torch

from pfgm import checkpoint, files, models, run_config
from pfgm.models.ema import ExponentialMovingAverage
from pfgm.run_utils import load_config_file
from pfgm.safe_pickle import Persistent, PlainModule, UnsafePickle, load

# SongUNet's keyword defaults in EDM's training/networks.py (the init arguments a pickle may leave out).
SONGUNET_DEFAULTS = dict(label_dim=0, augment_dim=0, model_channels=128, channel_mult=[1, 2, 2, 2], channel_mult_emb=4,
                         num_blocks=4, attn_resolutions=[16], dropout=0.10, label_dropout=0,
                         embedding_type="positional", channel_mult_noise=1, encoder_type="standard",
                         decoder_type="standard", resample_filter=[1, 1])
SONGUNET_POSITIONAL = ("img_resolution", "in_channels", "out_channels") + tuple(SONGUNET_DEFAULTS)
# EDM's sampler clamps its schedule to [0.002, 80] within what the network supports (generate.py).
SAMPLER_SIGMA_MIN, SAMPLER_SIGMA_MAX = 0.002, 80.0


class PublishedError(ValueError):
    """A file that cannot be imported; the message names the problem."""


def state_dict_of(node, prefix=""):
    """The state_dict (name -> tensor) of a pickled module tree: parameters, persistent buffers, submodules."""
    if not isinstance(node, (Persistent, PlainModule)):
        raise PublishedError(f"{prefix or 'the network'}: expected a module, found {type(node).__name__}")
    state = node.state
    out = {}
    for name, t in (state.get("_parameters") or {}).items():
        if t is not None:
            out[prefix + name] = t
    skip = state.get("_non_persistent_buffers_set") or set()
    for name, t in (state.get("_buffers") or {}).items():
        if t is not None and name not in skip:
            out[prefix + name] = t
    for name, child in (state.get("_modules") or {}).items():
        if child is not None:
            out.update(state_dict_of(child, f"{prefix}{name}."))
    return out


def _init_kwargs(node):
    state = node.state
    kwargs = dict(zip(SONGUNET_POSITIONAL, state.get("_init_args") or ()))
    kwargs.update(state.get("_init_kwargs") or {})
    if not kwargs:
        raise PublishedError(f"{node.class_name}: its init arguments are not in the file")
    return kwargs


def describe(top):
    """(settings, weights) of the EDMPrecond(SongUNet) found under `top['ema']`."""
    if not isinstance(top, dict) or "ema" not in top:
        raise PublishedError("no 'ema' entry (expected EDM's network-snapshot-*.pkl or PFGM++'s training-state-*.pt)")
    net = top["ema"]
    if not isinstance(net, Persistent) or net.class_name != "EDMPrecond":
        name = getattr(net, "class_name", type(net).__name__)
        raise PublishedError(f"'ema' is a {name}; only EDMPrecond (EDM / PFGM++ preconditioning) is imported")
    unet = (net.state.get("_modules") or {}).get("model")
    if not isinstance(unet, Persistent) or unet.class_name != "SongUNet":
        name = getattr(unet, "class_name", type(unet).__name__)
        raise PublishedError(f"EDMPrecond.model is a {name}; only SongUNet (DDPM++ / NCSN++) is imported")
    s = net.state
    if s.get("pfgm"):  # PFGM++'s code before 2023-02-13: a network with a z output, not PFGM++ (nor EDM)
        raise PublishedError("EDMPrecond has pfgm = True (the pre-release PFGM variant of PFGM++'s code, whose "
                             "network also predicts E_z): not PFGM++ nor EDM, not imported")
    arch = dict(SONGUNET_DEFAULTS, **_init_kwargs(unet))
    settings = dict(resolution=int(s["img_resolution"]), channels=int(s["img_channels"]),
                    label_dim=int(s.get("label_dim", 0)), sigma_min=float(s.get("sigma_min", 0.0)),
                    sigma_max=float(s.get("sigma_max", math.inf)), sigma_data=float(s.get("sigma_data", 0.5)),
                    # the flag was named pfgmv2 in PFGM++'s code until 2023-02-07; EDM's own has neither
                    D=int(s["D"]) if s.get("pfgmpp") or s.get("pfgmv2") else math.inf)
    if arch.get("in_channels", settings["channels"]) != settings["channels"] or \
            arch.get("out_channels", settings["channels"]) != settings["channels"]:
        raise PublishedError("SongUNet's in/out channels differ from EDMPrecond's img_channels")
    settings["arch"] = {k: arch[k] for k in SONGUNET_DEFAULTS if k != "label_dim"}
    weights = {k[len("model."):]: v for k, v in state_dict_of(net).items() if k.startswith("model.")}
    return settings, weights


def _literal(value):
    if isinstance(value, float) and math.isinf(value):
        return "math.inf"
    if isinstance(value, (list, tuple)):
        return "(" + "".join(f"{_literal(v)}, " for v in value) + ")"
    return repr(value)


def config_text(settings, source, data_root=""):
    """DIR/config.py for the imported network: the data set's PFGM++ defaults, the SongUNet keys, D, the
    preconditioning's sigma_data and EDM's sampler range within the network's."""
    res, ch = settings["resolution"], settings["channels"]
    if (res, ch) == (8, 1):
        base, data = "configs.default_digits_configs", {}
    else:
        base = "configs.default_cifar10_configs"
        data = {} if (res, ch) == (32, 3) else dict(dataset="folder", image_size=res, num_channels=ch)
        data["root"] = data_root
    arch = dict(settings["arch"], label_dim=settings["label_dim"])
    lines = [f'"""Imported by tools/import_checkpoint.py from {os.path.basename(source)}: EDMPrecond(SongUNet),',
             f'D = {settings["D"]}, {res}x{res}x{ch}, label_dim {settings["label_dim"]}; eval samples from it."""',
             "import math", "", "from configs.default_songunet import set_songunet",
             f"from {base} import get_pfgmpp_config", "", "", "def get_config():",
             f"    config = get_pfgmpp_config(aug_dim={_literal(settings['D'])})"]
    lines += [f"    config.data.{k} = {_literal(v)}" for k, v in data.items()]
    lines.append("    set_songunet(config.model, 'ncsnpp',")
    lines += [f"                 {k}={_literal(v)}," for k, v in arch.items()]
    lines[-1] = lines[-1][:-1] + ")"
    lines += [f"    config.model.sigma_data = {settings['sigma_data']!r}",
              f"    config.sampling.sigma_min = {max(SAMPLER_SIGMA_MIN, settings['sigma_min'])!r}",
              f"    config.sampling.sigma_max = {min(SAMPLER_SIGMA_MAX, settings['sigma_max'])!r}",
              "    config.eval.enable_loss = False   # the imported file holds no data",
              "    config.eval.begin_ckpt = config.eval.end_ckpt = -1   # the newest: the step is the file's",
              "    return config", ""]
    return "\n".join(lines)


def _step(top, source):
    step = top.get("step")
    if isinstance(step, torch.Tensor):
        step = step.item()
    if isinstance(step, int) and step >= 0:
        return step
    found = re.findall(r"\d+", os.path.basename(source))
    return int(found[-1]) if found else 0


def import_checkpoint(source, workdir, data_root=""):
    """Read `source`, write workdir/config.py and workdir/checkpoints/checkpoint_<step>.pth; return
    (config path, checkpoint path, settings). Refuses (PublishedError) before writing anything when the
    file is not an EDMPrecond(SongUNet) or the workdir already holds a config or checkpoints."""
    if not os.path.isfile(source):
        raise PublishedError("no such file")
    try:
        top = load(source)
    except UnsafePickle as e:
        raise PublishedError(str(e)) from None
    try:
        settings, weights = describe(top)
    except (KeyError, TypeError, ValueError) as e:
        if isinstance(e, PublishedError):
            raise
        raise PublishedError(f"EDMPrecond's pickled state is incomplete or malformed ({type(e).__name__}: {e})") from None
    config_path = os.path.join(workdir, "config.py")
    if os.path.exists(config_path) or checkpoint.list_checkpoints(workdir):
        raise PublishedError(f"{workdir}: already holds a config.py or checkpoints; choose an empty --workdir")
    os.makedirs(os.path.join(workdir, "checkpoints"), exist_ok=True)
    text = config_text(settings, source, data_root)

    def write(tmp):
        with open(tmp, "w") as f:
            f.write(text)
    files.atomic_write(config_path, write)
    try:
        config = load_config_file(config_path)
        config.device = "cpu"
        model = models.build(config, "cpu")
        own = model.state_dict()
        if set(own) != set(weights) or any(own[k].shape != weights[k].shape for k in own):
            diff = sorted(set(own) ^ set(weights))[:3] or [k for k in own if own[k].shape != weights[k].shape][:3]
            raise PublishedError(f"the SongUNet weights do not fit its init arguments (first differences: {diff})")
        model.load_state_dict({k: v.float() for k, v in weights.items()}, strict=True)
    except Exception:
        os.remove(config_path)
        raise
    path = checkpoint.checkpoint_path(workdir, _step(top, source))
    ema = ExponentialMovingAverage(model, config.model.ema_rate)
    # the config's record, as training writes it: eval then checks the network against DIR/config.py
    checkpoint.atomic_save(dict(model=model.state_dict(), ema=ema.state_dict(), step=_step(top, source),
                                **{run_config.ENTRY: run_config.record(config)}), path)
    return config_path, path, settings
