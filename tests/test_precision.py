"""Mixed precision (pfgm.precision): the physics stays in float32 under autocast, only the network runs in
bf16 / fp16, and the toy trains from the command line with training.mixed_precision=bf16 on the CPU."""
import csv
import os
import subprocess
import sys

import pytest
import torch

from conftest import ROOT, override_flags, tiny_config
from pfgm import config_checks, poisson, precision, train


def test_field_target_under_bf16_autocast_is_the_float32_result():
    g = torch.Generator().manual_seed(0)
    data = torch.randn(256, 3, 4, 4, generator=g)
    x = poisson.perturb(data[:32], M=280, tau=0.03, sigma_end=0.01, generator=g)
    plain = poisson.field_target(x, data, 5.0)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = poisson.field_target(x, data, 5.0)
    assert mixed.dtype == torch.float32
    assert ((mixed - plain).norm(dim=1) / plain.norm(dim=1)).max() <= 1e-4
    half = poisson.field_target(x.bfloat16(), data, 5.0)  # a half-precision input is computed in float32
    assert half.dtype == torch.float32


def test_only_the_network_runs_in_half_precision():
    seen = []
    lin = torch.nn.Linear(4, 4)
    lin.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    net = precision.AutocastNetwork(lin, torch.bfloat16, "cpu")
    out = net(torch.randn(2, 4))
    assert seen == [torch.bfloat16] and out.dtype == torch.float32
    assert next(net.parameters()).dtype == torch.float32  # the methods read the network's dtype from it


def test_mixed_precision_is_checked_by_name():
    c = tiny_config()
    c.training.mixed_precision = "fp8"
    with pytest.raises(config_checks.ConfigError, match="training.mixed_precision"):
        config_checks.validate(c)


@pytest.mark.e2e
@pytest.mark.parametrize("mode", ["bf16", "fp16"])
def test_half_precision_training_steps_are_finite_and_learn(tmp_path, mode):
    c = tiny_config(n_iters=30, batch_size=64, small_batch_size=32, mixed_precision=mode,
                    model=dict(nf=32, num_layers=2))
    t = train.Trainer(c, str(tmp_path / "w"))
    losses = torch.stack([t.train_step(t.global_batch(k))[0] for k in range(30)])
    assert torch.isfinite(losses).all() and t.nonfinite_total == 0
    assert losses[-10:].mean() < losses[:5].mean()
    assert (t.precision.scaler is not None) == (mode == "fp16")


@pytest.mark.e2e
def test_bf16_trains_the_toy_from_the_command_line(tmp_path):
    c = tiny_config(n_iters=20, batch_size=64, small_batch_size=32, log_freq=5, model=dict(nf=32, num_layers=2))
    work = tmp_path / "run"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    r = subprocess.run([sys.executable, "-m", "pfgm.main", "--config", "configs/poisson/toy2d.py", "--workdir",
                        str(work), "--mode", "train", *override_flags(c, "poisson/toy2d"),
                        "--config.training.mixed_precision=bf16"],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert (work / "checkpoints" / "checkpoint_20.pth").exists()
    rows = list(csv.DictReader(open(work / "loss.csv")))
    assert [int(row["step"]) for row in rows] == [5, 10, 15, 20]
    assert all(float(row["loss"]) == float(row["loss"]) for row in rows)
    assert '"mixed_precision": "bf16"' in open(work / "config.json").read()


def test_songunet_attention_weights_stay_float32_under_bf16_autocast(monkeypatch):
    """EDM computes q^T k and its softmax in float32: autocast must not run that einsum in bf16."""
    from pfgm.models.song_layers import UNetBlock
    block = UNetBlock(32, 32, 16, attention=True)
    x, emb = torch.randn(2, 32, 4, 4), torch.randn(2, 16)
    dtypes, einsum = [], torch.einsum

    def spy(*args):
        out = einsum(*args)
        dtypes.append(out.dtype)
        return out
    monkeypatch.setattr(torch, "einsum", spy)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        block(x, emb)
    assert dtypes[0] == torch.float32 and len(dtypes) == 2
