"""docs/fid.md's pipeline end to end, on digits with a tiny Inception stand-in: statistics of a config's
data set (`tools/fid.py stats`), FID inside the eval (`eval.fid_stats`), then `tools/fid.py fid` on the
samples.npz the eval wrote, which must give the eval's own number."""
import importlib.util
import os
import re

import numpy as np
import pytest
import torch

from conftest import ROOT, tiny_config
from pfgm import evaluate, train
from pfgm.evaluation import inception

pytestmark = pytest.mark.e2e


def stand_in(x):
    """Features (per-channel mean, std and a coarse 2x2 pooling) and 4-class logits of uint8 NCHW RGB."""
    assert x.dtype == torch.uint8 and x.ndim == 4 and x.shape[1] == 3
    x = x.float() / 255
    feats = torch.cat([x.mean((2, 3)), x.std((2, 3)), torch.nn.functional.adaptive_avg_pool2d(x, 2).flatten(1)], 1)
    return feats, feats @ torch.arange(4 * feats.shape[1], dtype=torch.float32).view(-1, 4).cos()


@pytest.fixture()
def cli(monkeypatch):
    monkeypatch.setattr(inception, "load_inception", lambda *args, **kwargs: stand_in)
    spec = importlib.util.spec_from_file_location("fid_cli", os.path.join(ROOT, "tools", "fid.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_fid_of_the_evals_samples_npz_is_the_evals_own_fid(cli, tmp_path, capsys):
    stats = str(tmp_path / "digits_test_stats.npz")
    config_file = os.path.join(ROOT, "configs", "poisson", "digits_ddpmpp.py")
    assert cli.main(["stats", config_file, "--split", "test", "-o", stats, "--quiet"]) == 0
    assert "wrote" in capsys.readouterr().out

    c = tiny_config("poisson/digits_ddpmpp")
    c.eval.update(num_samples=40, batch_size=40, enable_loss=False, enable_sampling=True, fid_stats=stats)
    c.sampling.update(ode_solver="euler", N=3)
    work = str(tmp_path / "run")
    train.train(c, work)
    (report,) = evaluate.evaluate(c, work, "eval")
    samples = os.path.join(work, "eval", "ckpt_2", "samples.npz")
    with np.load(samples) as f:  # raw data-space samples of a 2-step network overshoot [0, 1]
        assert f["samples"].dtype == np.float32 and (f["samples"].min() < 0 or f["samples"].max() > 1)

    with pytest.warns(UserWarning, match=r"samples\.npz \[samples\]: \d+ of \d+ values .* clipped to \[0, 1\]"):
        assert cli.main(["fid", samples, stats, "--quiet", "--uint8", c.eval.uint8]) == 0
    fid = float(re.search(r"FID: (\S+)", capsys.readouterr().out).group(1))
    assert report["fid"] > 0 and fid == pytest.approx(report["fid"], rel=1e-5, abs=1e-6)


def test_non_finite_samples_are_refused_by_name(cli, tmp_path, capsys):
    bad = np.full((4, 1, 8, 8), 0.5, dtype=np.float32)
    bad[2, 0, 3, 3] = np.nan
    np.savez(tmp_path / "samples.npz", samples=bad)
    np.savez(tmp_path / "ok.npz", samples=np.zeros((4, 8, 8, 3), dtype=np.uint8))
    assert cli.main(["fid", str(tmp_path / "samples.npz"), str(tmp_path / "ok.npz"), "--quiet"]) == 1
    assert "samples.npz [samples]: 1 of 256 values are not finite" in capsys.readouterr().err
