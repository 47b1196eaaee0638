"""Checkpoints in the original layout: a dict with `model`, `ema`, `optimizer` and `step`.

Writing (atomic: a crash never leaves a half-written checkpoint under a real name), reading (never
runs code: `weights_only`), choosing the one to resume from, and loading a checkpoint's EMA network
for sampling. Reading accepts the `module.` prefix that nn.DataParallel adds.
"""
import glob
import logging
import os
import re

import torch

from pfgm import checkpoint_fits, files, models, run_config, run_utils
from pfgm.models.ema import ExponentialMovingAverage


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: unreadable, or made for another network. Names the path."""


class CheckpointCorrupt(CheckpointError):
    """A checkpoint that is positively damaged (truncated, garbage, not a checkpoint, refused by the safe
    loader): resume may name it and skip it. Any other failure to read (EACCES, EIO) stops the run."""


def atomic_save(obj, path):
    """torch.save to `path` atomically and durably (pfgm.files.atomic_write)."""
    files.atomic_write(path, lambda tmp: torch.save(obj, tmp), durable=True)


def save_checkpoint(path, model, ema, optimizer, step, **extra):
    state = dict(model=model.state_dict(), ema=ema.state_dict(), optimizer=optimizer.state_dict(),
                 step=int(step), **extra)
    atomic_save(state, path)


def strip_module_prefix(state_dict):
    """Remove the `module.` prefix nn.DataParallel/DDP put on every key."""
    if state_dict and all(k.startswith("module.") for k in state_dict):
        return {k[len("module."):]: v for k, v in state_dict.items()}
    return state_dict


# The entries a checkpoint may hold (score_sde's and Poisson_flow's four, and what this package adds).
# Anything else is refused: an undeclared entry is memory nobody asked for (issue 18, case 12).
ENTRIES = ("model", "ema", "optimizer", "step", "nonfinite_total", "train_seconds", "config")


def _safe_numpy_globals():
    """numpy scalars and dtypes, which rebuild plain numbers without running code: checkpoints written with
    `step=np.int64(...)` are read for what they are instead of being skipped."""
    import numpy as np

    core = getattr(np, "_core", None) or np.core
    return [core.multiarray.scalar, np.dtype] + [getattr(np.dtypes, n) for n in dir(getattr(np, "dtypes", None))
                                                 if n.endswith("DType")]


def _check_archive(path):
    """A torch.save zip with a compressed member was not written by torch: its size on disk would not bound
    what it decompresses to (a 7 MB file can hold a 4 GB tensor). Refused before anything is read."""
    import zipfile

    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as z:
        packed = [i.filename for i in z.infolist() if i.compress_type != zipfile.ZIP_STORED]
    if packed:
        raise CheckpointCorrupt(f"checkpoint {path!r} has compressed members ({packed[0]}, ...); torch.save "
                                "never compresses, and their size is unbounded")
    return True


def _plain_step(value):
    """The step as an int when it is one in any plain form (int, 0-d integer tensor, numpy integer,
    integral float such as 100.0); otherwise the value unchanged (then refused by the caller)."""
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
    if hasattr(value, "dtype") and hasattr(value, "item"):  # numpy scalar
        value = value.item()
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return value


def read_checkpoint(path, map_location="cpu"):
    """The checkpoint at `path` as a dict (tensors on the CPU, memory-mapped when the file allows it, so
    their size costs nothing until they are copied into a network). Never runs code from the file.

    Raises CheckpointCorrupt for a damaged or foreign file (resume may set it aside), CheckpointError for
    an unreadable one (permissions, I/O) or one holding entries a checkpoint does not declare."""
    del map_location  # always the CPU: load_state copies into the network's own device
    if not os.path.isfile(path):
        what = "is not a file" if os.path.lexists(path) else "does not exist"
        raise CheckpointError(f"checkpoint {path!r} {what}")
    try:
        mmap = _check_archive(path)
        # weights_only: checkpoints come from strangers, and unpickling arbitrary objects runs code.
        # Ours and the original's hold only tensors, numbers, strings, lists and dicts.
        with torch.serialization.safe_globals(_safe_numpy_globals()):
            state = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except OSError as e:  # permissions, I/O: the file may be fine, so never treat it as corrupt
        raise CheckpointError(f"checkpoint {path!r} cannot be read ({type(e).__name__}: {e}); fix the file's "
                              "permissions or the disk and run again (nothing was skipped or overwritten)") from e
    except CheckpointCorrupt:
        raise
    except Exception as e:  # truncated zip, pickle garbage, a pickle that asks for code, ...
        raise CheckpointCorrupt(f"checkpoint {path!r} is unreadable ({type(e).__name__}: {e})") from e
    if not isinstance(state, dict) or "model" not in state:
        raise CheckpointCorrupt(f"checkpoint {path!r} is not a pfgm/score_sde checkpoint (no 'model' entry)")
    extra = sorted(str(k) for k in state if k not in ENTRIES)
    if extra:
        raise CheckpointError(f"checkpoint {path!r}: undeclared entries {extra[:3]}; a checkpoint holds only "
                              f"{list(ENTRIES)} (refused unread)")
    step = state["step"] = _plain_step(state.get("step"))
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise CheckpointCorrupt(f"checkpoint {path!r}: 'step' must be a non-negative integer, got {step!r}")
    return state


def run_counters(state):
    """(nonfinite_total, train_seconds) of a read checkpoint: the run's skipped steps and training wall time
    up to it, over every resume; 0 when absent or not a plain number (the original's checkpoints)."""
    def plain(key, kind):
        value = _plain_step(state.get(key, 0))
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value < float("inf")
        return kind(value) if ok else kind(0)
    return plain("nonfinite_total", int), plain("train_seconds", float)


def load_checkpoint(path, model, ema=None, optimizer=None, map_location="cpu"):
    """Load a checkpoint into model (strict), ema and optimizer (when given). Returns the state dict.

    A checkpoint of another network (names, shapes or dtypes differ) raises CheckpointError naming the
    first differences, before anything is modified.
    """
    state = read_checkpoint(path, map_location)
    load_state(state, path, model, ema, optimizer)
    return state


def load_state(state, path, model, ema=None, optimizer=None, log=None):
    """Load an already read checkpoint `state` (from `path`, named in errors); see load_checkpoint."""
    misfit = checkpoint_fits.problems(state, model, ema, optimizer)
    if misfit:
        raise CheckpointError(f"checkpoint {path!r} does not fit this config's network: " + "; ".join(misfit))
    log = log or logging.getLogger("pfgm")
    weights = strip_module_prefix(state["model"])
    try:
        if ema is not None and "ema" in state:
            ema.load_state_dict(state["ema"])
        if optimizer is not None and state.get("optimizer"):
            optimizer.load_state_dict(state["optimizer"])
        elif optimizer is not None:
            log.warning("checkpoint %s has no optimizer state: Adam restarts from zero moments, so this "
                        "resume is not bit-exact with an uninterrupted run", path)
    except (ValueError, KeyError, TypeError) as e:
        raise CheckpointError(f"checkpoint {path!r}: {e}") from e
    model.load_state_dict(weights, strict=True)
    if ema is not None and "ema" not in state:
        # Without this the EMA would keep the freshly built network's random weights, and eval (which
        # copies the EMA into the model) would silently sample from them.
        log.warning("checkpoint %s has no 'ema' entry: using its model weights instead of the EMA", path)
        ema.reset(model)


def checkpoint_path(workdir, step):
    return os.path.join(workdir, "checkpoints", f"checkpoint_{step}.pth")


def meta_checkpoint_path(workdir):
    return os.path.join(workdir, "checkpoints-meta", "checkpoint.pth")


def list_checkpoints(workdir):
    """[(step, path)] of the files `checkpoints/checkpoint_{step}.pth`, oldest first (a folder or a dangling
    link of that name is no checkpoint)."""
    found = []
    for p in glob.glob(os.path.join(workdir, "checkpoints", "checkpoint_*.pth")):
        m = re.fullmatch(r"checkpoint_(\d+)\.pth", os.path.basename(p))
        if m and os.path.isfile(p):
            found.append((int(m.group(1)), p))
    return sorted(found)


def newest_readable(workdir, log=None):
    """(path, state, skipped) of the checkpoint to resume from: the highest step among the readable ones,
    the numbered one winning a tie with the meta one; path and state None when there is none. `skipped`:
    the corrupt files read on the way (named with log.warning), which the caller sets aside.

    Candidates are read newest first, one at a time, and the search stops at the first readable one, so
    a long run's many checkpoints cost no memory (the meta one, read first for its step, is held at most
    beside one numbered one). Any failure to read other than corruption (permissions, I/O) raises:
    skipping it could let an older state overwrite it.
    """
    log = log or logging.getLogger("pfgm")
    skipped = []

    def attempt(path):
        try:
            return read_checkpoint(path)
        except CheckpointCorrupt as e:
            log.warning("skipping %s", e)
            skipped.append(path)
            return None

    meta_path = meta_checkpoint_path(workdir)
    meta = attempt(meta_path) if os.path.lexists(meta_path) else None
    meta_step = meta["step"] if meta is not None else -1
    for step, path in reversed(list_checkpoints(workdir)):
        if step < meta_step:
            break
        state = attempt(path)
        if state is not None and state["step"] >= meta_step:
            return path, state, skipped
        del state
    if meta is not None:
        return meta_path, meta, skipped
    return None, None, skipped


def set_aside(path):
    """Rename the unreadable checkpoint `path` to `path.unreadable` (or `.unreadable-2`, ...), never over an
    existing file, so that the step that wrote it cannot overwrite it later; returns the new name."""
    for n in range(1, 10000):
        target = f"{path}.unreadable" + (f"-{n}" if n > 1 else "")
        try:
            os.link(path, target)  # fails rather than replace an existing file
        except FileExistsError:
            continue
        except OSError:  # no hard links here (some network file systems): check, then rename
            if os.path.lexists(target):
                continue
            os.rename(path, target)
            return target
        os.unlink(path)
        return target
    raise CheckpointError(f"cannot set aside {path!r}: 9999 unreadable copies beside it")


def load_ema_model(config, path, device=None):
    """The network of `config` with the EMA weights of checkpoint `path`, in eval mode, on `device`
    (default config.device): what sampling and evaluation use."""
    device = run_utils.resolve_device(config.device) if device is None else device
    model = models.build(config, device)
    ema = ExponentialMovingAverage(model, config.model.ema_rate)
    state = read_checkpoint(path)
    run_config.check_eval(state, config, path)
    load_state(state, path, model, ema)
    ema.copy_to(model)
    return model.eval()
