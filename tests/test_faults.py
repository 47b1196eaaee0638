"""Fault injection: what a hostile file, a crash or a broken network does to a run, and what must
survive (issue 12). Each fault has its test here:

  1. a crafted checkpoint never runs code            5. a NaN network ends eval in seconds, with an error
  2. a kill during any checkpoint write loses nothing  6. a checkpoint without EMA: its model weights, not random
  3. EACCES stops resume with every file intact      7. a second training on a busy workdir is refused at once
  4. no checkpoint is written during a non-finite streak
and: a signal during start-up exits cleanly; orphan temporaries of killed writes are removed.
"""
import os
import signal
import time

import pytest
import torch

from configs.poisson import digits_ddpmpp
from pfgm import checkpoint, models, train
from pfgm.models.ema import ExponentialMovingAverage
from test_reliability import assert_same_state, logged_step, start, tiny_config

pytestmark = pytest.mark.e2e


class _Evil:
    """Unpickling this would run a shell command (the classic malicious checkpoint)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os
        return os.system, (f"touch {self.marker}",)

@pytest.mark.parametrize("where", ["whole", "extra_key"])
def test_a_crafted_checkpoint_never_runs_code(tmp_path, where):
    from pfgm import checkpoint
    marker = tmp_path / "pwned"
    payload = _Evil(str(marker))
    state = payload if where == "whole" else dict(model={"w": torch.zeros(1)}, step=1, evil=payload)
    path = tmp_path / "checkpoint_1.pth"
    torch.save(state, path)
    with pytest.raises(checkpoint.CheckpointError, match="unreadable"):
        checkpoint.read_checkpoint(str(path))
    assert not marker.exists()

def test_a_checkpoint_without_ema_is_evaluated_with_its_model_weights(tmp_path):
    """Never the freshly built network's random weights (eval copies the EMA into the model)."""
    c = digits_ddpmpp.get_config()
    c.model.nf = 16
    c.device = "cpu"
    trained = models.build(c, "cpu")
    with torch.no_grad():
        for p in trained.parameters():
            p.add_(0.5)
    path = tmp_path / "checkpoint_3.pth"
    torch.save(dict(model=trained.state_dict(), step=3), path)
    fresh = models.build(c, "cpu")
    ema = ExponentialMovingAverage(fresh, 0.999)
    checkpoint.load_checkpoint(str(path), fresh, ema)
    ema.copy_to(fresh)
    for a, b in zip(fresh.state_dict().values(), trained.state_dict().values()):
        assert torch.equal(a, b)


class _Killed(BaseException):
    """Stands for SIGKILL in the middle of a checkpoint write (not an Exception: nothing catches it)."""

@pytest.mark.parametrize("victim", ["checkpoints/checkpoint_30.pth", "checkpoints/checkpoint_60.pth",
                                    "checkpoints-meta/checkpoint.pth@35"])
def test_a_kill_during_any_checkpoint_write_loses_nothing(tmp_path, monkeypatch, victim):
    """The write dies before its rename (as a SIGKILL would leave it); after resume every numbered
    checkpoint exists and equals the uninterrupted run's."""
    ref = tmp_path / "ref"
    train.train(tiny_config(), str(ref))
    work = tmp_path / "killed"
    name, _, at = victim.partition("@")
    real = checkpoint.atomic_save
    fired = []

    def dying_save(obj, path):
        if not fired and path.endswith(name) and (not at or obj["step"] == int(at)):
            fired.append(path)
            with open(path + ".partial", "wb") as f:  # half a file, never renamed
                f.write(b"PK\x03\x04")
            raise _Killed
        return real(obj, path)

    monkeypatch.setattr(checkpoint, "atomic_save", dying_save)
    with pytest.raises(_Killed):
        train.train(tiny_config(), str(work))
    monkeypatch.setattr(checkpoint, "atomic_save", real)
    assert fired
    train.train(tiny_config(), str(work))
    for step in (30, 60):
        assert_same_state(torch.load(ref / f"checkpoints/checkpoint_{step}.pth", weights_only=True),
                          torch.load(work / f"checkpoints/checkpoint_{step}.pth", weights_only=True))

def test_no_checkpoint_is_written_during_a_nonfinite_streak(tmp_path):
    """Steps 10-12 are non-finite and step 10 is a meta step: the meta checkpoint stays at step 5, the
    last state before the streak, so a resume with a saner setting starts from it."""
    work = str(tmp_path / "run")
    c = tiny_config(40)
    c.training.max_nonfinite_steps = 3
    t = train.Trainer(c, work)
    real_loss = t.method.loss

    def loss(model, batch, generator=None, shard=None):
        value = real_loss(model, batch, generator=generator, shard=shard)
        return value * float("nan") if t.step in (9, 10, 11) else value

    t.method.loss = loss
    with pytest.raises(FloatingPointError, match="max_nonfinite_steps"):
        t.run()
    assert t.step == 12
    assert checkpoint.read_checkpoint(checkpoint.meta_checkpoint_path(work))["step"] == 5
    assert train.Trainer(tiny_config(40), work).step == 5

