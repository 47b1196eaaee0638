"""Class-conditional training end to end, tiny: on the eight Gaussians (label k: the component at angle
2 pi k / 8) each method learns, with label dropout 0.1, a network that `--mode eval` with
sampling.class_label = k sends to component k, at guidance 1 and 3 (the issue's must-show at toy size; the
full-size runs: docs/conditional.md)."""
import json
import os

import numpy as np
import pytest
import torch

from conftest import tiny_config
from pfgm import evaluate, train

# (config, steps, charges per step, points trained per step): PFGM's field needs the longest run
RUNS = {"poisson/toy2d": (1200, 512, 128), "pfgmpp/toy2d": (400, 128, 128), "vp/toy2d": (400, 128, 128)}


@pytest.mark.e2e
@pytest.mark.parametrize("name", sorted(RUNS))
def test_eval_with_class_label_k_lands_on_component_k(tmp_path, name):
    steps, batch, small = RUNS[name]
    c = tiny_config(name, steps, batch_size=batch, small_batch_size=small, model=dict(nf=64, num_layers=3, label_dim=8),
                    label_dropout=0.1)
    c.data.dataset = "eight_gaussians"
    c.optim.warmup = 50
    train.train(c, str(tmp_path))
    c.eval.update(num_samples=200, batch_size=200, enable_loss=False)
    c.sampling.update(ode_solver="heun", N=30)
    for k, w in ((2, 1.0), (5, 3.0), (7, 1.0), (0, 3.0)):
        c.sampling.update(class_label=k, guidance=w)
        folder = f"eval_c{k}_w{w:g}"
        report = evaluate.evaluate(c, str(tmp_path), eval_folder=folder)[0]
        assert report["class_accuracy"] >= 0.9, (k, w, report["class_accuracy"])
        with np.load(os.path.join(tmp_path, folder, f"ckpt_{steps}", "samples.npz")) as f:
            assert (f["labels"] == k).all() and f["samples"].shape == (200, 2)
        with open(os.path.join(tmp_path, folder, f"report_{steps}.json")) as f:
            assert json.load(f)["class_accuracy_per_class"][k] == report["class_accuracy"]


@pytest.mark.e2e  # builds a Trainer
@pytest.mark.parametrize("label_dim", [8, 0])
def test_the_eval_loss_of_a_conditional_model_sees_each_points_class(tmp_path, label_dim):
    """Trainer.eval_loss and evaluate.eval_loss give a conditional model's loss each held-out point's own class
    (the class-c field for PFGM), not the null label's loss; an unconditional model's loss is called as before."""
    c = tiny_config("poisson/toy2d", 2, model=dict(label_dim=label_dim), label_dropout=0.1 if label_dim else 0.0)
    c.data.dataset = "eight_gaussians"
    c.eval.update(num_samples=300, batch_size=128)
    t = train.Trainer(c, str(tmp_path))
    seen, real = [], t.method.loss

    def loss(model, batch, **kw):
        seen.append((batch, kw.get("labels")))
        return real(model, batch, **kw)
    t.method.loss = loss
    t.eval_loss()
    evaluate.eval_loss(c, t.method, t.model, t.dataset, t.device)
    assert len(seen) == 1 + 3   # the trainer's batch, then 300 held-out points in batches of 128
    for batch, labels in seen:
        if not label_dim:
            assert labels is None
            continue
        component = torch.round(torch.atan2(batch[:, 1], batch[:, 0]) / (2 * torch.pi / 8)).long() % 8
        assert labels is not None and torch.equal(labels, component)
