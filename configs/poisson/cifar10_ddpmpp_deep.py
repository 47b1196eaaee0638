"""PFGM with the deep DDPM++ (8 ResBlocks per level) on CIFAR-10 (paper: FID 2.35, IS 9.68).

Identical to poisson/cifar10_ddpmpp except model.num_res_blocks = 8.
"""
from configs.poisson.cifar10_ddpmpp import get_config as _ddpmpp_config


def get_config():
    config = _ddpmpp_config()
    config.model.num_res_blocks = 8
    return config
