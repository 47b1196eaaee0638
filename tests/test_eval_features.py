"""The original's eval features: interpolation and rescale pictures, individual images, the eval loss
over the whole held-out split, and the sampler's paths for 2-D data."""
import math
import os

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import tiny_config
from configs.poisson import toy2d
from configs.vp import toy2d as vp_toy2d
from pfgm import checkpoint, config_checks, datasets, evaluate, methods, models, train
from pfgm.evaluation import prior_paths

pytestmark = pytest.mark.e2e


def test_slerp_stays_on_the_sphere_at_equal_angles():
    g = torch.Generator().manual_seed(0)
    starts = prior_paths.interpolation_starts(3, 7, 50, 12.0, generator=g)
    assert starts.shape == (21, 50)
    torch.testing.assert_close(starts.norm(dim=1), torch.full((21,), 12.0, dtype=torch.float64))
    row = starts[:7] / 12.0
    angles = torch.arccos((row[:-1] * row[1:]).sum(1).clamp(-1, 1))
    torch.testing.assert_close(angles, angles.mean().expand(6))
    total = torch.arccos((row[0] * row[-1]).sum())
    torch.testing.assert_close(angles.sum(), total)


def test_rescale_rows_share_a_direction_at_the_originals_radii():
    starts = prior_paths.rescale_starts(2, 10, 30, 3000.0, generator=torch.Generator().manual_seed(1))
    norms = starts.norm(dim=1)
    torch.testing.assert_close(norms[:10], torch.linspace(1000, 6000, 10, dtype=torch.float64))
    dirs = starts / norms[:, None]
    torch.testing.assert_close(dirs[:10], dirs[:1].expand(10, -1))
    assert (dirs[0] - dirs[10]).norm() > 0.1


def digits_config():
    c = tiny_config("poisson/digits_ddpmpp", model=dict(nf=16))
    c.sampling.update(ode_solver="euler", N=3)
    c.eval.update(enable_loss=True, enable_sampling=True, num_samples=6, batch_size=100, save_images=True,
                  enable_interpolate=True, enable_rescale=True)
    return c


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    c = digits_config()
    work = str(tmp_path_factory.mktemp("digits") / "run")
    train.train(c, work)
    (report,) = evaluate.evaluate(c, work, "ev")
    return c, work, report


def test_interpolation_and_rescale_pictures(digits_run):
    c, work, _ = digits_run
    for name in ("interpolation_2.png", "rescale_2.png"):
        img = np.asarray(Image.open(os.path.join(work, "ev", name)))
        # 6 rows x 10 columns of 8x8 digits enlarged 4x, 2-pixel padding, enlarged with the grid
        assert img.shape[:2] == (4 * (2 + 6 * 10), 4 * (2 + 10 * 10)), img.shape


def test_save_images_writes_every_sample_as_png(digits_run):
    _, work, report = digits_run
    folder = os.path.join(work, "ev", "ckpt_2", "images")
    files = sorted(os.listdir(folder))
    assert files == [f"{i:06d}.png" for i in range(6)]
    samples = np.load(os.path.join(work, "ev", "ckpt_2", "samples.npz"))["samples"]
    back = np.stack([np.asarray(Image.open(os.path.join(folder, f))) for f in files])
    # PFGM's eval.uint8 = 'truncate', the original code's np.clip(x * 255, 0, 255).astype(np.uint8)
    np.testing.assert_array_equal(back, np.clip(samples[:, 0] * 255, 0, 255).astype(np.uint8))


def test_eval_loss_averages_the_whole_held_out_split(digits_run):
    c, work, report = digits_run
    ds = datasets.get_dataset(c)
    assert report["eval_loss_points"] == ds.num_eval
    # the same batches by hand: eval.batch_size images at a time, weighted by their size
    model = models.build(c, torch.device("cpu"))
    from pfgm.models.ema import ExponentialMovingAverage
    ema = ExponentialMovingAverage(model, c.model.ema_rate)
    checkpoint.load_checkpoint(os.path.join(work, "checkpoints", "checkpoint_2.pth"), model, ema)
    ema.copy_to(model)
    model.eval()
    method, scaler = methods.get_method(c), datasets.data_scaler(c)
    noise = torch.Generator().manual_seed(c.seed + 3)
    losses, sizes = [], []
    with torch.no_grad():
        for x in ds.split_batches("test", c.eval.batch_size):
            losses.append(method.loss(model, scaler(x), generator=noise).item())
            sizes.append(len(x))
    assert len(sizes) == math.ceil(ds.num_eval / c.eval.batch_size) > 1
    assert report["eval_loss"] == pytest.approx(np.average(losses, weights=sizes), rel=1e-6)


