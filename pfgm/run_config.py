"""The config a checkpoint was written under, and the one rule of which keys may differ from it.

Every checkpoint records its run's config as plain data (a JSON string of dotted key -> value, readable
with `weights_only`). Resuming may change only what decides how long a run lasts, what it logs, where
and how fast it runs (device, threads, workers, compilation) and how it is evaluated
(`MAY_CHANGE_ON_RESUME`); any other change would mix two runs in one set of weights, so it is refused
naming the keys. Evaluation refuses a config whose network or method
differs from the recorded one (`EVAL_MUST_MATCH`), e.g. a VP checkpoint under the PFGM++ config.
Checkpoints without a record (older ones, the original code's) are loaded with a warning.
Keys present on one side only (added or removed by another version of this package) are not compared.
"""
import json
import logging

from pfgm.config_checks import ConfigError, leaves

ENTRY = "config"  # the checkpoint's entry holding the record

# Keys (or sections, ending in '.') that a resume may change.
MAY_CHANGE_ON_RESUME = (
    "device", "num_threads", "collective_timeout", "data.root", "data.path", "data.num_workers", "eval.", "sampling.",
    "training.compile",
    "training.n_iters", "training.log_freq", "training.eval_freq", "training.snapshot_freq",
    "training.snapshot_freq_for_preemption", "training.snapshot_sampling", "training.snapshot_num_samples",
    "training.max_nonfinite_steps",
)

# Keys (or sections) that decide what a checkpoint's network computes and how the method reads it:
# evaluation must use the recorded values. Training-only keys of the model section are exempt.
EVAL_MUST_MATCH = ("model.", "training.sde", "training.aug_dim", "training.continuous", "data.centered",
                   "data.image_size", "data.num_channels", "data.shape")
EVAL_MAY_DIFFER = ("model.ema_rate", "model.dropout", "model.ema_halflife_kimg", "model.ema_rampup_ratio")


def _plain(value):
    """The value as the record stores it (tuples become lists, as JSON has them)."""
    return json.loads(json.dumps(value))


def record(config):
    """The record of `config` to store in a checkpoint."""
    return json.dumps({key: value for key, value in leaves(config)}, sort_keys=True)


def recorded(state):
    """The record of a read checkpoint as a dict, or None when it has none (or an unreadable one)."""
    text = state.get(ENTRY)
    if not isinstance(text, str):
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _matches(key, rules):
    return any(key == r or (r.endswith(".") and key.startswith(r)) for r in rules)


def differences(old, config, keys):
    """[(key, recorded value, config value)] for the keys selected by `keys(key)` whose values differ."""
    found = []
    for key, value in leaves(config):
        if key in old and keys(key) and _plain(value) != old[key]:
            found.append((key, old[key], _plain(value)))
    return found


def _describe(changes):
    return ", ".join(f"{k} ({old!r} in the checkpoint, {new!r} now)" for k, old, new in changes[:4]) + (
        f" and {len(changes) - 4} more" if len(changes) > 4 else "")


def check_resume(state, config, path, log=None):
    """Refuse (ConfigError naming the keys) to resume from `state` under a config that changes its model,
    method, data or optimizer; warn when the checkpoint records no config."""
    old = recorded(state)
    if old is None:
        (log or logging.getLogger("pfgm")).warning(
            "checkpoint %s records no config (written by an older version or the original code): resuming "
            "without checking that this config is the one it was trained with", path)
        return
    changes = differences(old, config, lambda k: not _matches(k, MAY_CHANGE_ON_RESUME))
    if changes:
        raise ConfigError(
            f"{changes[0][0]}: resuming from {path!r} with a changed config would mix two runs: "
            f"{_describe(changes)}. Only run-length, logging, sampling, evaluation and speed (device, threads, "
            "workers, compilation) keys may change on resume; start a new run in another --workdir")


def check_eval(state, config, path, log=None):
    """Refuse (ConfigError naming the keys) to evaluate `state` under a config of another network or
    method; warn when the checkpoint records no config."""
    old = recorded(state)
    if old is None:
        (log or logging.getLogger("pfgm")).warning(
            "checkpoint %s records no config: cannot check that it was trained with this config's network "
            "and method", path)
        return
    changes = differences(old, config, lambda k: _matches(k, EVAL_MUST_MATCH) and not _matches(k, EVAL_MAY_DIFFER))
    if changes:
        raise ConfigError(f"{changes[0][0]}: checkpoint {path!r} was trained under another config: "
                          f"{_describe(changes)}; evaluate it with the config it was trained with")
