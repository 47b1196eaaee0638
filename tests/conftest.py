"""What the test files share: the repository root, shipped configs shrunk to train in seconds, and the
`e2e` marker (end-to-end runs of training, evaluation, the command lines and the experiment driver;
`pytest -m "not e2e"` keeps the fast unit tests)."""
import os

from pfgm.config_checks import leaves
from pfgm.run_utils import load_config_file

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


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
