"""The original's PFGM++ runs (its README's rows) as configs: every setting the config's docstring states
as the original's (train.py / training_loop.py / generate.py / fid.py values and the row's options) is
compared with the config, key by key."""
import math
import os
import re

import pytest

from conftest import ROOT
from pfgm import config_checks
from pfgm.run_utils import load_config_file

ROWS = ["cifar10_songunet_ncsnpp_d128", "cifar10_songunet_ncsnpp_d2048", "cifar10_songunet_ncsnpp_d2048_cond",
        "cifar10_songunet_ncsnpp_edm", "ffhq64_songunet_ddpmpp_d128", "ffhq64_songunet_ddpmpp_edm"]

# EDM's train.py --arch presets (SongUNet arguments)
ARCH = {"ncsnpp": dict(embedding_type="fourier", encoder_type="residual", decoder_type="standard",
                       channel_mult_noise=2, resample_filter=(1, 3, 3, 1)),
        "ddpmpp": dict(embedding_type="positional", encoder_type="standard", decoder_type="standard",
                       channel_mult_noise=1, resample_filter=(1, 1))}


def stated_settings(path):
    """{name: value string} of the docstring's block `The original's settings, as written`."""
    doc = open(path).read().split('"""')[1]
    block = doc.split("The original's settings, as written")[1]
    found = dict(re.findall(r"^    (\w+) = (\S+)", block, flags=re.M))
    assert len(found) >= 25, path
    return found


def expected_keys(s):
    """The config keys and values the stated original settings mean here."""
    batch, aug = int(s["batch"]), float(s["augment"])
    keys = {
        "model.name": "songunet",
        "model.label_dim": 10 if s["cond"] == "1" else 0,
        "training.aug_dim": float(s["aug_dim"]) if s["pfgmpp"] == "1" else math.inf,
        "training.batch_size": batch, "training.small_batch_size": batch,
        "training.n_iters": round(float(s["duration"]) * 1e6 / batch),
        "optim.optimizer": "Adam", "optim.lr": float(s["lr"]), "optim.warmup": 0,
        "optim.lr_rampup_kimg": float(s["lr_rampup_kimg"]),
        "optim.beta1": 0.9, "optim.eps": 1e-8, "optim.weight_decay": 0.0,
        "optim.grad_clip": 0.0 if s["grad_clip"] == "none" else float(s["grad_clip"]),
        "optim.nonfinite_grads": "nan_to_num" if s["nan_to_num"] == "1" else "skip",
        "model.ema_halflife_kimg": float(s["ema"]) * 1000, "model.ema_rampup_ratio": float(s["ema_rampup_ratio"]),
        "model.dropout": float(s["dropout"]),
        "training.augment_p": aug, "model.augment_dim": 9 if aug > 0 else 0,
        "data.random_flip": s["xflip"] == "True",
        "model.channel_mult": tuple(int(c) for c in s["cres"].split(",")),
        "model.model_channels": int(s["cbase"]), "model.num_blocks": int(s["nblock"]),
        "training.reduce_mean": {"sum/batch": False}[s["loss"]],
        "training.P_mean": float(s["P_mean"]), "training.P_std": float(s["P_std"]),
        "training.stf": False, "model.sigma_data": float(s["sigma_data"]),
        "sampling.method": "ode", "sampling.ode_solver": "heun", "sampling.N": int(s["steps"]),
        "sampling.sigma_min": float(s["sigma_min"]), "sampling.sigma_max": float(s["sigma_max"]),
        "sampling.rho": float(s["rho"]), "sampling.S_churn": float(s["S_churn"]),
        "eval.num_samples": int(s["num"]), "eval.first_seed": int(s["seeds"]), "eval.uint8": "round",
    }
    keys.update({f"model.{k}": v for k, v in ARCH[s["arch"]].items()})
    return keys


