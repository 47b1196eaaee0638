"""What the test files share: the repository root, shipped configs shrunk to train in seconds, and the
`e2e` marker (end-to-end runs of training, evaluation, the command lines and the experiment driver;
`pytest -m "not e2e"` keeps the fast unit tests, and a test without the marker that trains, evaluates or
starts the command line or the experiment driver fails saying so)."""
import contextlib
import os
import subprocess

import pytest

from pfgm.config_checks import leaves
from pfgm.run_utils import load_config_file

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

if "OMP_NUM_THREADS" not in os.environ:  # one thread, as config.num_threads: see docs/measurements.md
    import torch
    torch.set_num_threads(1)


def shipped_config(name):
    """configs/<name>.py's config, e.g. shipped_config('poisson/toy2d'), on the CPU."""
    config = load_config_file(os.path.join(ROOT, "configs", f"{name}.py"))
    config.device = "cpu"
    return config


def tiny_config(name="poisson/toy2d", n_iters=2, *, batch_size=32, small_batch_size=8, model=None, **training):
    """A shipped config shrunk to train in seconds on the CPU: n_iters steps of `batch_size` charges
    (`small_batch_size` trained), every checkpoint at n_iters, no snapshot samples; `model` updates the
    network's keys and the other keywords the training keys."""
    config = shipped_config(name)
    config.training.update(n_iters=n_iters, snapshot_freq=n_iters, snapshot_freq_for_preemption=n_iters,
                           log_freq=1, eval_freq=100, batch_size=batch_size, small_batch_size=small_batch_size,
                           snapshot_sampling=False)
    config.training.update(**training)
    config.model.update(**(model or {}))
    return config


def override_flags(config, name):
    """The --config.KEY=VALUE flags that turn configs/<name>.py into `config` (for command-line runs of
    the same settings as an in-process test)."""
    shipped = dict(leaves(load_config_file(os.path.join(ROOT, "configs", f"{name}.py"))))
    return [f"--config.{key}={value}" for key, value in leaves(config) if shipped.get(key) != value]


# ------------------------------------------------------------------------------------------------------
# The e2e marker, enforced: outside it (test and fixture set-up alike) training, the eval loop and
# subprocesses of pfgm.main / tools/reproduce.py raise, so `pytest -m "not e2e"` provably trains nothing.

_END_TO_END_SCRIPTS = ("pfgm.main", "tools/reproduce.py", "reproduce.py")


def _refuse(what):
    def refuse(*args, **kwargs):
        raise AssertionError(f"{what} in a test not marked e2e: add @pytest.mark.e2e (see tests/conftest.py)")
    return refuse


class _GuardedPopen(subprocess.Popen):
    def __init__(self, args, *rest, **kwargs):
        words = [args] if isinstance(args, (str, bytes, os.PathLike)) else list(args)
        if any(str(w).endswith(_END_TO_END_SCRIPTS) or str(w) == "pfgm" for w in words):
            _refuse(f"running {' '.join(map(str, words))}")()
        super().__init__(args, *rest, **kwargs)


@contextlib.contextmanager
def _no_end_to_end_runs():
    from pfgm import evaluate, train
    mp = pytest.MonkeyPatch()
    mp.setattr(train.Trainer, "__init__", _refuse("training (train.Trainer)"))
    mp.setattr(evaluate, "evaluate", _refuse("the eval loop (evaluate.evaluate)"))
    mp.setattr(subprocess, "Popen", _GuardedPopen)
    try:
        yield
    finally:
        mp.undo()


def _guarded(item):
    return contextlib.nullcontext() if item.get_closest_marker("e2e") else _no_end_to_end_runs()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_setup(item):
    with _guarded(item):
        yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    with _guarded(item):
        yield
