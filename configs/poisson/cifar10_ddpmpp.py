"""PFGM with DDPM++ on CIFAR-10: the paper's main model (paper: FID 2.48, IS 9.65). The PFGM settings
are those of every CIFAR-10 PFGM config: default_cifar10_configs.get_pfgm_config().

Fixes relative to the official file (github.com/Newbeeer/Poisson_flow, configs/poisson/cifar10_ddpmpp.py):
the unused keys training.model, data.channels (a duplicate of data.num_channels) and sampling.vs are
dropped; sampling.rtol/atol (hard-coded 1e-4 there) are keys.
"""
from configs.default_cifar10_configs import get_pfgm_config
from configs.default_common import set_ncsnpp


def get_config():
    config = get_pfgm_config()
    set_ncsnpp(config.model, embedding_type="positional")  # EMA 0.9999 and dropout 0.1: the defaults'
    return config
