"""What resume reads and refuses (issue 18 cases 1, 5, 9, 12; issue 21 item 1): candidates newest first
and one at a time, plain numeric steps for what they are, a skipped file set aside (never overwritten),
nothing materialized that the network does not declare, and no silent change of the run's config."""
import os
import subprocess
import sys
import zipfile

import numpy as np
import pytest
import torch

from conftest import ROOT
from conftest import tiny_config as shrunk
from pfgm import checkpoint, models, train, workdir
from pfgm.models.ema import ExponentialMovingAverage


def tiny_config(n_iters=10, **model):
    return shrunk("poisson/toy2d", n_iters, batch_size=64, small_batch_size=16, snapshot_freq=5,
                  snapshot_freq_for_preemption=5, eval_freq=1000, model=dict(nf=16, num_layers=2, **model))


def fresh_parts(config, tmp_path=None):
    """(model, ema, optimizer) as a fresh run builds them."""
    model = models.build(config, "cpu")
    return model, ExponentialMovingAverage(model, config.model.ema_rate), train.build_optimizer(config, model.parameters())


def marked(folder):
    """A workdir of this package (marker written), with its checkpoints folder."""
    os.makedirs(os.path.join(folder, "checkpoints"), exist_ok=True)
    workdir.claim(str(folder))
    return folder


def write_checkpoints(work, config, tmp_path, steps, meta_step=None):
    model, ema, opt = fresh_parts(config, tmp_path)
    for s in steps:
        checkpoint.save_checkpoint(checkpoint.checkpoint_path(str(work), s), model, ema, opt, s)
    if meta_step is not None:
        checkpoint.save_checkpoint(checkpoint.meta_checkpoint_path(str(work)), model, ema, opt, meta_step)


# -- newest first, one at a time (issue 21, item 1) ------------------------------------------------------

def test_resume_reads_candidates_newest_first_and_stops_at_the_first_readable(tmp_path, monkeypatch):
    work = marked(tmp_path / "run")
    c = tiny_config()
    write_checkpoints(work, c, tmp_path, range(5, 125, 5), meta_step=120)  # 24 numbered + meta
    read = []
    real = checkpoint.read_checkpoint
    monkeypatch.setattr(checkpoint, "read_checkpoint", lambda p, *a, **k: read.append(p) or real(p, *a, **k))
    path, state, skipped = checkpoint.newest_readable(str(work))
    assert path == checkpoint.checkpoint_path(str(work), 120) and state["step"] == 120 and not skipped
    assert read == [checkpoint.meta_checkpoint_path(str(work)), path]  # not the 23 older ones
    # the newest corrupt: named, skipped, and the next one down is read (still not the older ones)
    with open(path, "r+b") as f:
        f.truncate(50)
    os.remove(checkpoint.meta_checkpoint_path(str(work)))
    read.clear()
    path2, state, skipped = checkpoint.newest_readable(str(work))
    assert skipped == [path] and path2 == checkpoint.checkpoint_path(str(work), 115) and len(read) == 2


