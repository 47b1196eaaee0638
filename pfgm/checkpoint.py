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

from pfgm import files, models, run_utils
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


def read_checkpoint(path, map_location="cpu"):
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint {path!r} does not exist")
    try:
        # weights_only: checkpoints come from strangers, and unpickling arbitrary objects runs code.
        # Ours and the original's hold only tensors, numbers, strings, lists and dicts.
        state = torch.load(path, map_location=map_location, weights_only=True)
    except OSError as e:  # permissions, I/O: the file may be fine, so never treat it as corrupt
        raise CheckpointError(f"checkpoint {path!r} cannot be read ({type(e).__name__}: {e}); fix the file's "
                              "permissions or the disk and run again (nothing was skipped or overwritten)") from e
    except Exception as e:  # truncated zip, pickle garbage, a pickle that asks for code, ...
        raise CheckpointCorrupt(f"checkpoint {path!r} is unreadable ({type(e).__name__}: {e})") from e
    if not isinstance(state, dict) or "model" not in state:
        raise CheckpointCorrupt(f"checkpoint {path!r} is not a pfgm/score_sde checkpoint (no 'model' entry)")
    step = state.get("step")
    if isinstance(step, torch.Tensor) and step.numel() == 1 and not step.is_floating_point():
        step = state["step"] = int(step)
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise CheckpointCorrupt(f"checkpoint {path!r}: 'step' must be a non-negative integer, got {step!r}")
    return state


def load_checkpoint(path, model, ema=None, optimizer=None, map_location="cpu"):
    """Load a checkpoint into model (strict), ema and optimizer (when given). Returns the state dict.

    A checkpoint of another network (names or shapes differ) raises CheckpointError naming the
    first differences, before anything is modified.
    """
    state = read_checkpoint(path, map_location)
    load_state(state, path, model, ema, optimizer)
    return state


def load_state(state, path, model, ema=None, optimizer=None):
    """Load an already read checkpoint `state` (from `path`, named in errors); see load_checkpoint."""
    weights = strip_module_prefix(state["model"])
    own = model.state_dict()
    missing = sorted(set(own) - set(weights))
    unexpected = sorted(set(weights) - set(own))
    wrong = [k for k in own if k in weights and tuple(weights[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"missing {missing[:3]}{'...' if len(missing) > 3 else ''}")
        if unexpected:
            parts.append(f"unexpected {unexpected[:3]}{'...' if len(unexpected) > 3 else ''}")
        if wrong:
            k = wrong[0]
            parts.append(f"shape of {k}: {tuple(weights[k].shape)} in file vs {tuple(own[k].shape)} in model")
        raise CheckpointError(f"checkpoint {path!r} does not fit this config's network: " + "; ".join(parts))
    try:
        if ema is not None and "ema" in state:
            ema.load_state_dict(state["ema"])
        if optimizer is not None and state.get("optimizer"):
            optimizer.load_state_dict(state["optimizer"])
    except (ValueError, KeyError, TypeError) as e:
        raise CheckpointError(f"checkpoint {path!r}: {e}") from e
    model.load_state_dict(weights, strict=True)
    if ema is not None and "ema" not in state:
        # Without this the EMA would keep the freshly built network's random weights, and eval (which
        # copies the EMA into the model) would silently sample from them.
        logging.getLogger("pfgm").warning("checkpoint %s has no 'ema' entry: using its model weights "
                                          "instead of the EMA", path)
        ema.reset(model)


def checkpoint_path(workdir, step):
    return os.path.join(workdir, "checkpoints", f"checkpoint_{step}.pth")


def meta_checkpoint_path(workdir):
    return os.path.join(workdir, "checkpoints-meta", "checkpoint.pth")


def list_checkpoints(workdir):
    """[(step, path)] of `checkpoints/checkpoint_{step}.pth`, oldest first."""
    found = []
    for p in glob.glob(os.path.join(workdir, "checkpoints", "checkpoint_*.pth")):
        m = re.fullmatch(r"checkpoint_(\d+)\.pth", os.path.basename(p))
        if m:
            found.append((int(m.group(1)), p))
    return sorted(found)


def meta_and_numbered(workdir):
    """[(step or None, path)]: the numbered checkpoints, oldest first, then the meta one if present."""
    found = list_checkpoints(workdir)
    meta = meta_checkpoint_path(workdir)
    return found + ([(None, meta)] if os.path.exists(meta) else [])


def newest_readable(workdir, log=None):
    """(path, state) of the checkpoint to resume from: the highest step among the readable ones, the
    numbered one winning a tie with the meta one; (None, None) when there is none.

    A corrupt file is named (log.warning) and skipped. Any other failure to read (permissions, I/O)
    raises: skipping it could let an older state overwrite it.
    """
    meta = meta_checkpoint_path(workdir)
    states = []
    for _, path in meta_and_numbered(workdir):
        try:
            state = read_checkpoint(path, map_location="cpu")
        except CheckpointCorrupt as e:
            (log or logging.getLogger("pfgm")).warning("skipping %s", e)
            continue
        states.append((int(state.get("step", -1)), path != meta, path, state))
    if not states:
        return None, None
    _, _, path, state = max(states, key=lambda s: (s[0], s[1]))
    return path, state


def load_ema_model(config, path, device=None):
    """The network of `config` with the EMA weights of checkpoint `path`, in eval mode, on `device`
    (default config.device): what sampling and evaluation use."""
    device = run_utils.resolve_device(config.device) if device is None else device
    model = models.build(config, device)
    ema = ExponentialMovingAverage(model, config.model.ema_rate)
    load_checkpoint(path, model, ema, map_location=device)
    ema.copy_to(model)
    return model.eval()
