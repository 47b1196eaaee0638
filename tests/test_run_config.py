"""A checkpoint knows what it is (issue 18 cases 5, 6): it records its run's config as plain data, resume
refuses a change of the model, method, data or optimizer keys by name (run-length keys may change), and
evaluation refuses a checkpoint trained under another method's or network's config."""
import json
import logging

import pytest
import torch

from conftest import shipped_config
from conftest import tiny_config as shrunk
from pfgm import checkpoint, models, run_config, train
from pfgm.config_checks import ConfigError
from pfgm.models.ema import ExponentialMovingAverage


def small(name, n_iters=2, **training):
    return shrunk(name, n_iters, batch_size=32, small_batch_size=8, model=dict(nf=16, num_layers=2), **training)


def saved(config, path, with_record=True):
    model = models.build(config, "cpu")
    ema = ExponentialMovingAverage(model, config.model.ema_rate)
    opt = train.build_optimizer(config, model.parameters())
    extra = dict(config=run_config.record(config)) if with_record else {}
    checkpoint.save_checkpoint(str(path), model, ema, opt, 2, **extra)
    return str(path)


def test_the_record_is_plain_data_that_the_safe_loader_reads(tmp_path):
    c = small("pfgmpp/toy2d")
    c.training.aug_dim = float("inf")
    path = saved(c, tmp_path / "checkpoint_2.pth")
    state = torch.load(path, weights_only=True)
    old = run_config.recorded(state)
    assert isinstance(state["config"], str) and old["training.aug_dim"] == float("inf")
    assert old["data.shape"] == list(c.data.shape) and not run_config.differences(old, c, lambda k: True)


@pytest.mark.parametrize("name,key,value", [("vp/toy2d", "training.sde", "subvpsde"),
                                            ("pfgmpp/toy2d", "training.aug_dim", 8),
                                            ("pfgmpp/toy2d", "training.aug_dim", float("inf")),
                                            ("vp/toy2d", "model.beta_max", 10.0)])
def test_eval_refuses_a_checkpoint_trained_under_another_config(tmp_path, name, key, value):
    c = small(name)
    path = saved(c, tmp_path / "checkpoint_2.pth")
    other = small(name)
    section, leaf = key.split(".")
    other[section][leaf] = value
    with pytest.raises(ConfigError, match=f"^{key}: checkpoint .* trained under another config"):
        checkpoint.load_ema_model(other, path, "cpu")
    other = small(name)
    other.model.ema_rate = 0.5  # training-only: evaluation may differ
    other.sampling.N = 7
    checkpoint.load_ema_model(other, path, "cpu")


def test_eval_of_a_checkpoint_without_a_record_warns(tmp_path, caplog):
    c = small("vp/toy2d")
    path = saved(c, tmp_path / "checkpoint_2.pth", with_record=False)
    logging.getLogger("pfgm").propagate = True
    try:
        with caplog.at_level(logging.WARNING, logger="pfgm"):
            checkpoint.load_ema_model(small("subvp/toy2d"), path, "cpu")
    finally:
        logging.getLogger("pfgm").propagate = False
    assert "records no config" in caplog.text


@pytest.mark.e2e
def test_resume_refuses_a_changed_model_method_or_optimizer_naming_the_keys(tmp_path):
    from test_cli import tree_digest
    work = str(tmp_path / "run")
    train.train(small("pfgmpp/toy2d"), work)
    before = tree_digest(work)
    for key, value in (("training.aug_dim", 8), ("optim.beta1", 0.5), ("optim.weight_decay", 0.1),
                       ("model.ema_rate", 0.5), ("training.P_mean", 0.0)):
        c = small("pfgmpp/toy2d", n_iters=4)
        section, leaf = key.split(".")
        c[section][leaf] = value
        with pytest.raises(ConfigError, match=f"^{key}: resuming from .* would mix two runs"):
            train.Trainer(c, work)
        assert tree_digest(work) == before
    # run-length, logging, sampling and how-fast keys may change; config.json then says what runs
    c = small("pfgmpp/toy2d", n_iters=4, log_freq=2)
    c.sampling.N = 5
    c.num_threads, c.collective_timeout = 2, 60
    t = train.train(c, work)
    assert t.step == 4 and t.resumed_from is not None
    assert json.load(open(f"{work}/config.json"))["training"]["n_iters"] == 4
    assert run_config.recorded(checkpoint.read_checkpoint(f"{work}/checkpoints/checkpoint_4.pth"))[
        "training.n_iters"] == 4


def test_every_rule_of_what_may_change_names_a_shipped_key():
    """A misspelt rule would silently free (or check) nothing: each must name a key of some shipped config."""
    import glob
    import os

    from conftest import ROOT
    keys = set()
    for path in glob.glob(os.path.join(ROOT, "configs", "*", "*.py")):
        if not path.endswith("__init__.py"):
            name = os.path.relpath(path, os.path.join(ROOT, "configs"))[:-3]
            keys |= {k for k, _ in run_config.leaves(shipped_config(name))}
    for rule in run_config.MAY_CHANGE_ON_RESUME + run_config.EVAL_MUST_MATCH + run_config.EVAL_MAY_DIFFER:
        assert any(k == rule or (rule.endswith(".") and k.startswith(rule)) for k in keys), rule
