"""Defaults shared by the LSUN 256x256 configs, and get_pfgm_config(), the start of the LSUN PFGM
configs. Values: the official PFGM code's LSUN defaults (Xu et al. 2022, github.com/Newbeeer/Poisson_flow,
configs/default_lsun_configs.py), over the CIFAR-10 defaults for every key they share.

Fixes relative to the official defaults: config.device is a string; the keys listed in
default_cifar10_configs are present too; sampling.vs is dropped.
"""
from configs.default_cifar10_configs import get_default_configs as _cifar10_defaults
from configs.default_common import pfgm_run, set_pfgm


def get_default_configs():
    config = _cifar10_defaults()
    config.training.update(batch_size=64, small_batch_size=64, n_iters=2400001, eval_freq=5000,
                           snapshot_freq_for_preemption=5000)
    config.sampling.snr = 0.075
    config.eval.update(begin_ckpt=11, end_ckpt=20, batch_size=100, enable_sampling=True)
    # root: a folder of LSUN images (exported from the LMDB); center crop to a square, bicubic resize.
    config.data.update(dataset="LSUN", root="data/lsun/bedroom", image_size=256)
    config.model.update(sigma_max=378.0, num_scales=2000, dropout=0.0)

    # The official values. z_max = 100 and upper_norm = 30000 do not follow the paper's App. B rule
    # (which gives 296 and 164,760 for M = 356).
    set_pfgm(config, M=356, z_max=100.0, upper_norm=30000.0, z_exp=0.1)
    return config


def get_pfgm_config():
    """The start of every LSUN PFGM config (the paper's bedroom run): batch_size = small_batch_size = 32,
    so the "large batch" of charges is the training batch itself; the mean loss; the backward ODE on
    centered data. The config files add the network."""
    config = get_default_configs()
    pfgm_run(config, batch_size=32, small_batch_size=32, reduce_mean=True)
    return config
