"""Validation of a config before any work starts: every error names the offending key."""
import math
import numbers
import os

from pfgm import datasets, methods, models, sampling
from pfgm.evaluation import likelihood


class ConfigError(ValueError):
    """An invalid config value; the message starts with the key."""


def _get(config, key):
    node = config
    for part in key.split("."):
        if part not in node:
            raise ConfigError(f"{key}: missing from the config")
        node = node[part]
    return node


def _number(config, key, *, low=None, high=None, strict_low=False, integer=False, optional=False,
            allow_inf=False):
    if optional:
        try:
            value = _get(config, key)
        except ConfigError:
            return None
    else:
        value = _get(config, key)
    kind = numbers.Integral if integer else numbers.Real
    if isinstance(value, bool) or not isinstance(value, kind):
        raise ConfigError(f"{key}: expected {'an integer' if integer else 'a number'}, got {value!r}")
    if math.isnan(value) or (math.isinf(value) and not allow_inf):
        raise ConfigError(f"{key}: must be finite, got {value!r}")
    if low is not None and (value <= low if strict_low else value < low):
        raise ConfigError(f"{key}: must be {'>' if strict_low else '>='} {low}, got {value!r}")
    if high is not None and value > high:
        raise ConfigError(f"{key}: must be <= {high}, got {value!r}")
    return value


def _choice(config, key, choices):
    value = _get(config, key)
    if value not in choices:
        raise ConfigError(f"{key}: unknown value {value!r}; choose one of {sorted(choices)}")
    return value


# Every key some code reads, by section. A key outside this table is refused by name: a misspelt or
# stale key would otherwise be silently ignored (tests/test_config_keys.py checks every shipped config
# against it, and that each key here is read somewhere in pfgm/).
KNOWN_KEYS = {
    "": {"device", "seed"},
    "data": {"centered", "dataset", "image_size", "num_channels", "path", "random_flip", "root", "shape",
             "uniform_dequantization"},
    "eval": {"batch_size", "begin_ckpt", "end_ckpt", "enable_loss", "enable_sampling", "num_samples", "fid_stats",
             "inception_weights", "save_images", "enable_interpolate", "enable_rescale", "enable_bpd",
             "bpd_atol", "bpd_batch_size", "bpd_dataset", "bpd_estimator", "bpd_num_repeats", "bpd_num_samples",
             "bpd_rtol", "bpd_solver", "bpd_steps"},
    "model": {"name", "ema_rate", "nf", "dropout", "sigma_end", "sigma_min", "sigma_max", "beta_min", "beta_max",
              "num_scales", "scale_by_sigma", "embedding_type", "fourier_scale", "conditional",
              # NCSN++ / DDPM++
              "attention_type", "attn_resolutions", "ch_mult", "conv_size", "fir", "fir_kernel", "init_scale",
              "nonlinearity", "normalization", "num_res_blocks", "progressive", "progressive_combine",
              "progressive_input", "resamp_with_conv", "resblock_type", "skip_rescale",
              # the toy MLP
              "embed_dim", "num_layers", "scale_input"},
    "optim": {"beta1", "eps", "grad_clip", "lr", "optimizer", "warmup", "weight_decay"},
    "sampling": {"method", "ode_solver", "N", "rtol", "atol", "max_nfe",
                 "z_max", "z_min", "upper_norm", "z_exp",                      # PFGM
                 "eps", "noise_removal", "predictor", "corrector", "snr", "n_steps_each",
                 "probability_flow"},
    "training": {"sde", "batch_size", "small_batch_size", "n_iters", "log_freq", "eval_freq", "snapshot_freq",
                 "snapshot_freq_for_preemption", "snapshot_sampling", "snapshot_num_samples",
                 "max_nonfinite_steps", "reduce_mean", "continuous", "likelihood_weighting",
                 "M", "tau", "gamma", "restrict_M"},                           # PFGM
}


def check_known_keys(config):
    """Raise ConfigError naming the first key (or section) that no code reads."""
    for key, _ in _leaves(config):
        section, _, name = key.rpartition(".")
        if section not in KNOWN_KEYS:
            raise ConfigError(f"{key}: no code reads the section {section!r}; known sections: "
                              f"{sorted(s for s in KNOWN_KEYS if s)}")
        if name not in KNOWN_KEYS[section]:
            raise ConfigError(f"{key}: no code reads this key (misspelt, or left from another code base?); "
                              f"remove it. Known {section or 'top-level'} keys: {sorted(KNOWN_KEYS[section])}")


def _leaves(node, prefix=""):
    for k, v in node.items():
        if hasattr(v, "items"):
            yield from _leaves(v, f"{prefix}{k}.")
        else:
            yield f"{prefix}{k}", v


