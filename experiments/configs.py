"""A row's network: its config, the command that trains it, the checkpoint to evaluate, the budget check.

build_config(row, opts) is the row's config file with the row's overrides and, at the cpu scale, the
study's common step budget (opts: run_table's options). train_command is the same config spelled as
`python -m pfgm.main` flags, printed for rows whose checkpoint is missing. budget_report lists the keys
that define an equal budget across the models of a table, differences included.
"""
import contextlib
import os
import shlex

# The repository holding experiments/ and configs/: row configs are relative to it.
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Keys that define an equal budget for the CPU comparison; differences are printed, not hidden.
BUDGET_KEYS = ["training.n_iters", "training.small_batch_size", "model.name", "model.nf", "model.ch_mult",
               "model.num_res_blocks", "model.attn_resolutions", "model.ema_rate", "optim.lr",
               "optim.warmup", "optim.grad_clip", "data.dataset", "seed", "model.model_channels",
               "model.channel_mult", "model.num_blocks", "training.augment_p"]


def load_config(path):
    """A row's config; relative paths are relative to the repository root."""
    from pfgm.run_utils import load_config_file
    return load_config_file(path if os.path.isabs(path) else os.path.join(ROOT, path))


def set_key(config, key, value):
    """config.<dotted key> = value, through a locked ConfigDict."""
    *parents, last = key.split(".")
    node = config
    for p in parents:
        node = node[p]
    with node.unlocked() if hasattr(node, "unlocked") else contextlib.nullcontext():
        node[last] = value


def _fmt_flag(value):
    if isinstance(value, (tuple, list)):
        return "(" + ",".join(str(v) for v in value) + ("," if len(value) == 1 else "") + ")"
    return str(value)


def training_overrides(row, opts):
    """Config changes of the trained model: the row's own, plus (cpu) the common step budget."""
    o = dict(row.overrides)
    if opts.get("n_iters") and opts["scale"] == "cpu":
        n = int(opts["toy_n_iters"] if row.model.startswith("toy_") and opts.get("toy_n_iters") else opts["n_iters"])
        every = int(opts.get("snapshot_every") or n)  # the convergence table reads every snapshot
        o.update({"training.n_iters": n, "training.snapshot_freq": min(every, n),
                  "training.snapshot_freq_for_preemption": max(1, min(500, n))})
    elif opts.get("toy_n_iters") and row.model.startswith("toy_"):
        n = int(opts["toy_n_iters"])
        o.update({"training.n_iters": n, "training.snapshot_freq": n})
    if opts["scale"] == "cpu":
        o["training.snapshot_sampling"] = False  # the study samples the final checkpoint itself
    return o


def build_config(row, opts):
    config = load_config(row.config)
    for k, v in training_overrides(row, opts).items():
        set_key(config, k, v)
    if opts.get("device"):
        set_key(config, "device", opts["device"])
    return config


def train_command(row, opts):
    flags = " ".join(f"--config.{k}={shlex.quote(_fmt_flag(v))}" for k, v in training_overrides(row, opts).items())
    wd = model_dir(opts, row.model)
    return (f"python -m pfgm.main --config {row.config} --workdir {shlex.quote(wd)} --mode train"
            + (" " + flags if flags else ""))


def model_dir(opts, model):
    """Where a model's run lives: opts['model_dirs'][model] when given (e.g. the quick start's runs/toy2d
    for toy_pfgm), else DIR/<model>."""
    return (opts.get("model_dirs") or {}).get(model) or os.path.join(opts["workdir"], model)


def find_checkpoint(config, model_dir, scale, step=None):
    """(step, path) to evaluate, or None: checkpoint_<step>, else the run's final checkpoint (cpu), else the
    newest one."""
    from pfgm import checkpoint
    if scale == "cpu" or step is not None:
        step = config.training.n_iters if step is None else step
        path = checkpoint.checkpoint_path(model_dir, step)
        return (step, path) if os.path.exists(path) else None
    found = checkpoint.list_checkpoints(model_dir)
    return found[-1] if found else None


def budget_report(rows, opts):
    """One line per BUDGET_KEYS key ('same, v' or 'DIFFERS, model=v, ...') and the parameter counts, over
    the digits models of `rows`."""
    configs = {}
    for row in rows:
        if row.model not in configs and not row.model.startswith("toy_"):
            configs[row.model] = build_config(row, opts)
    if not configs:
        return []
    from pfgm import config_checks, models
    lines = []
    for key in BUDGET_KEYS:
        vals = {}
        for n, c in configs.items():
            try:
                vals[n] = config_checks.get(c, key)
            except config_checks.ConfigError:  # a key this model's config lacks
                vals[n] = None
        same = len({repr(v) for v in vals.values()}) == 1
        lines.append(f"{key}: " + ("same, " + repr(next(iter(vals.values()))) if same else
                                   "DIFFERS, " + ", ".join(f"{n}={v!r}" for n, v in vals.items())))
    lines.append("parameters: " + ", ".join(
        f"{n}={sum(p.numel() for p in models.build(c, 'cpu').parameters())}" for n, c in configs.items()))
    return lines
