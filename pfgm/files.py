"""Atomic file writes: a crash or a kill never leaves a half-written file under a real name."""
import json
import os
import re
import shutil

TEMPORARY_MARK = ".tmp"  # temporaries are `.{name}.tmp{pid}` beside the target (see temporary_path)


def temporary_path(path):
    """The hidden temporary `path` is first written to: same folder (so the rename is atomic), one per
    process (so two writers never share one)."""
    folder, name = os.path.split(os.path.abspath(path))
    return os.path.join(folder, f".{name}{TEMPORARY_MARK}{os.getpid()}")


def atomic_write(path, write, *, durable=False):
    """Call write(temporary_path) and rename the result to `path`; the temporary is removed on failure.

    durable: fsync the file and its folder, so that the new file survives a power loss (checkpoints).
    """
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = temporary_path(path)
    try:
        write(tmp)
        if durable:
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    if durable:
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_json(path, obj):
    """`obj` as indented JSON, atomically."""
    def write(tmp):
        with open(tmp, "w") as f:
            json.dump(obj, f, indent=2)
    atomic_write(path, write)


def write_text(path, text):
    """`text` to `path`, atomically."""
    def write(tmp):
        with open(tmp, "w") as f:
            f.write(text)
    atomic_write(path, write)


def staging_folder(path):
    """A fresh, empty hidden folder beside `path` (`.{name}.tmp{pid}`) to write a set of outputs into;
    `publish_folder` then renames it to `path` when the set is complete."""
    tmp = temporary_path(path)
    if os.path.lexists(tmp):  # this process's own, left by an earlier attempt that failed
        shutil.rmtree(tmp)
    os.makedirs(tmp)
    return tmp


def publish_folder(tmp, path):
    """Rename the complete folder `tmp` to `path`. An existing `path` (an earlier run of the same outputs)
    is renamed aside first and removed after, so `path` holds one complete set at every moment."""
    old = None
    if os.path.lexists(path):
        old = temporary_path(path) + ".old"
        if os.path.lexists(old):
            shutil.rmtree(old)
        os.rename(path, old)
    os.rename(tmp, path)
    if old is not None:
        shutil.rmtree(old)


def remove_dead_staging(folder, pattern):
    """Remove the staging folders in `folder` whose names fullmatch `pattern` (a regex whose group 1 is
    the pid) and whose process is gone: the leftovers of killed runs. Returns the paths removed."""
    removed = []
    if not os.path.isdir(folder):
        return removed
    for name in sorted(os.listdir(folder)):
        m = re.fullmatch(pattern, name)
        path = os.path.join(folder, name)
        if m and os.path.isdir(path) and not os.path.islink(path) and not _alive(int(m.group(1))):
            shutil.rmtree(path)
            removed.append(path)
    return removed


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return pid < 2**31  # someone else's process, or a number no process can have
    return True
