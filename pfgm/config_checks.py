"""Validation of a config before any work starts: every error names the offending key."""
import math
import numbers
import os

from pfgm import datasets, methods, models, sampling
from pfgm.datasets import augment, cifar10
from pfgm.evaluation import likelihood
from pfgm.images import UINT8_MODES


class ConfigError(ValueError):
    """An invalid config value; the message starts with the key."""


def get(config, key):
    """config's value at the dotted `key`; ConfigError naming it when it is missing."""
    node = config
    for part in key.split("."):
        if part not in node:
            raise ConfigError(f"{key}: missing from the config")
        node = node[part]
    return node


def number(config, key, *, low=None, high=None, strict_low=False, integer=False, optional=False,
           allow_inf=False):
    """The number at `key`, checked (type, finite unless allow_inf, bounds); ConfigError naming the key."""
    if optional:
        try:
            value = get(config, key)
        except ConfigError:
            return None
    else:
        value = get(config, key)
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


def trained_points(config):
    """training.small_batch_size, the points trained on per step: part of the training.batch_size charges."""
    small = number(config, "training.small_batch_size", low=1, integer=True)
    if small > config.training.batch_size:
        raise ConfigError(f"training.small_batch_size: {small} exceeds training.batch_size "
                          f"{config.training.batch_size}; the trained points must be part of the charge batch")
    return small


def ordered(config, low_key, high_key):
    """Two positive numbers, the one at low_key below the one at high_key (e.g. a sampler's two ends)."""
    lo = number(config, low_key, low=0, strict_low=True)
    hi = number(config, high_key, low=0, strict_low=True)
    if lo >= hi:
        raise ConfigError(f"{low_key}: must be below {high_key} ({hi}), got {lo}")
    return lo, hi


def choice(config, key, choices):
    """The value at `key`, which must be one of `choices`; ConfigError naming the key."""
    value = get(config, key)
    if value not in choices:
        raise ConfigError(f"{key}: unknown value {value!r}; choose one of {sorted(choices)}")
    return value


# Every key some code reads, by section. A key outside this table is refused by name: a misspelt or
# stale key would otherwise be silently ignored (tests/test_config_keys.py checks every shipped config
# against it, and that each key here is read somewhere in pfgm/).
KNOWN_KEYS = {
    "": {"device", "seed", "collective_timeout", "num_threads"},
    "data": {"centered", "dataset", "image_size", "num_channels", "path", "random_flip", "root", "shape",
             "uniform_dequantization", "num_workers"},
    "eval": {"batch_size", "begin_ckpt", "end_ckpt", "enable_loss", "enable_sampling", "num_samples", "fid_stats",
             "inception_weights", "save_images", "enable_interpolate", "enable_rescale", "enable_bpd",
             "bpd_atol", "bpd_batch_size", "bpd_dataset", "bpd_estimator", "bpd_num_repeats", "bpd_num_samples",
             "bpd_rtol", "bpd_solver", "bpd_steps", "first_seed", "uint8"},
    "model": {"name", "ema_rate", "ema_halflife_kimg", "ema_rampup_ratio", "nf", "dropout", "sigma_end",
              "sigma_min", "sigma_max", "beta_min", "beta_max",
              "num_scales", "scale_by_sigma", "embedding_type", "fourier_scale", "conditional",
              # NCSN++ / DDPM++
              "attention_type", "attn_resolutions", "ch_mult", "conv_size", "fir", "fir_kernel", "init_scale",
              "nonlinearity", "normalization", "num_res_blocks", "progressive", "progressive_combine",
              "progressive_input", "resamp_with_conv", "resblock_type", "skip_rescale",
              # the toy MLP
              "embed_dim", "num_layers", "scale_input",
              "sigma_data",                                                    # PFGM++
              "label_dim",                                                     # class labels (every network)
              # EDM's SongUNet
              "model_channels", "channel_mult", "channel_mult_emb", "num_blocks", "label_dropout",
              "channel_mult_noise", "encoder_type", "decoder_type", "resample_filter", "augment_dim"},
    "optim": {"beta1", "eps", "grad_clip", "lr", "optimizer", "warmup", "weight_decay", "lr_rampup_kimg",
              "nonfinite_grads"},
    "sampling": {"method", "ode_solver", "N", "rtol", "atol", "max_nfe",
                 "z_max", "z_min", "upper_norm", "z_exp",                      # PFGM
                 "eps", "noise_removal", "predictor", "corrector", "snr", "n_steps_each",
                 "probability_flow",
                 "sigma_min", "sigma_max", "rho", "S_churn", "S_min", "S_max", "S_noise",  # PFGM++
                 "class_label", "guidance", "guidance_tmin"},                                   # class labels
    "training": {"sde", "batch_size", "small_batch_size", "n_iters", "log_freq", "eval_freq", "snapshot_freq",
                 "snapshot_freq_for_preemption", "snapshot_sampling", "snapshot_num_samples",
                 "max_nonfinite_steps", "reduce_mean", "continuous", "likelihood_weighting",
                 "mixed_precision", "compile", "augment_p",
                 "M", "tau", "gamma", "restrict_M",                            # PFGM
                 "aug_dim", "P_mean", "P_std", "stf", "beta_clip",             # PFGM++
                 "label_dropout"},                                             # class labels
}


