"""PFGM with DDPM++ on LSUN bedroom 256x256 (paper: FID 13.66). The PFGM settings:
default_lsun_configs.get_pfgm_config().

Fixes relative to the official file (github.com/Newbeeer/Poisson_flow, configs/poisson/bedroom_ddpmpp.py):
training.model, data.channels and sampling.vs are dropped.
"""
from configs.default_common import set_ncsnpp
from configs.default_lsun_configs import get_pfgm_config


def get_config():
    config = get_pfgm_config()
    # six levels (256 .. 8), two ResBlocks each; EMA 0.9999 and dropout 0: the defaults'
    set_ncsnpp(config.model, embedding_type="positional", ch_mult=(1, 1, 2, 2, 4, 4), num_res_blocks=2)
    config.optim.lr = 2e-5
    return config