def validate(config, mode="train"):
    """Raise ConfigError for the first invalid value. Checks keys, types, ranges, names and files."""
    check_known_keys(config)
    for key, value in _leaves(config):
        values = value if isinstance(value, (tuple, list)) else [value]
        for v in values:
            if isinstance(v, float) and math.isnan(v):
                raise ConfigError(f"{key}: NaN is not a valid value")
    device = _get(config, "device")
    try:
        if not isinstance(device, str):
            raise TypeError
        import torch
        torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise ConfigError(f"device: {device!r} is not a device; use 'cpu', 'cuda' or 'cuda:N'") from None
    sde = _choice(config, "training.sde", methods.method_names())
    _choice(config, "model.name", models.model_names())
    dataset = _choice(config, "data.dataset", datasets.dataset_names())

    batch = _number(config, "training.batch_size", low=1, integer=True)
    _number(config, "training.n_iters", low=0, integer=True)
    for key in ("log_freq", "eval_freq", "snapshot_freq", "snapshot_freq_for_preemption"):
        _number(config, f"training.{key}", low=1, integer=True)
    _number(config, "optim.lr", low=0, strict_low=True)
    _number(config, "optim.warmup", low=0, integer=True)
    _number(config, "optim.grad_clip", low=0)
    beta1 = _number(config, "optim.beta1", low=0)
    if beta1 >= 1:
        raise ConfigError(f"optim.beta1: must be in [0, 1), got {beta1!r}")
    _number(config, "optim.eps", low=0)
    _number(config, "optim.weight_decay", low=0)
    _number(config, "model.ema_rate", low=0, high=1)
    _number(config, "eval.batch_size", low=1, integer=True)
    _number(config, "eval.num_samples", low=1, integer=True)
    _number(config, "sampling.N", low=1, integer=True)
    _number(config, "seed", low=0, integer=True)
    if _get(config, "sampling.method") == "ode":
        _choice(config, "sampling.ode_solver", set(sampling.SOLVERS) | {"forward_euler", "improved_euler"})
    for key in ("rtol", "atol"):
        _number(config, f"sampling.{key}", low=0, strict_low=True, optional=True)

    if config.get("eval", {}).get("enable_bpd", False):
        if "bpd_dataset" in config.eval:
            _choice(config, "eval.bpd_dataset", {"train", "test"})
        _number(config, "eval.bpd_num_samples", low=0, integer=True, optional=True)
        _number(config, "eval.bpd_batch_size", low=0, integer=True, optional=True)
        _number(config, "eval.bpd_num_repeats", low=1, integer=True, optional=True)
        _number(config, "eval.bpd_steps", low=1, integer=True, optional=True)
        for key in ("bpd_rtol", "bpd_atol"):
            _number(config, f"eval.{key}", low=0, strict_low=True, optional=True)
        if "bpd_solver" in config.eval:
            _choice(config, "eval.bpd_solver", set(sampling.SOLVERS))
        if "bpd_estimator" in config.eval:
            _choice(config, "eval.bpd_estimator", set(likelihood.ESTIMATORS))

    if sde == "poisson":
        small = _number(config, "training.small_batch_size", low=1, integer=True)
        if small > batch:
            raise ConfigError(f"training.small_batch_size: {small} exceeds training.batch_size {batch}; "
                              "the trained points must be part of the charge batch")
        _number(config, "training.M", low=0, strict_low=True)
        _number(config, "training.tau", low=0, strict_low=True)
        _number(config, "training.gamma", low=0)
        _number(config, "model.sigma_end", low=0, strict_low=True)
        z_min = _number(config, "sampling.z_min", low=0, strict_low=True)
        z_max = _number(config, "sampling.z_max", low=0, strict_low=True)
        if z_min >= z_max:
            raise ConfigError(f"sampling.z_min: must be below sampling.z_max ({z_max}), got {z_min}")
        _number(config, "sampling.upper_norm", low=0, strict_low=True, allow_inf=True)
    _number(config, "sampling.max_nfe", low=0, integer=True, optional=True)
    _number(config, "training.max_nonfinite_steps", low=1, integer=True, optional=True)
    check = getattr(methods.get_method_class(sde), "check_config", None)
    if check is not None:
        try:
            check(config)
        except ConfigError:
            raise
        except (ValueError, KeyError, AttributeError) as e:
            raise ConfigError(str(e)) from e

    if dataset == "points":
        path = _get(config, "data.path")
        if not path or not os.path.isfile(path):
            raise ConfigError(f"data.path: no such file {path!r}")
    elif dataset in ("CIFAR10", "CELEBA", "LSUN", "folder"):
        root = _get(config, "data.root")
        if not root or not os.path.exists(root):
            raise ConfigError(f"data.root: no such file or folder {root!r}")
    return config