def check_known_keys(config):
    """Raise ConfigError naming the first key (or section) that no code reads."""
    for key, _ in leaves(config):
        section, _, name = key.rpartition(".")
        if section not in KNOWN_KEYS:
            raise ConfigError(f"{key}: no code reads the section {section!r}; known sections: "
                              f"{sorted(s for s in KNOWN_KEYS if s)}")
        if name not in KNOWN_KEYS[section]:
            raise ConfigError(f"{key}: no code reads this key (misspelt, or left from another code base?); "
                              f"remove it. Known {section or 'top-level'} keys: {sorted(KNOWN_KEYS[section])}")


def leaves(node, prefix=""):
    """(dotted key, value) of every leaf of a config, depth first."""
    for k, v in node.items():
        if hasattr(v, "items"):
            yield from leaves(v, f"{prefix}{k}.")
        else:
            yield f"{prefix}{k}", v


def validate(config, mode="train"):
    """Raise ConfigError for the first invalid value. Checks keys, types, ranges, names and files."""
    check_known_keys(config)
    for key, value in leaves(config):
        values = value if isinstance(value, (tuple, list)) else [value]
        for v in values:
            if isinstance(v, float) and math.isnan(v):
                raise ConfigError(f"{key}: NaN is not a valid value")
    device = get(config, "device")
    try:
        if not isinstance(device, str):
            raise TypeError
        import torch
        kind = torch.device(device).type
    except (RuntimeError, TypeError, ValueError):
        raise ConfigError(f"device: {device!r} is not a device; use 'cpu', 'cuda' or 'cuda:N'") from None
    # cuda falls back to the CPU with a warning (resolve_device); any other kind must be usable now
    if kind not in ("cpu", "cuda") and not (kind == "mps" and torch.backends.mps.is_available()):
        raise ConfigError(f"device: {device!r} cannot run this package here; use 'cpu', 'cuda' or 'cuda:N'")
    sde = choice(config, "training.sde", methods.method_names())
    choice(config, "model.name", models.model_names())
    dataset = choice(config, "data.dataset", datasets.dataset_names())

    number(config, "training.batch_size", low=1, integer=True)
    number(config, "training.n_iters", low=0, integer=True)
    for key in ("log_freq", "eval_freq", "snapshot_freq", "snapshot_freq_for_preemption"):
        number(config, f"training.{key}", low=1, integer=True)
    number(config, "optim.lr", low=0, strict_low=True)
    number(config, "optim.warmup", low=0, integer=True)
    if number(config, "optim.lr_rampup_kimg", low=0) > 0 and get(config, "optim.warmup") > 0:
        raise ConfigError("optim.lr_rampup_kimg: a ramp over images and optim.warmup (steps) are both set; "
                          "set one of them to 0")
    choice(config, "optim.nonfinite_grads", {"skip", "nan_to_num"})
    number(config, "optim.grad_clip", low=0)
    beta1 = number(config, "optim.beta1", low=0)
    if beta1 >= 1:
        raise ConfigError(f"optim.beta1: must be in [0, 1), got {beta1!r}")
    number(config, "optim.eps", low=0)
    number(config, "optim.weight_decay", low=0)
    number(config, "model.ema_rate", low=0, high=1)
    number(config, "model.ema_halflife_kimg", low=0)
    number(config, "model.ema_rampup_ratio", low=0)
    number(config, "eval.batch_size", low=1, integer=True)
    number(config, "eval.num_samples", low=1, integer=True)
    number(config, "eval.first_seed", low=-1, integer=True)
    choice(config, "eval.uint8", set(UINT8_MODES))
    number(config, "sampling.N", low=1, integer=True)
    number(config, "seed", low=0, integer=True)
    number(config, "collective_timeout", low=1, optional=True)
    number(config, "num_threads", low=0, integer=True)
    if get(config, "sampling.method") == "ode":
        choice(config, "sampling.ode_solver", set(sampling.SOLVERS) | set(sampling.SOLVER_ALIASES))
    for key in ("rtol", "atol"):
        number(config, f"sampling.{key}", low=0, strict_low=True, optional=True)

    if get(config, "eval.enable_bpd"):
        if "bpd_dataset" in config.eval:
            choice(config, "eval.bpd_dataset", {"train", "test"})
        number(config, "eval.bpd_num_samples", low=0, integer=True, optional=True)
        number(config, "eval.bpd_batch_size", low=0, integer=True, optional=True)
        number(config, "eval.bpd_num_repeats", low=1, integer=True, optional=True)
        number(config, "eval.bpd_steps", low=1, integer=True, optional=True)
        for key in ("bpd_rtol", "bpd_atol"):
            number(config, f"eval.{key}", low=0, strict_low=True, optional=True)
        if "bpd_solver" in config.eval:
            choice(config, "eval.bpd_solver", set(sampling.SOLVERS))
        if "bpd_estimator" in config.eval:
            choice(config, "eval.bpd_estimator", set(likelihood.ESTIMATORS))

    number(config, "sampling.max_nfe", low=0, integer=True, optional=True)
    number(config, "training.max_nonfinite_steps", low=1, integer=True, optional=True)
    if number(config, "training.augment_p", low=0, high=1, optional=True):
        augment_dim = config.model.get("augment_dim", 0)
        if augment_dim != augment.NUM_LABELS:
            raise ConfigError(f"training.augment_p: the augmentation's {augment.NUM_LABELS} labels must condition "
                              f"the network (model.augment_dim = {augment.NUM_LABELS}, model.name 'songunet'), "
                              f"got model.augment_dim {augment_dim}")
    if "mixed_precision" in config.training:
        choice(config, "training.mixed_precision", {"no", "bf16", "fp16"})
    number(config, "data.num_workers", low=0, integer=True,
           optional=dataset not in ("CELEBA", "LSUN", "folder"))  # the data read from files use it
    try:  # the method's own keys
        methods.get_method_class(sde).check_config(config)
    except ConfigError:
        raise
    except (ValueError, KeyError, AttributeError) as e:
        raise ConfigError(str(e)) from e

    if dataset == "points":
        path = get(config, "data.path")
        if not path or not os.path.isfile(path):
            raise ConfigError(f"data.path: no such file {path!r}")
    elif dataset in ("CIFAR10", "CELEBA", "LSUN", "folder"):
        root = get(config, "data.root")
        if root and not os.path.exists(root) and dataset == "CIFAR10":
            raise ConfigError(cifar10.missing_root(root))
        if not root or not os.path.exists(root):
            raise ConfigError(f"data.root: no such file or folder {root!r} (for {dataset}: a folder of images)")
    return config
