"""A training workdir holds one run of this package, and only one training writes to it at a time.

- Ownership: training starts only in a missing or empty folder, or in one this package marked as its own
  (`MARKER`, the first file a training writes), so it never clobbers someone else's config.json, pictures
  or CSV files. A folder without the marker that holds checkpoints in this package's layout (a run of an
  older version) is adopted.
- Lock: the OS's exclusive `flock` on the workdir folder itself, not on a file a user may delete; released
  when its holder ends in any way (SIGKILL included). Before each write the holder checks that the folder
  is still the one it locked (a workdir deleted and re-created under it is not its own any more).
- Clean-up: the temporaries of atomic writes killed before their rename (`pfgm.files.temporary_path`) are
  removed at the next start, and only those this package names itself.
"""
import json
import os
import re

from pfgm import files

MARKER = ".pfgm_workdir"

# The temporaries a killed write of this package can leave: `.{name}.tmp{pid}` of the files it writes.
_ORPHANS = {
    "checkpoints": re.compile(r"\.checkpoint_\d+\.pth\.tmp\d+"),
    "checkpoints-meta": re.compile(r"\.checkpoint\.pth\.tmp\d+"),
    "": re.compile(r"\.(config\.json|\.pfgm_workdir)\.tmp\d+"),
}
_SAMPLE_ORPHAN = re.compile(r"\.sample\.(npz|png)\.tmp\d+")


class WorkdirError(ValueError):
    """A workdir that training must not write to (someone else's files, or lost under a running training)."""


class WorkdirBusy(RuntimeError):
    """Another training run holds the workdir."""


def check_ours(workdir):
    """Raise WorkdirError unless `workdir` is missing, empty or marked as this package's."""
    if not os.path.isdir(workdir) or os.path.exists(os.path.join(workdir, MARKER)):
        return
    entries = sorted(os.listdir(workdir))
    if entries and _holds_checkpoints(workdir):
        return  # a run of a pfgm version before the marker: its checkpoints are read with every check
    if entries:
        raise WorkdirError(
            f"--workdir {workdir!r} holds files this package did not write ({', '.join(entries[:3])}"
            f"{', ...' if len(entries) > 3 else ''}): training starts only in an empty folder or in a "
            f"pfgm workdir. Choose another --workdir, or, if it is a run of an older pfgm version, "
            f"mark it as one: touch {os.path.join(workdir, MARKER)!r}")


def _holds_checkpoints(workdir):
    """Whether `workdir` holds a checkpoint file of this package's layout (numbered or meta)."""
    from pfgm import checkpoint  # torch and the networks: only for a folder without the marker

    return os.path.isfile(checkpoint.meta_checkpoint_path(workdir)) or bool(checkpoint.list_checkpoints(workdir))


def claim(workdir):
    """Write (or refresh) the marker: the first file of a training's workdir; holds the holder's pid."""
    files.write_json(os.path.join(workdir, MARKER), dict(written_by="pfgm", pid=os.getpid()))


def _holder(workdir):
    try:
        with open(os.path.join(workdir, MARKER)) as f:
            return f"pid {int(json.load(f)['pid'])}"
    except (OSError, ValueError, KeyError, TypeError):
        return "pid unknown"


class Lock:
    """The exclusive lock of a workdir (created if missing); `close()` or the process's end releases it."""

    def __init__(self, workdir):
        self.workdir = workdir
        self.fd = None
        try:
            import fcntl
        except ImportError:  # no flock (Windows): run unlocked
            return
        os.makedirs(workdir, exist_ok=True)
        fd = os.open(workdir, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise WorkdirBusy(f"workdir {workdir!r} is in use by another training run ({_holder(workdir)}); wait "
                              "for it to end or choose another --workdir (evaluating beside it is fine)") from None
        self.fd = fd
        self.inode = os.fstat(fd).st_ino, os.fstat(fd).st_dev

    def check(self):
        """Raise WorkdirError when the folder at the workdir's path is no longer the one locked."""
        if self.fd is None:
            return
        try:
            st = os.stat(self.workdir)
            same = (st.st_ino, st.st_dev) == self.inode
        except OSError:
            same = False
        if not same:
            raise WorkdirError(f"--workdir {self.workdir!r} was deleted or replaced during training; stopped "
                               "without writing into it")

    def close(self):
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def remove_orphan_temporaries(workdir):
    """Delete the temporaries of this package's writes that were killed before their rename. Call it only
    while holding the workdir lock: then no other writer can own them. Returns the paths removed."""
    folders = [(os.path.join(workdir, sub), pattern) for sub, pattern in _ORPHANS.items()]
    samples = os.path.join(workdir, "samples")
    if os.path.isdir(samples):
        folders += [(os.path.join(samples, d), _SAMPLE_ORPHAN) for d in sorted(os.listdir(samples))]
    removed = []
    for folder, pattern in folders:
        if not os.path.isdir(folder):
            continue
        for name in sorted(os.listdir(folder)):
            path = os.path.join(folder, name)
            if pattern.fullmatch(name) and os.path.isfile(path) and not os.path.islink(path):
                os.remove(path)
                removed.append(path)
    return removed
