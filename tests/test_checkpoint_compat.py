"""Checkpoints in the ORIGINAL layout (score_sde / PFGM repositories) load and evaluate.

The original code saves, through nn.DataParallel,
  {'model': state_dict with every key prefixed 'module.',
   'ema': {'decay', 'num_updates', 'shadow_params': [trainable params in model.parameters() order]},
   'optimizer': Adam state_dict, 'step': int}
with torch.save to <workdir>/checkpoints/checkpoint_<n>.pth. These tests write such a file by hand
for the small digits DDPM++ and check that pfgm loads it strictly, applies the EMA in the right
order, evaluates from it, and refuses broken ones with a CheckpointError naming the path.
"""
import os

import numpy as np
import pytest
import torch

from configs.poisson import digits_ddpmpp
from pfgm import checkpoint, evaluate, models, train
from pfgm.checkpoint import CheckpointError
from pfgm.models.ema import ExponentialMovingAverage

STEP = 5


def small_config():
    config = digits_ddpmpp.get_config()
    config.device = "cpu"
    return config


def build(config, seed):
    torch.manual_seed(seed)
    return models.build(config, "cpu")


def original_checkpoint(model, config, shadow_seed=123):
    """A dict in the original layout; its EMA shadow differs from the model weights."""
    optimizer = train.build_optimizer(config, model.parameters())
    # one real Adam step, so the optimizer state has exp_avg / exp_avg_sq tensors
    for p in model.parameters():
        p.grad = torch.randn_like(p) * 1e-3
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    gen = torch.Generator().manual_seed(shadow_seed)
    shadow = [p.detach().clone() + 0.01 * torch.randn(p.shape, generator=gen)
              for p in model.parameters() if p.requires_grad]
    return {
        "model": {"module." + k: v.clone() for k, v in model.state_dict().items()},
        "ema": {"decay": config.model.ema_rate, "num_updates": 17, "shadow_params": shadow},
        "optimizer": optimizer.state_dict(),
        "step": STEP,
    }


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("orig")
    config = small_config()
    model = build(config, seed=0)
    state = original_checkpoint(model, config)
    path = os.path.join(workdir, "checkpoints", f"checkpoint_{STEP}.pth")
    os.makedirs(os.path.dirname(path))
    torch.save(state, path)  # plain torch.save, as the original code does
    return config, str(workdir), path, model, state


def test_original_layout_loads_strictly_and_gives_identical_outputs(saved):
    config, _, path, model, state = saved
    fresh = build(config, seed=1)
    assert any(not torch.equal(a, b) for a, b in zip(fresh.state_dict().values(), model.state_dict().values()))
    ema = ExponentialMovingAverage(fresh, config.model.ema_rate)
    optimizer = train.build_optimizer(config, fresh.parameters())
    loaded = checkpoint.load_checkpoint(path, fresh, ema, optimizer)
    assert int(loaded["step"]) == STEP
    for k, v in model.state_dict().items():
        assert torch.equal(fresh.state_dict()[k], v), k
    # optimizer state came along
    assert optimizer.state_dict()["state"].keys() == state["optimizer"]["state"].keys()
    assert ema.num_updates == 17

    model.eval(), fresh.eval()
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(4, 1, 8, 8, generator=gen)
    z = torch.rand(4, generator=gen) * 10 + 0.01
    with torch.no_grad():
        a, b = model(x, z), fresh(x, z)
    for u, v in zip(a, b):
        assert torch.equal(u, v)


def test_ema_shadow_params_apply_in_parameter_order(saved):
    config, _, path, model, state = saved
    fresh = build(config, seed=2)
    ema = ExponentialMovingAverage(fresh, config.model.ema_rate)
    checkpoint.load_checkpoint(path, fresh, ema)
    ema.copy_to(fresh)
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    assert len(names) == len(state["ema"]["shadow_params"])
    params = dict(fresh.named_parameters())
    for name, shadow in zip(names, state["ema"]["shadow_params"]):
        assert torch.equal(params[name], shadow), name
        assert not torch.equal(params[name], dict(model.named_parameters())[name]), name


@pytest.mark.e2e
def test_evaluate_runs_on_original_workdir(saved):
    config, workdir, _, _, _ = saved
    config = small_config()
    config.eval.enable_sampling = True
    config.eval.enable_loss = True
    config.eval.num_samples = 8
    config.eval.batch_size = 8
    config.sampling.ode_solver = "euler"
    config.sampling.N = 5
    config.training.batch_size = 128       # the eval loss's charges; keeps the test fast
    config.training.small_batch_size = 16
    reports = evaluate.evaluate(config, workdir, eval_folder="eval_compat")
    assert len(reports) == 1 and reports[0]["step"] == STEP
    assert np.isfinite(reports[0]["eval_loss"])
    folder = os.path.join(workdir, "eval_compat", f"ckpt_{STEP}")
    with np.load(os.path.join(folder, "samples.npz")) as f:
        assert f["samples"].shape == (8, 1, 8, 8)
        assert np.isfinite(f["samples"]).all()
        assert int(f["nfe"][0]) == 5
    assert os.path.isfile(os.path.join(folder, "samples.png"))
    assert os.path.isfile(os.path.join(workdir, "eval_compat", f"report_{STEP}.json"))


def test_wrong_shape_raises_checkpoint_error_naming_path(saved, tmp_path):
    config, _, _, model, state = saved
    bad = dict(state)
    bad["model"] = dict(state["model"])
    key = next(k for k, v in bad["model"].items() if v.ndim == 4)
    bad["model"][key] = torch.zeros(*bad["model"][key].shape[:-1], bad["model"][key].shape[-1] + 1)
    path = str(tmp_path / "checkpoint_wrong.pth")
    torch.save(bad, path)
    fresh = build(config, seed=3)
    before = {k: v.clone() for k, v in fresh.state_dict().items()}
    with pytest.raises(CheckpointError) as info:
        checkpoint.load_checkpoint(path, fresh, ExponentialMovingAverage(fresh, 0.999))
    assert path in str(info.value)
    assert key[len("module."):] in str(info.value)
    for k, v in fresh.state_dict().items():  # nothing was modified
        assert torch.equal(before[k], v)


def test_truncated_file_raises_checkpoint_error_naming_path(saved, tmp_path):
    config, _, path, _, _ = saved
    with open(path, "rb") as f:
        data = f.read()
    truncated = str(tmp_path / "checkpoint_truncated.pth")
    with open(truncated, "wb") as f:
        f.write(data[: len(data) // 2])
    fresh = build(config, seed=4)
    with pytest.raises(CheckpointError) as info:
        checkpoint.load_checkpoint(truncated, fresh)
    assert truncated in str(info.value)
