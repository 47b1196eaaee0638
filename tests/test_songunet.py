"""EDM's SongUNet (model.name = 'songunet'): the original's state_dict layout, and its outputs under fixed
weights against outputs recorded from the original code.

tests/data/edm-songunet-state-dicts.json: name -> shape of `EDMPrecond.model` of NVlabs/edm (the SongUNet
of EDM's train.py --arch ncsnpp / ddpmpp), read off the original. tests/data/songunet-reference.npz: for
three tiny SongUNets (TINY), the original's outputs F = SongUNet(x, c_noise, class_labels, augment_labels) and
D = EDMPrecond(x, sigma, ...) with the weights of `seeded_state` and the inputs of `reference_inputs`, recorded
by running the original code outside the repository (its SongUNet loaded with the same state dict).
"""
import json
import math
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import shipped_config
from configs.default_songunet import set_songunet
from pfgm import models, pfgmpp
from pfgm.models.songunet import SongUNet
from pfgm.sampling import per_sample

DATA = Path(__file__).resolve().parent / "data"
LAYOUTS = json.loads((DATA / "edm-songunet-state-dicts.json").read_text())

# EDM's train.py: --arch ncsnpp / ddpmpp at CIFAR-10 (conditional, with the augmentation labels) and FFHQ-64.
RELEASED = {
    "edm-ncsnpp-cifar10-cond": ("ncsnpp", 32, dict(label_dim=10, augment_dim=9)),
    "edm-ddpmpp-cifar10": ("ddpmpp", 32, dict(augment_dim=9)),
    "edm-ddpmpp-ffhq64": ("ddpmpp", 64, dict(augment_dim=9, channel_mult=(1, 2, 2, 2), dropout=0.05)),
}

# Tiny SongUNets covering every branch: NCSN++ (Fourier, residual encoder, labels, augmentation), DDPM++
# (positional, standard) and the skip encoder / decoder.
TINY = {
    "ncsnpp": dict(res=16, channels=3, label_dim=3, augment_dim=9, model_channels=16, channel_mult=[1, 2, 2],
                   num_blocks=1, attn_resolutions=[8], embedding_type="fourier", channel_mult_noise=2,
                   encoder_type="residual", decoder_type="standard", resample_filter=[1, 3, 3, 1]),
    "ddpmpp": dict(res=8, channels=1, label_dim=0, augment_dim=0, model_channels=16, channel_mult=[1, 2],
                   num_blocks=2, attn_resolutions=[4], embedding_type="positional", channel_mult_noise=1,
                   encoder_type="standard", decoder_type="standard", resample_filter=[1, 1]),
    "skip": dict(res=16, channels=3, label_dim=2, augment_dim=0, model_channels=16, channel_mult=[1, 1, 2],
                 num_blocks=1, attn_resolutions=[4], embedding_type="positional", channel_mult_noise=1,
                 encoder_type="skip", decoder_type="skip", resample_filter=[1, 3, 3, 1]),
}
SIGMAS = (0.02, 1.0, 50.0)


def seeded_state(shapes, seed=0):
    """Weights from a rule both sides reproduce: each tensor N(0, 1) from a generator seeded by its name,
    scaled by 1 / sqrt(fan-in) (matrices, kernels), around 1 (norm weights), by 2 (Fourier frequencies) or by
    0.1 (biases). The resampling filters are fixed by the configuration, not weights: left out."""
    state = {}
    for name, shape in shapes.items():
        if name.endswith("resample_filter"):
            continue
        g = torch.Generator().manual_seed(seed * 1000003 + zlib.crc32(name.encode()))
        t = torch.randn(tuple(shape), generator=g)
        if len(shape) > 1:
            t = t / math.sqrt(math.prod(shape[1:]))
        elif name.endswith("freqs"):
            t = 2 * t
        elif ".norm" in name and name.endswith("weight") or "aux_norm.weight" in name:
            t = 1 + 0.1 * t
        else:
            t = 0.1 * t
        state[name] = t
    return state


def reference_inputs(tiny):
    """x (3, C, res, res), sigma (3,), one-hot labels (row 2 the null label), augmentation labels (3, 9)."""
    g = torch.Generator().manual_seed(7)
    x = torch.randn(3, tiny["channels"], tiny["res"], tiny["res"], generator=g)
    aug = 0.5 * torch.randn(3, 9, generator=g)
    sigma = torch.tensor(SIGMAS)
    labels = None
    if tiny["label_dim"]:
        labels = torch.zeros(3, tiny["label_dim"])
        labels[0, 0] = labels[1, tiny["label_dim"] - 1] = 1
    return x, sigma, labels, (aug if tiny["augment_dim"] else None)


