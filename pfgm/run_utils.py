"""Small pieces the training and evaluation loops share: logging, seeding, devices, config files."""
import contextlib
import csv
import importlib.util
import logging
import os
import random
import signal
import sys
import threading
import time
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from pfgm import stop

LOGGER_NAME = "pfgm"
REPO_ROOT = Path(__file__).resolve().parent.parent  # the config files import `configs.default_*`


class _TqdmHandler(logging.StreamHandler):
    """Console lines that do not tear the progress bar."""

    def emit(self, record):
        try:
            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:  # never let logging kill a run
            self.handleError(record)


def setup_logging(logfile=None):
    """Log to the console and, when given, append to `logfile`. Returns the 'pfgm' logger."""
    log = logging.getLogger(LOGGER_NAME)
    log.setLevel(logging.INFO)
    log.propagate = False
    for h in list(log.handlers):
        log.removeHandler(h)
        h.close()
    fmt = logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S")
    console = _TqdmHandler()
    console.setFormatter(fmt)
    log.addHandler(console)
    if logfile:
        os.makedirs(os.path.dirname(os.path.abspath(logfile)), exist_ok=True)
        fh = logging.FileHandler(logfile)
        fh.setFormatter(fmt)
        log.addHandler(fh)
    return log


def set_num_threads(n):
    """torch's CPU threads (config.num_threads): n > 0 sets them, 0 keeps torch's default (one per core,
    or $OMP_NUM_THREADS)."""
    if n:
        torch.set_num_threads(int(n))


def seed_everything(seed):
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def resolve_device(name):
    """The configured device, falling back to the CPU (with a warning) when CUDA is absent."""
    if str(name).startswith("cuda") and not torch.cuda.is_available():
        logging.getLogger(LOGGER_NAME).warning("config.device=%s but CUDA is not available; using cpu", name)
        return torch.device("cpu")
    return torch.device(name)


PROGRESS_LOG_EVERY = 30.0  # seconds between progress lines in logs (stderr not a terminal)


def progress(iterable=None, log_every=None, **kwargs):
    """A tqdm bar on a terminal. When stderr is not one (a log file, a batch job) the bar would be off
    and a long solve silent: then a `LogProgress` logs a line at most every `log_every` seconds
    (default PROGRESS_LOG_EVERY; 0: none)."""
    log_every = PROGRESS_LOG_EVERY if log_every is None else log_every
    if iterable is None and log_every and kwargs.get("disable") is None and not _stderr_is_terminal():
        return LogProgress(every=log_every, **kwargs)
    kwargs.setdefault("dynamic_ncols", True)
    kwargs.setdefault("disable", None)  # off when stderr is not a terminal
    return tqdm(iterable, **kwargs)


def _stderr_is_terminal():
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):  # replaced or closed stream
        return False


def format_duration(seconds):
    """'1h02m', '3m05s', '42s' ('?' when unknown)."""
    if not (seconds >= 0 and seconds < float("inf")):
        return "?"
    s = int(round(seconds))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


