"""A workdir holds one run of this package (issue 18 cases 2, 3): the lock is on something a user does
not delete, training never writes into a folder of someone else's files, and the clean-up of killed
writes removes only the temporaries this package names itself."""
import os
import signal

import pytest

from conftest import tiny_config
from pfgm import train, workdir
from test_cli import tree_digest


def foreign_folder(folder):
    """What a user may keep in a folder they pass as --workdir by mistake."""
    (folder / "samples" / "iter_0").mkdir(parents=True)
    (folder / "checkpoints").mkdir()
    (folder / "config.json").write_text('{"mine": true}')
    (folder / "samples" / "iter_0" / "sample.png").write_bytes(b"my picture")
    (folder / "loss.csv").write_text("epoch,accuracy\n1,0.5\n")
    (folder / "checkpoints" / "model.tmp_backup").write_bytes(b"my backup")
    return folder


@pytest.mark.e2e
def test_training_refuses_a_folder_of_someone_elses_files(tmp_path):
    work = foreign_folder(tmp_path / "theirs")
    before = tree_digest(work)
    with pytest.raises(workdir.WorkdirError, match="did not write.*touch"):
        train.train(tiny_config(), str(work))
    assert tree_digest(work) == before


@pytest.mark.e2e
def test_the_command_line_refuses_a_foreign_workdir_and_accepts_an_empty_one(tmp_path):
    from test_cli import cli
    work = foreign_folder(tmp_path / "theirs")
    before = tree_digest(work)
    r = cli("--config", "configs/poisson/toy2d.py", "--workdir", str(work), "--mode", "train",
            "--config.training.n_iters=2", "--config.training.snapshot_sampling=False")
    assert r.returncode == 2 and r.stderr.startswith("pfgm: error: ") and "Traceback" not in r.stderr, r.stderr
    assert tree_digest(work) == before
    empty = tmp_path / "empty"
    empty.mkdir()
    r = cli("--config", "configs/poisson/toy2d.py", "--workdir", str(empty), "--mode", "train",
            "--config.training.n_iters=2", "--config.training.snapshot_sampling=False",
            "--config.training.batch_size=32", "--config.training.small_batch_size=8")
    assert r.returncode == 0, r.stderr
    assert (empty / workdir.MARKER).exists() and (empty / "checkpoints" / "checkpoint_2.pth").exists()


def test_orphan_clean_up_removes_only_this_packages_temporaries(tmp_path):
    work = tmp_path / "run"
    (work / "checkpoints").mkdir(parents=True)
    (work / "checkpoints-meta").mkdir()
    (work / "samples" / "iter_5").mkdir(parents=True)
    ours = [work / "checkpoints" / ".checkpoint_5.pth.tmp123", work / "checkpoints-meta" / ".checkpoint.pth.tmp9",
            work / "samples" / "iter_5" / ".sample.npz.tmp77", work / ".config.json.tmp5"]
    theirs = [work / "checkpoints" / ".checkpoint_5.pth.tmp_backup", work / "checkpoints" / "a.pth.tmp1",
              work / "checkpoints" / ".checkpoint_5.pth.tmp123.keep", work / "samples" / "iter_5" / ".notes.tmp1",
              work / ".lock.tmp3"]
    for p in ours + theirs:
        p.write_bytes(b"x")
    removed = workdir.remove_orphan_temporaries(str(work))
    assert sorted(removed) == sorted(map(str, ours))
    assert all(p.exists() for p in theirs)


def test_the_lock_sees_its_workdir_replaced(tmp_path):
    work = tmp_path / "run"
    lock = workdir.Lock(str(work))
    try:
        lock.check()
        work.rename(tmp_path / "moved")
        work.mkdir()
        with pytest.raises(workdir.WorkdirError, match="deleted or replaced"):
            lock.check()
    finally:
        lock.close()


@pytest.mark.e2e
def test_deleting_lock_files_does_not_let_a_second_training_in(tmp_path):
    """Every finished workdir used to keep `.lock`, so people deleted it, and a second training then ran
    beside the first. The lock is now the folder's own: no file to delete."""
    from test_reliability import logged_step, start, wait_until
    work = tmp_path / "run"
    first = start(work, "--config.training.n_iters=100000")
    try:
        wait_until(work, first, 3)
        for name in os.listdir(work):
            if "lock" in name:
                os.remove(work / name)
        second = start(work, "--config.training.n_iters=100000")
        _, err = second.communicate(timeout=120)
        assert second.returncode == 2 and "in use by another training run" in err, err
        assert first.poll() is None and logged_step(work) >= 3
    finally:
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=60)
    assert first.returncode == 0


def test_a_run_of_an_older_version_with_checkpoints_is_adopted(tmp_path):
    """Workdirs written before the marker existed hold checkpoints in this package's layout: they are
    adopted (their checkpoints then go through every check of resume); without checkpoints they are not."""
    work = foreign_folder(tmp_path / "old_run")
    with pytest.raises(workdir.WorkdirError):
        workdir.check_ours(str(work))
    (work / "checkpoints" / "checkpoint_5").mkdir()  # a folder of that name is no checkpoint
    with pytest.raises(workdir.WorkdirError):
        workdir.check_ours(str(work))
    (work / "checkpoints" / "checkpoint_5.pth").write_bytes(b"x")
    workdir.check_ours(str(work))
