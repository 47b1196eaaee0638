"""Crash safety: kill-and-resume, SIGTERM, non-finite steps, corrupt checkpoints, and torchrun/DDP."""
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from conftest import ROOT, override_flags
from conftest import tiny_config as shrunk
from pfgm import checkpoint, train

pytestmark = pytest.mark.e2e

def tiny_config(n_iters=60):
    return shrunk("poisson/toy2d", n_iters, batch_size=256, small_batch_size=64, snapshot_freq=30,
                  snapshot_freq_for_preemption=5, eval_freq=1000, model=dict(nf=32, num_layers=2))


SETTINGS = override_flags(tiny_config(), "poisson/toy2d")  # the same settings for command-line runs


ENV = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")


def start(work, *extra):
    return subprocess.Popen([sys.executable, "-m", "pfgm.main", "--config", "configs/poisson/toy2d.py",
                             "--workdir", str(work), "--mode", "train", *SETTINGS, *extra],
                            cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def logged_step(work):
    try:
        rows = open(os.path.join(work, "loss.csv")).read().split()
    except FileNotFoundError:
        return 0
    return int(rows[-1].split(",")[0]) if len(rows) > 1 and rows[-1][0].isdigit() else 0


def wait_until(work, proc, step, timeout=120):
    t = time.time()
    while logged_step(work) < step and proc.poll() is None:
        if time.time() - t > timeout:
            raise TimeoutError
        time.sleep(0.005)


def final_weights(work):
    return torch.load(os.path.join(work, "checkpoints", "checkpoint_60.pth"), weights_only=False)


def assert_same_state(a, b):
    assert a["step"] == b["step"]
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    for x, y in zip(a["ema"]["shadow_params"], b["ema"]["shadow_params"]):
        assert torch.equal(x, y)


def test_kill_and_resume_is_bit_exact(tmp_path):
    ref, work = tmp_path / "ref", tmp_path / "killed"
    p = start(ref)
    assert p.wait(timeout=300) == 0, p.stderr.read()
    kills = 0
    for kill_at in (3, 17, 31, 48):  # before the first meta checkpoint, between, at a snapshot, near the end
        p = start(work)
        wait_until(work, p, kill_at)
        if p.poll() is None:
            p.send_signal(signal.SIGKILL)
            kills += 1
        p.wait(timeout=60)
    p = start(work)
    assert p.wait(timeout=300) == 0, p.stderr.read()
    assert kills >= 3
    assert_same_state(final_weights(ref), final_weights(work))


def test_sigterm_saves_and_exits_cleanly(tmp_path):
    work = tmp_path / "run"
    p = start(work, "--config.training.n_iters=100000")
    wait_until(work, p, 12)
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 0, err
    assert "interrupted at step" in err
    state = checkpoint.read_checkpoint(checkpoint.meta_checkpoint_path(str(work)))
    assert state["step"] >= 12
    assert train.Trainer(tiny_config(100000), str(work)).step == state["step"]


def test_corrupt_newest_checkpoint_is_skipped_and_kept(tmp_path):
    work = str(tmp_path / "run")
    train.train(tiny_config(30), work)  # checkpoints at 30; meta at 30
    c10 = tiny_config(10)
    bad = [checkpoint.meta_checkpoint_path(work), checkpoint.checkpoint_path(work, 30)]
    good = checkpoint.checkpoint_path(work, 10)
    checkpoint.save_checkpoint(good, *_parts(c10, work))
    for path in bad:
        with open(path, "r+b") as f:
            f.truncate(100)
    t = train.Trainer(tiny_config(30), work)
    assert t.step == 10 and t.resumed_from == good
    assert all(os.path.exists(p) for p in bad + [good])


def _parts(config, work):
    t = train.Trainer(config, str(work) + "_scratch")
    t.step = 10
    return t.model, t.ema, t.optimizer, 10


def test_nonfinite_steps_are_skipped_then_stop(tmp_path):
    work = str(tmp_path / "run")
    c = tiny_config(40)
    c.training.max_nonfinite_steps = 3
    t = train.Trainer(c, work)
    real_loss = t.method.loss
    bad_steps = {6, 20, 21, 22}

    def loss(model, batch, generator=None, shard=None):
        value = real_loss(model, batch, generator=generator, shard=shard)
        return value * float("nan") if t.step in bad_steps else value

    t.method.loss = loss
    with pytest.raises(FloatingPointError, match="max_nonfinite_steps"):
        t.run()
    assert t.step == 23 and t.nonfinite_total == 4  # update 7 skipped and the run went on; 21-23 stopped it
    assert not os.path.exists(checkpoint.checkpoint_path(work, 30))
    assert checkpoint.read_checkpoint(checkpoint.meta_checkpoint_path(work))["step"] == 20


def test_skipped_step_leaves_weights_unchanged(tmp_path):
    t = train.Trainer(tiny_config(5), str(tmp_path / "run"))
    before = [p.detach().clone() for p in t.model.parameters()]
    real = t.method.loss
    t.method.loss = lambda *a, **k: real(*a, **k) * float("inf")
    loss, _ = t.train_step(t.global_batch(0))
    assert loss != loss and t.step == 1 and t.nonfinite_in_row == 1
    assert all(torch.equal(a, b) for a, b in zip(before, t.model.parameters()))


def test_torchrun_two_processes_match_one_process(tmp_path):
    """One DDP step on 2 CPU processes (gloo) equals one single-process step of the same config."""
    work = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29533",
           "-m", "pfgm.main", "--config", "configs/poisson/toy2d.py", "--workdir", str(work), "--mode", "train",
           *SETTINGS, "--config.training.n_iters=1", "--config.training.snapshot_freq=1"]
    r = subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert sorted(os.listdir(work / "checkpoints")) == ["checkpoint_1.pth"]
    ddp = checkpoint.read_checkpoint(str(work / "checkpoints" / "checkpoint_1.pth"))

    c = tiny_config(1)
    single = train.Trainer(c, str(tmp_path / "single"))
    # one global draw per step, sliced over the ranks: the same batch as one process draws
    single.train_step(single.global_batch(0))
    for name, value in single.model.state_dict().items():
        torch.testing.assert_close(ddp["model"][name], value, rtol=1e-5, atol=1e-6)

    # resume under torchrun: one more step from the checkpoint
    cmd[cmd.index("--config.training.n_iters=1")] = "--config.training.n_iters=2"
    r = subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert checkpoint.read_checkpoint(str(work / "checkpoints" / "checkpoint_2.pth"))["step"] == 2
    assert "resumed from" in open(work / "log.txt").read()