def test_an_unreadable_checkpoint_stops_resume_instead_of_being_skipped(tmp_path, monkeypatch):
    """EACCES is not corruption: resuming from an older state would overwrite newer checkpoints."""
    work = tmp_path / "run"
    train.train(tiny_config(), str(work))
    before = {p.name: p.read_bytes() for p in (work / "checkpoints").iterdir()}
    meta_before = (work / "checkpoints-meta" / "checkpoint.pth").read_bytes()
    real_load = torch.load

    def denied(path, *a, **k):
        if "checkpoint" in str(path):
            raise PermissionError(13, "Permission denied", str(path))
        return real_load(path, *a, **k)

    monkeypatch.setattr(torch, "load", denied)
    with pytest.raises(checkpoint.CheckpointError, match="cannot be read.*Permission denied"):
        train.train(tiny_config(n_iters=90), str(work))
    monkeypatch.setattr(torch, "load", real_load)
    assert {p.name: p.read_bytes() for p in (work / "checkpoints").iterdir()} == before
    assert (work / "checkpoints-meta" / "checkpoint.pth").read_bytes() == meta_before

def test_a_nan_network_ends_eval_in_seconds_with_an_error(tmp_path):
    """RK45 on a NaN field used to shrink its step for ever (> 3 minutes); now the solver stops at the
    first non-finite evaluation and the CLI says so (exit 2)."""
    from test_cli import cli
    work = tmp_path / "run"
    train.train(tiny_config(5), str(work))
    path = work / "checkpoints" / "checkpoint_5.pth"
    state = torch.load(path, weights_only=True)
    state["model"] = {k: v * float("nan") if v.is_floating_point() else v for k, v in state["model"].items()}
    state["ema"]["shadow_params"] = [p * float("nan") for p in state["ema"]["shadow_params"]]
    torch.save(state, path)
    t0 = time.time()
    r = cli("--config", "configs/poisson/toy2d.py", "--workdir", str(work), "--mode", "eval",
            "--config.model.nf=32", "--config.model.num_layers=2", "--config.eval.enable_loss=False")
    assert r.returncode == 2 and "not finite" in r.stderr, r.stderr
    assert time.time() - t0 < 120

def test_a_second_training_on_a_busy_workdir_is_refused_at_once(tmp_path):
    """Two trainings would interleave loss.csv and leave a config.json describing the other's
    checkpoints. The lock is the OS's (flock): released even when its holder is SIGKILLed."""
    from pfgm import workdir
    work = tmp_path / "run"
    held = workdir.Lock(str(work))
    try:
        p = start(work)
        _, err = p.communicate(timeout=120)
        assert p.returncode == 2 and "in use by another training run" in err and str(work) in err, err
        assert not (work / "config.json").exists() and not (work / "loss.csv").exists()
    finally:
        held.close()
    p = start(work, "--config.training.n_iters=3")
    assert p.wait(timeout=120) == 0, p.stderr.read()

def test_sigterm_during_start_up_exits_cleanly(tmp_path):
    work = tmp_path / "run"
    p = start(work)
    time.sleep(0.5)  # still importing torch / building the run
    assert logged_step(work) == 0
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 0, err

def test_orphan_temporaries_of_killed_writes_are_removed(tmp_path):
    work = tmp_path / "run"
    train.train(tiny_config(5), str(work))
    orphan = work / "checkpoints" / ".checkpoint_30.pth.tmp12345"
    orphan.write_bytes(b"half a checkpoint")
    keep = work / "checkpoints" / "notes.txt"
    keep.write_text("mine")
    train.train(tiny_config(10), str(work))
    assert not orphan.exists() and keep.exists()



def _snapshot_config(n_iters=20):
    c = tiny_config(n_iters)
    c.training.update(snapshot_freq=10, snapshot_sampling=True, snapshot_num_samples=16)
    c.sampling.update(ode_solver="euler", N=4)
    return c


def _samples(work, step):
    import numpy as np
    with np.load(work / "samples" / f"iter_{step}" / "sample.npz") as f:
        return f["samples"]


def test_a_kill_while_snapshot_samples_are_written_loses_none(tmp_path, monkeypatch):
    """Snapshot samples are written atomically, and those a kill lost (the folder of the newest numbered
    checkpoint missing or incomplete) are redrawn at the next start, equal to the uninterrupted run's."""
    import numpy as np

    from pfgm import files, snapshots
    ref, work = tmp_path / "ref", tmp_path / "killed"
    train.train(_snapshot_config(), str(ref))
    real = files.atomic_write

    def dying_write(path, write, **kw):
        if path.endswith(os.path.join("iter_10", "sample.npz")):
            os.makedirs(os.path.dirname(path), exist_ok=True)
            write(files.temporary_path(path))  # the whole temporary, never renamed
            raise _Killed
        return real(path, write, **kw)

    monkeypatch.setattr(files, "atomic_write", dying_write)
    with pytest.raises(_Killed):
        train.train(_snapshot_config(), str(work))
    monkeypatch.setattr(files, "atomic_write", real)
    assert not (work / "samples" / "iter_10" / "sample.npz").exists()
    train.train(_snapshot_config(), str(work))
    for step in (10, 20):
        np.testing.assert_array_equal(_samples(work, step), _samples(ref, step))
    assert not [p for p in (work / "samples" / "iter_10").iterdir() if p.name.startswith(".")]
    # resumed past the snapshot (meta at 15, numbered 10 newest): its EMA is read back to redraw
    c = _snapshot_config(15)
    mid = tmp_path / "mid"
    train.train(c, str(mid))
    os.remove(mid / "checkpoints" / "checkpoint_15.pth")
    for p in (mid / "samples" / "iter_10").iterdir():
        p.unlink()
    t = train.Trainer(_snapshot_config(30), str(mid))
    assert t.step == 15
    snapshots.redraw_lost(t, t.log)
    np.testing.assert_array_equal(_samples(mid, 10), _samples(ref, 10))
