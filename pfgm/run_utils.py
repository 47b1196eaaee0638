"""Small pieces the training and evaluation loops share: logging, seeding, devices."""
import logging
import os
import random
import sys

import numpy as np
import torch
from tqdm.auto import tqdm

LOGGER_NAME = "pfgm"


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


def progress(iterable=None, **kwargs):
    kwargs.setdefault("dynamic_ncols", True)
    kwargs.setdefault("disable", None)  # off when stderr is not a terminal
    return tqdm(iterable, **kwargs)
