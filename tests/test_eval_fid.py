"""FID/IS in the eval loop, with a randomly initialized Inception standing in for the real weights."""
import json
import os

import numpy as np
import pytest
import torch

from conftest import tiny_config
from pfgm import config_checks, evaluate, train
from pfgm.evaluation import inception, sources

pytestmark = pytest.mark.e2e


def digits_config(tmp_path):
    c = tiny_config("poisson/digits_ddpmpp")
    c.eval.update(num_samples=6, batch_size=6, enable_loss=False, enable_sampling=True)
    c.sampling.update(ode_solver="euler", N=3)
    return c


def test_eval_reports_fid_and_is(tmp_path):
    c = digits_config(tmp_path)
    work = str(tmp_path / "run")
    train.train(c, work)
    torch.manual_seed(0)
    weights = tmp_path / "inception.pth"
    torch.save(inception.InceptionV3FID().state_dict(), weights)
    stats = tmp_path / "stats.npz"
    sources.save_statistics(str(stats), np.zeros(2048), np.eye(2048))
    c.eval.update(fid_stats=str(stats), inception_weights=str(weights))
    with pytest.warns(UserWarning):  # the stand-in weights do not have the published hash
        (report,) = evaluate.evaluate(c, work, "ev")
    assert np.isfinite(report["fid"]) and report["fid"] > 0
    assert 1.0 <= report["inception_score"] <= 1008
    saved = json.load(open(os.path.join(work, "ev", "report_2.json")))
    assert saved["fid"] == report["fid"]


def test_missing_inception_weights_fail_before_sampling(tmp_path):
    c = digits_config(tmp_path)
    stats = tmp_path / "stats.npz"
    sources.save_statistics(str(stats), np.zeros(2048), np.eye(2048))
    c.eval.update(fid_stats=str(stats), inception_weights=str(tmp_path / "nope.pth"))
    with pytest.raises(config_checks.ConfigError, match="inception_weights"):
        evaluate.evaluate(c, str(tmp_path / "run"), "ev")
    assert not (tmp_path / "run").exists()
