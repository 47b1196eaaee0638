"""PFGM on a 2-D toy distribution (default: checkerboard). The main job of the quick start.

Its settings (M, gamma, z_max, upper_norm, ..., and the reasons for them) are the toy's PFGM base:
default_toy_configs.get_pfgm_config().
"""
from configs.default_toy_configs import get_pfgm_config


def get_config():
    return get_pfgm_config()
