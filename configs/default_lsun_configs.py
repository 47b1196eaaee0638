"""Defaults shared by the LSUN 256x256 configs (official LSUN defaults, facts §5.1).

Fixes relative to the official defaults: config.device is a string; the keys listed in
default_cifar10_configs are present too; sampling.vs is dropped.
"""
from configs.default_cifar10_configs import get_default_configs as _cifar10_defaults


def get_default_configs():
    config = _cifar10_defaults()
    config.seed = 49

    training = config.training
    training.batch_size = 64
    training.small_batch_size = 64
    training.n_iters = 2400001
    training.snapshot_freq = 50000
    training.log_freq = 50
    training.eval_freq = 5000
    training.snapshot_freq_for_preemption = 5000
    training.M = 356

    sampling = config.sampling
    sampling.snr = 0.075
    sampling.N = 1000
    sampling.z_max = 100.0
    sampling.upper_norm = 30000.0
    sampling.z_exp = 0.1

    evaluate = config.eval
    evaluate.begin_ckpt = 11
    evaluate.end_ckpt = 20
    evaluate.batch_size = 100
    evaluate.enable_sampling = True
    evaluate.num_samples = 10000

    data = config.data
    data.dataset = "LSUN"
    # A folder of LSUN images (exported from the LMDB); center crop to a square, bicubic resize.
    data.root = "data/lsun/bedroom"
    data.image_size = 256
    data.random_flip = True
    data.uniform_dequantization = False
    data.centered = False
    data.num_channels = 3

    model = config.model
    model.sigma_max = 378.0
    model.sigma_min = 0.01
    model.num_scales = 2000
    model.dropout = 0.0
    return config