class LogProgress:
    """What a progress bar shows, as log lines: `desc: n/total unit (pct), postfix, elapsed, ETA`, at most
    one every `every` seconds (the first after `every` seconds: quick work logs nothing). The part of
    tqdm's interface the loops use: update, set_postfix, n, close, a context manager."""

    def __init__(self, total=None, initial=0, desc="", unit="it", every=PROGRESS_LOG_EVERY, **_):
        self.total, self.n, self.desc, self.unit, self.every = total, initial, desc, unit, every
        self.start = self.last = time.time()
        self.start_n, self.postfix = initial, ""

    def update(self, k=1):
        self.n += k
        now = time.time()
        if now - self.last >= self.every:
            self.last = now
            logging.getLogger(LOGGER_NAME).info("%s", self.line(now))

    def set_postfix(self, refresh=True, **values):
        self.postfix = ", ".join(f"{k} {v}" for k, v in values.items())

    def line(self, now=None):
        elapsed = (now or time.time()) - self.start
        done = self.n - self.start_n
        count = (f"{self.n}%" if self.unit == "%" and self.total == 100 else
                 f"{self.n}/{self.total} {self.unit}" if self.total else f"{self.n} {self.unit}")
        parts = [f"{self.desc}: {count}"]
        if self.postfix:
            parts.append(self.postfix)
        parts.append(f"{format_duration(elapsed)} elapsed")
        if self.total:
            parts.append(f"ETA {format_duration(elapsed * (self.total - self.n) / done) if done > 0 else '?'}")
        return ", ".join(parts)

    def close(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class LossLog:
    """loss.csv: a header, then (step, loss, lr) rows, flushed as written; appends on resume. A context
    manager; with path None (ranks other than 0) it writes nothing."""

    def __init__(self, path):
        self.file = open(path, "a", newline="") if path else None
        self.writer = csv.writer(self.file) if self.file else None
        if self.file and self.file.tell() == 0:
            self.writer.writerow(["step", "loss", "lr"])

    def write(self, step, loss, lr):
        if self.file:
            self.writer.writerow([step, f"{loss:.6g}", f"{lr:.3g}"])
            self.file.flush()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.file:
            self.file.close()


class Rate:
    """Steps per second since the previous call (or since construction); `eta(step, last)` the time to
    step `last` at the mean rate since construction (steadier than the last interval's on a busy machine)."""

    def __init__(self, step):
        self.start, self.step = time.time(), step
        self.first_time, self.first_step = self.start, step

    def __call__(self, step):
        rate = (step - self.step) / max(time.time() - self.start, 1e-9)
        self.start, self.step = time.time(), step
        return rate

    def eta(self, step, last):
        done, spent = step - self.first_step, time.time() - self.first_time
        return format_duration((last - step) * spent / done if done > 0 else float("nan"))


@contextlib.contextmanager
def on_stop_signals(handler):
    """Within the block SIGTERM and SIGINT call handler(signum, frame) instead of ending the process (only
    the main thread can install handlers; elsewhere this does nothing). The old handlers come back after."""
    old = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            old[sig] = signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, h in old.items():
            signal.signal(sig, h)


def stop_requested():
    """A SIGTERM / Ctrl-C arrived during start-up (`pfgm.stop`)."""
    return bool(stop.REQUESTED)


# -- distributed ----------------------------------------------------------------------------

def dist_env():
    """(rank, world_size, local_rank) from torchrun's environment; (0, 1, 0) when not launched by it."""
    return (int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
            int(os.environ.get("LOCAL_RANK", 0)))


def init_distributed(device_name, timeout=None):
    """Join the process group when launched by torchrun: NCCL on GPUs, gloo on CPU; `timeout` (a
    timedelta) bounds every collective (pfgm.distributed.timeout).

    Returns (rank, world_size, device). Without torchrun: (0, 1, the configured device).
    """
    import torch.distributed as dist

    rank, world, local = dist_env()
    device = resolve_device(device_name)
    if world == 1:
        return 0, 1, device
    if device.type == "cuda":
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo", timeout=timeout)
    return dist.get_rank(), dist.get_world_size(), device


def finish_distributed():
    """Leave the process group, if one was joined, and free it now. A group still alive when the interpreter
    exits has its gloo threads torn down mid-flight: a rank then aborts ("terminate called without an active
    exception") after its work, about one run in fifteen of the two-rank test. destroy_process_group only
    drops the package's own reference; a DistributedDataParallel wrapper holds another, so the callers'
    trainers must be gone, and the collection frees those caught in reference cycles."""
    import gc

    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        gc.collect()
        dist.destroy_process_group()


def config_root(path):
    """The folder holding the `configs` package that config file `path` belongs to (the configs import
    `configs.default_*`, and the package is not installed): found from the file itself, so any path to
    a checkout's config works from any folder; else the checkout pfgm was installed from."""
    for parent in Path(path).resolve().parents:
        if parent.name == "configs" and (parent / "__init__.py").is_file():
            return parent.parent
    return REPO_ROOT


def load_config_file(path):
    """`get_config()` of an ml_collections-style config file, e.g.
    `load_config_file("configs/poisson/toy2d.py")` (any path to it; see `config_root`). Errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such config file")
    root = str(config_root(path))
    if root not in sys.path:
        sys.path.insert(0, root)
    spec = importlib.util.spec_from_file_location(f"_pfgm_config_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as e:  # noqa: BLE001 - any failure of a config's import is reported in one line
        raise ValueError(f"{path}: cannot load the config file ({type(e).__name__}: {e})") from e
    get_config = getattr(module, "get_config", None)
    if not callable(get_config):
        raise ValueError(f"{path}: not a config file (it defines no get_config() function)")
    return get_config()
