"""Defaults shared by the CelebA 64x64 configs (official CelebA defaults, facts §5.1).

Fixes relative to the official defaults: config.device is a string; training.M = 291 is set here (the
official CelebA defaults have no M although the PFGM loss reads it); the keys listed in
default_cifar10_configs are present too; sampling.vs is dropped.
"""
from configs.default_cifar10_configs import get_default_configs as _cifar10_defaults


def get_default_configs():
    config = _cifar10_defaults()
    config.seed = 42

    training = config.training
    training.batch_size = 128
    training.small_batch_size = 128
    training.n_iters = 1300001
    training.snapshot_freq = 50000
    training.log_freq = 50
    training.eval_freq = 5000
    training.snapshot_freq_for_preemption = 10000
    training.M = 291

    sampling = config.sampling
    sampling.snr = 0.17
    sampling.N = 1000
    sampling.z_max = 60.0
    sampling.upper_norm = 6000.0
    sampling.z_exp = 1.0

    evaluate = config.eval
    evaluate.begin_ckpt = 5
    evaluate.end_ckpt = 26
    evaluate.batch_size = 1000
    evaluate.num_samples = 10000

    data = config.data
    data.dataset = "CELEBA"
    # A folder of CelebA images (e.g. img_align_celeba/ with list_eval_partition.txt next to the
    # images for the official split); center crop 140, resize to 64 (pfgm.datasets.images).
    data.root = "data/celeba"
    data.image_size = 64
    data.random_flip = True
    data.uniform_dequantization = False
    data.centered = False
    data.num_channels = 3

    model = config.model
    model.sigma_max = 90.0
    model.sigma_min = 0.01
    model.num_scales = 1000
    model.dropout = 0.1
    return config
