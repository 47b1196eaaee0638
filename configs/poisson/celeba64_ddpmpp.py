"""PFGM with DDPM++ on CelebA 64x64 (paper: FID 3.68). The PFGM settings:
default_celeba_configs.get_pfgm_config().

Fixes relative to the official file (github.com/Newbeeer/Poisson_flow, configs/poisson/celeba64_ddpmpp.py):
training.model, data.channels and sampling.vs are dropped; training.M = 291 comes from the CelebA
defaults (missing from the official ones).
"""
from configs.default_celeba_configs import get_pfgm_config
from configs.default_common import set_ncsnpp


def get_config():
    config = get_pfgm_config()
    set_ncsnpp(config.model, embedding_type="positional")  # EMA 0.9999 and dropout 0.1: the defaults'
    return config