def config_for(preset, res, channels=3, **overrides):
    c = shipped_config("pfgmpp/digits_songunet")
    c.data.image_size, c.data.num_channels = res, channels
    set_songunet(c.model, preset, **overrides)
    return c


def tiny_config(tiny):
    keys = {k: (tuple(v) if isinstance(v, list) else v) for k, v in tiny.items() if k not in ("res", "channels")}
    return config_for("ncsnpp", tiny["res"], tiny["channels"], dropout=0.0, **keys)


@pytest.mark.parametrize("name", sorted(RELEASED))
def test_state_dict_is_the_originals(name):
    preset, res, overrides = RELEASED[name]
    with torch.device("meta"):
        model = SongUNet(config_for(preset, res, **overrides))
    got = [(k, list(v.shape)) for k, v in model.state_dict().items()]
    assert got == list(LAYOUTS[name].items())


def test_parameter_count_of_edm_ncsnpp():
    """The issue's figure: EDM's conditional NCSN++ for CIFAR-10 has 56.4M parameters."""
    with torch.device("meta"):
        model = SongUNet(config_for("ncsnpp", 32, label_dim=10, augment_dim=9))
    assert sum(p.numel() for p in model.parameters()) == 56_400_643


@pytest.mark.parametrize("name", sorted(TINY))
def test_outputs_match_the_recorded_original(name):
    tiny = TINY[name]
    ref = np.load(DATA / "songunet-reference.npz")
    config = tiny_config(tiny)
    model = models.build(config, "cpu").eval()
    state = seeded_state({k: list(v.shape) for k, v in model.state_dict().items()})
    missing = model.load_state_dict(state, strict=False).missing_keys
    assert all(k.endswith("resample_filter") for k in missing)
    x, sigma, labels, aug = reference_inputs(tiny)
    c_skip, c_out, c_in, _ = (per_sample(c, x) for c in pfgmpp.preconditioning(sigma, 0.5))
    with torch.no_grad():
        f = model.unet(x, torch.log(sigma) / 4, labels, aug)
        d = c_skip * x + c_out * model(c_in * x, sigma, labels, aug)   # the package's call: sigma, not c_noise
    torch.testing.assert_close(f, torch.from_numpy(ref[f"{name}/F"]), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(d, torch.from_numpy(ref[f"{name}/D"]), rtol=1e-4, atol=1e-5)


def test_set_songunet_removes_exactly_the_ncsnpp_keys_songunet_does_not_read():
    import ml_collections

    from configs.default_common import set_ncsnpp
    from configs.default_songunet import NCSNPP_ONLY_KEYS
    shared = {"name", "dropout", "attn_resolutions", "embedding_type", "label_dim"}
    assert set(NCSNPP_ONLY_KEYS) == set(set_ncsnpp(ml_collections.ConfigDict())) - shared
    c = shipped_config("pfgmpp/digits_ddpmpp")
    set_songunet(c.model, "ddpmpp")
    assert not set(NCSNPP_ONLY_KEYS) & set(c.model)
    models.build(c, "cpu")


@pytest.mark.parametrize("key,value,words", [("encoder_type", "foo", "model.encoder_type"),
                                             ("channel_mult", (1, 2, 2, 2, 2), "data.image_size"),
                                             ("augment_dim", -1, "model.augment_dim"),
                                             ("num_blocks", 0, "model.num_blocks")])
def test_bad_keys_are_named(key, value, words):
    from pfgm.config_checks import ConfigError
    c = shipped_config("pfgmpp/digits_songunet")
    c.model[key] = value
    with pytest.raises(ConfigError, match=words):
        models.build(c, "cpu")


def test_songunet_serves_pfgmpp_only():
    from pfgm.config_checks import ConfigError
    c = shipped_config("pfgmpp/digits_songunet")
    c.training.sde = "vpsde"
    with pytest.raises(ConfigError, match="training.sde"):
        models.build(c, "cpu")


def test_training_without_augmentation_labels_uses_zero_labels():
    """A network built for EDM's augmentation trained on a batch without its labels: the zero labels of an
    image not augmented, so the same output as none at all, and map_augment in the graph (DDP needs every
    parameter to take part)."""
    tiny = TINY["ncsnpp"]
    net = models.build(tiny_config(tiny), "cpu")
    x, sigma, labels, _ = reference_inputs(tiny)
    net.eval()
    none_eval = net(x, sigma, labels)
    net.train()
    out = net(x, sigma, labels)
    assert torch.equal(out, none_eval) and torch.equal(out, net(x, sigma, labels, torch.zeros(3, 9)))
    out.square().sum().backward()
    assert net.map_augment.weight.grad is not None