def test_interpolation_is_refused_for_points():
    c = toy2d.get_config()
    c.eval.update(enable_interpolate=True)
    c.device = "cpu"
    with pytest.raises(config_checks.ConfigError, match="eval.enable_interpolate"):
        evaluate.evaluate(c, "/nonexistent-never-written", "ev")


@pytest.mark.parametrize("get_config", [toy2d.get_config, vp_toy2d.get_config], ids=["pfgm", "vp"])
def test_trajectories_picture_for_2d_data(tmp_path, get_config):
    c = get_config()
    c.training.update(n_iters=2, snapshot_freq=2, snapshot_freq_for_preemption=2, log_freq=1, eval_freq=100,
                      batch_size=64, small_batch_size=16, snapshot_sampling=False)
    c.model.update(nf=16, num_layers=2)
    c.sampling.update(ode_solver="euler", N=5)
    c.eval.update(num_samples=20, batch_size=20, enable_loss=False)
    c.device = "cpu"
    work = str(tmp_path / "run")
    train.train(c, work)
    evaluate.evaluate(c, work, "ev")
    img = Image.open(os.path.join(work, "ev", "ckpt_2", "trajectories.png"))
    assert img.size[0] > 500 and img.size[1] > 300


def test_trajectory_ends_where_heun_sampling_ends():
    """The recorded path is the sampler's: its last state is Heun's sample, its times the z grid."""
    c = toy2d.get_config()
    c.sampling.update(z_max=10.0, z_min=0.01)
    method = methods.get_method(c)

    class Field(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros((), dtype=torch.float64))

        def forward(self, x, z):
            return x * 0.3 + self.w, -torch.ones(len(x), dtype=x.dtype)

    model = Field()
    x = torch.randn(4, 2, dtype=torch.float64)
    times, states = method.trajectory(model, x, steps=8)
    out, _ = method.sample(model, 4, (2,), x=x, ode_solver="heun", N=8)
    torch.testing.assert_close(states[-1], out)
    torch.testing.assert_close(states[0], x)
    torch.testing.assert_close(times, torch.logspace(1, -2, 9, dtype=torch.float64))


class _Killed(BaseException):
    """Stands for SIGKILL in the middle of writing an evaluation's images."""


@pytest.mark.e2e
def test_an_evaluation_replaces_the_last_whole_and_a_killed_one_leaves_no_mix(digits_run, monkeypatch):
    """Eval's outputs for a checkpoint go to a fresh folder renamed into place when complete: a second
    evaluation with fewer samples leaves exactly its own images (not 3 new beside 6 old), and one killed
    while writing images leaves the previous complete folder and report as they were."""
    import json

    import copy

    from pfgm import visualize
    c, work, _ = digits_run
    c = copy.deepcopy(c)
    ev = os.path.join(work, "ev_replace")
    c.eval.num_samples = 6
    evaluate.evaluate(c, work, "ev_replace")
    c.eval.num_samples = 3
    evaluate.evaluate(c, work, "ev_replace")
    assert sorted(os.listdir(os.path.join(ev, "ckpt_2", "images"))) == [f"{i:06d}.png" for i in range(3)]
    assert json.load(open(os.path.join(ev, "report_2.json")))["num_samples"] == 3
    before = {f: open(os.path.join(ev, "ckpt_2", "images", f), "rb").read() for f in os.listdir(
        os.path.join(ev, "ckpt_2", "images"))}
    real = visualize.save_images

    def dying(images, folder, *a, **k):
        real(images[:2], folder, *a, **k)
        raise _Killed

    monkeypatch.setattr(visualize, "save_images", dying)
    c.eval.num_samples = 5
    with pytest.raises(_Killed):
        evaluate.evaluate(c, work, "ev_replace")
    monkeypatch.setattr(visualize, "save_images", real)
    after = {f: open(os.path.join(ev, "ckpt_2", "images", f), "rb").read() for f in os.listdir(
        os.path.join(ev, "ckpt_2", "images"))}
    assert after == before and json.load(open(os.path.join(ev, "report_2.json")))["num_samples"] == 3
    # a killed evaluation's staging folder (its process gone) is removed by the next one
    dead = os.path.join(ev, ".ckpt_2.tmp4194305")
    os.makedirs(dead)
    evaluate.evaluate(c, work, "ev_replace")
    assert not os.path.exists(dead)
    assert sorted(n for n in os.listdir(ev) if n.startswith(".")) == []
    assert len(os.listdir(os.path.join(ev, "ckpt_2", "images"))) == 5