RSS_SCRIPT = """
import resource, sys
from conftest import tiny_config
from pfgm import train
c = tiny_config("poisson/toy2d", 10, batch_size=64, small_batch_size=16, model=dict(nf=512, num_layers=4))
t = train.Trainer(c, sys.argv[1])
assert t.step == int(sys.argv[2]), t.step
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


@pytest.mark.e2e
def test_resume_peak_memory_does_not_grow_with_the_number_of_checkpoints(tmp_path):
    """24 numbered checkpoints (6.6 MB each) used to raise resume's peak memory by all of them; now its
    peak RSS is within 15% of the same resume with only the newest one."""
    c = shrunk("poisson/toy2d", 10, batch_size=64, small_batch_size=16, model=dict(nf=512, num_layers=4))
    many, one = marked(tmp_path / "many"), marked(tmp_path / "one")
    write_checkpoints(many, c, tmp_path, range(10, 250, 10), meta_step=240)
    write_checkpoints(one, c, tmp_path, [240], meta_step=240)
    assert os.path.getsize(checkpoint.checkpoint_path(str(one), 240)) > 5e6
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join([ROOT, os.path.join(ROOT, "tests")]))

    def peak(work):
        r = subprocess.run([sys.executable, "-c", RSS_SCRIPT, str(work), "240"], cwd=ROOT, env=env,
                           capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr[-2000:]
        return int(r.stdout.split()[-1])

    rss_many, rss_one = peak(many), peak(one)
    print("peak RSS kB: 24 checkpoints", rss_many, "newest only", rss_one)
    assert rss_many < 1.15 * rss_one, (rss_many, rss_one)


# -- case 1: plain numeric steps are read; a skipped file is set aside, never overwritten -------------------

@pytest.mark.parametrize("step", [np.int64(5), np.int32(5), 5.0, torch.tensor(5.0)],
                         ids=["numpy_int64", "numpy_int32", "float", "float_tensor"])
def test_a_plain_numeric_step_is_read_for_what_it_is(tmp_path, step):
    model, ema, opt = fresh_parts(tiny_config(), tmp_path)
    path = str(tmp_path / "checkpoint_5.pth")
    torch.save(dict(model=model.state_dict(), ema=ema.state_dict(), optimizer=opt.state_dict(), step=step), path)
    state = checkpoint.read_checkpoint(path)
    assert state["step"] == 5 and type(state["step"]) is int


@pytest.mark.parametrize("step", [5.5, -1, "5", np.float64(5.5)])
def test_a_step_that_is_no_count_is_refused(tmp_path, step):
    model, _, _ = fresh_parts(tiny_config(), tmp_path)
    path = str(tmp_path / "checkpoint_5.pth")
    torch.save(dict(model=model.state_dict(), step=step), path)
    with pytest.raises(checkpoint.CheckpointCorrupt, match="'step'"):
        checkpoint.read_checkpoint(path)


class Foreign:
    """An object outside the safe loader's list: a checkpoint holding it is skipped as unreadable."""


@pytest.mark.e2e
def test_a_skipped_checkpoint_is_set_aside_and_never_overwritten(tmp_path):
    """checkpoint_10 holds an object the safe loader refuses: resume skips it, sets it aside under a new
    name (logged), and when the run writes step 10 again the original bytes are still there."""
    work = marked(tmp_path / "run")
    c = tiny_config(10)
    write_checkpoints(work, c, tmp_path, [5])
    model, ema, opt = fresh_parts(c, tmp_path)
    bad = checkpoint.checkpoint_path(str(work), 10)
    torch.save(dict(model=model.state_dict(), step=10, optimizer=Foreign()), bad)
    original = open(bad, "rb").read()
    t = train.Trainer(c, str(work))
    assert t.step == 5 and t.unreadable == [bad]
    t.run()
    aside = bad + ".unreadable"
    assert open(aside, "rb").read() == original
    assert checkpoint.read_checkpoint(bad)["step"] == 10  # the run's own step 10
    assert f"set aside as {aside}" in open(work / "log.txt").read()
    # a second unreadable file of the same name goes beside the first, never over it
    torch.save(dict(model=model.state_dict(), step=10, optimizer=Foreign()), bad)
    assert checkpoint.set_aside(bad) == bad + ".unreadable-2"
    assert open(aside, "rb").read() == original


# -- case 12: nothing the network does not declare is materialized ---------------------------------------

def _compressed_copy(src, dst):
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            zout.writestr(info.filename, zin.read(info.filename), compress_type=zipfile.ZIP_DEFLATED)


def test_a_compressed_checkpoint_is_refused_before_it_is_inflated(tmp_path):
    """A 100 MB tensor in a 100 kB file: torch.save never compresses, so such a file is refused unread."""
    model, _, _ = fresh_parts(tiny_config(), tmp_path)
    big = tmp_path / "big.pth"
    torch.save(dict(model=model.state_dict(), step=1, config=torch.zeros(25_000_000)), big)
    path = tmp_path / "checkpoint_1.pth"
    _compressed_copy(big, path)
    big.unlink()
    assert os.path.getsize(path) < 1e6
    with pytest.raises(checkpoint.CheckpointCorrupt, match="compressed"):
        checkpoint.read_checkpoint(str(path))


