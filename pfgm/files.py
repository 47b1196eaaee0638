"""Atomic file writes: a crash or a kill never leaves a half-written file under a real name."""
import json
import os

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