@pytest.mark.parametrize("name", ROWS)
def test_config_has_the_originals_recipe_key_by_key(name):
    path = os.path.join(ROOT, "configs", "pfgmpp", f"{name}.py")
    config = load_config_file(path)
    values = dict(config_checks.leaves(config))
    for key, want in expected_keys(stated_settings(path)).items():
        got = values[key]
        got = tuple(got) if isinstance(got, list) else got
        assert got == want, f"{name}: {key} = {got!r}, the original's {want!r}"
    config.data.root = ROOT  # any existing path: the data are not read here
    config.device = "cpu"
    config_checks.validate(config)


def test_the_stated_settings_are_the_originals_defaults_where_the_row_sets_none():
    """What the CIFAR-10 rows state for values they do not set is train.py's defaults (the FFHQ rows
    state their README options): one check that the docstrings were not edited to fit the configs."""
    s = stated_settings(os.path.join(ROOT, "configs", "pfgmpp", "cifar10_songunet_ncsnpp_d128.py"))
    assert (s["batch"], s["lr"], s["ema"], s["dropout"], s["augment"], s["duration"], s["cres"]) == \
        ("512", "10e-4", "0.5", "0.13", "0.12", "200", "2,2,2")
    f = stated_settings(os.path.join(ROOT, "configs", "pfgmpp", "ffhq64_songunet_ddpmpp_d128.py"))
    assert (f["batch"], f["lr"], f["dropout"], f["augment"], f["cres"], f["arch"]) == \
        ("256", "2e-4", "0.05", "0.15", "1,2,2,2", "ddpmpp")


@pytest.mark.parametrize("name", ["cifar10_ncsnpp", "cifar10_ncsnpp_d128"])
def test_score_sde_ncsnpp_pfgmpp_configs_have_no_gradient_clipping(name):
    c = load_config_file(os.path.join(ROOT, "configs", "pfgmpp", f"{name}.py"))
    assert (c.optim.grad_clip, c.optim.nonfinite_grads, c.optim.warmup, c.optim.lr_rampup_kimg) == \
        (0.0, "nan_to_num", 0, 10000.0)
    assert (c.model.ema_halflife_kimg, c.model.ema_rampup_ratio, c.training.n_iters) == (500.0, 0.05, 390625)


def test_pfgmpp_loss_is_summed_per_image_and_averaged_over_the_batch():
    """EDM's training_loop: loss.sum() / images per step, loss = lambda(sigma) (D(x) - y)^2 elementwise."""
    import torch

    from pfgm import methods, pfgmpp

    config = load_config_file(os.path.join(ROOT, "configs", "pfgmpp", "digits_ddpmpp.py"))
    config.training.reduce_mean = False
    method = methods.get_method(config)

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.tensor(0.3))

        def forward(self, x, noise_labels, class_labels=None, augment_labels=None):
            return self.w * x + noise_labels.reshape(-1, 1, 1, 1)

    net = Net()
    y = torch.rand(6, 1, 8, 8, generator=torch.Generator().manual_seed(1)) * 2 - 1
    loss = method.loss(net, y, generator=torch.Generator().manual_seed(5))
    gen = torch.Generator().manual_seed(5)  # the same draws, in the method's order
    t = config.training
    sigma = torch.exp(t.P_mean + t.P_std * torch.randn(6, dtype=torch.float64, generator=gen)).float()
    x = y + pfgmpp.perturbation(y.shape, sigma.double(), method.D, gen, beta_clip=t.beta_clip)
    c_skip, c_out, c_in, _ = (c.reshape(-1, 1, 1, 1) for c in pfgmpp.preconditioning(sigma, 0.5))
    denoised = c_skip * x + c_out * net(c_in * x, sigma)
    elementwise = pfgmpp.loss_weight(sigma, 0.5).reshape(-1, 1, 1, 1) * (denoised - y) ** 2
    torch.testing.assert_close(loss, elementwise.sum() / 6, rtol=1e-5, atol=0)