def test_undeclared_entries_and_tensors_are_refused_by_name(tmp_path):
    c = tiny_config()
    model, ema, opt = fresh_parts(c, tmp_path)
    good = dict(model=model.state_dict(), ema=ema.state_dict(), optimizer=opt.state_dict(), step=1)
    name = next(iter(good["model"]))
    cases = {
        "extra entry": (dict(good, extra=torch.zeros(1000)), "undeclared entries \\['extra'\\]"),
        "extra weight": (dict(good, model=dict(good["model"], ghost=torch.zeros(10))), "unexpected \\['ghost'\\]"),
        "int weights": (dict(good, model={k: v.long() for k, v in good["model"].items()}), "dtype of"),
        "float16 weights": (dict(good, model={k: v.half() for k, v in good["model"].items()}), "dtype of"),
        "bigger weight": (dict(good, model=dict(good["model"], **{name: torch.zeros(4096, 4096)})), "shape of"),
        "ema too long": (dict(good, ema=dict(good["ema"], shadow_params=good["ema"]["shadow_params"] * 2)),
                         "EMA holds"),
        "optimizer of other shapes": (dict(good, optimizer=_optimizer_of_other_shapes(opt)), "optimizer exp_avg"),
    }
    for label, (state, message) in cases.items():
        path = tmp_path / f"{label.replace(' ', '_')}.pth"
        torch.save(state, path)
        with pytest.raises(checkpoint.CheckpointError, match=message):
            checkpoint.load_checkpoint(str(path), *fresh_parts(c, tmp_path))


def _optimizer_of_other_shapes(opt):
    state = opt.state_dict()
    params = [p for g in opt.param_groups for p in g["params"]]
    state["state"] = {i: dict(step=torch.tensor(3.0), exp_avg=torch.zeros(p.numel() + 1),
                              exp_avg_sq=torch.zeros(p.numel() + 1)) for i, p in enumerate(params)}
    return state


def test_a_checkpoint_without_optimizer_state_resumes_with_a_warning(tmp_path, caplog):
    c = tiny_config()
    work = marked(tmp_path / "run")
    model, ema, _ = fresh_parts(c, tmp_path)
    torch.save(dict(model=model.state_dict(), ema=ema.state_dict(), step=5),
               checkpoint.checkpoint_path(str(work), 5))
    model, ema, opt = fresh_parts(c, tmp_path)
    import logging
    log = logging.getLogger("test_resume")
    with caplog.at_level(logging.WARNING, logger="test_resume"):
        checkpoint.load_state(checkpoint.read_checkpoint(checkpoint.checkpoint_path(str(work), 5)),
                              "x", model, ema, opt, log)
    assert "not bit-exact" in caplog.text


@pytest.mark.e2e
def test_training_wall_time_adds_up_over_resumes(tmp_path):
    """Issue 18 case 9: after a kill, reproduce_train_time.json recorded the resumed part only. Checkpoints
    now carry the training wall time of every attempt up to them (tools/reproduce.py reads it)."""
    import time
    work = str(tmp_path / "run")
    first = train.train(tiny_config(10), work)
    s10 = checkpoint.run_counters(checkpoint.read_checkpoint(checkpoint.checkpoint_path(work, 10)))[1]
    assert 0 < s10 <= time.time() - first.started + 1e-6
    t0 = time.time()
    second = train.train(tiny_config(20), work)
    s20 = checkpoint.run_counters(checkpoint.read_checkpoint(checkpoint.checkpoint_path(work, 20)))[1]
    assert second.seconds == s10  # resumed from checkpoint_10, with the first attempt's time
    assert s10 < s20 <= s10 + (time.time() - t0)
    assert checkpoint.run_counters(dict(train_seconds="x", nonfinite_total=-1)) == (0, 0.0)


def test_a_folder_or_dangling_link_named_like_a_checkpoint_is_no_checkpoint(tmp_path):
    """A folder or a dangling link named checkpoint_500.pth used to block resume and eval with "does not
    exist"; it is now passed over and the real checkpoints are used."""
    work = marked(tmp_path / "run")
    write_checkpoints(work, tiny_config(), tmp_path, [5])
    os.mkdir(checkpoint.checkpoint_path(str(work), 500))
    os.symlink(str(tmp_path / "gone.pth"), checkpoint.checkpoint_path(str(work), 600))
    assert [s for s, _ in checkpoint.list_checkpoints(str(work))] == [5]
    assert checkpoint.newest_readable(str(work))[1]["step"] == 5
