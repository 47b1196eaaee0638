"""Defaults shared by the CelebA 64x64 configs, and get_pfgm_config(), the start of the CelebA PFGM
configs. Values: the official PFGM code's CelebA defaults (Xu et al. 2022, github.com/Newbeeer/Poisson_flow,
configs/default_celeba_configs.py), over the CIFAR-10 defaults for every key they share.

Fixes relative to the official defaults: config.device is a string; training.M = 291 is set here (the
official CelebA defaults have no M although the PFGM loss reads it); the keys listed in
default_cifar10_configs are present too; sampling.vs is dropped.
"""
from configs.default_cifar10_configs import get_default_configs as _cifar10_defaults
from configs.default_common import pfgm_run, set_pfgm


def get_default_configs():
    config = _cifar10_defaults()
    config.seed = 42
    config.training.eval_freq = 5000
    config.sampling.snr = 0.17
    config.eval.begin_ckpt = 5
    # root: a folder of CelebA images (e.g. img_align_celeba/ with list_eval_partition.txt next to the
    # images for the official split); center crop 140, resize to 64 (pfgm.datasets.image_folder).
    config.data.update(dataset="CELEBA", root="data/celeba", image_size=64)
    config.model.sigma_max = 90.0

    set_pfgm(config, M=291, z_max=60.0, upper_norm=6000.0, z_exp=1.0)
    return config


def get_pfgm_config():
    """The start of every CelebA PFGM config (the paper's run): 512 charges per step, 128 trained on,
    the summed loss, the backward ODE on centered data. The config files add the network."""
    config = get_default_configs()
    pfgm_run(config, batch_size=512, small_batch_size=128, reduce_mean=False)
    return config
