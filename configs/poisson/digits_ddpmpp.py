"""PFGM with a small DDPM++ on scikit-learn's 8x8 digits: the CPU-sized image experiment.

The PFGM settings, and how M, z_max and upper_norm follow from the paper's App. B rule:
default_digits_configs (get_default_configs, get_pfgm_config).
"""
from configs.default_digits_configs import get_pfgm_config, set_small_unet


def get_config():
    config = get_pfgm_config()
    set_small_unet(config.model, embedding_type="positional")  # EMA 0.999: the defaults'
    return config
