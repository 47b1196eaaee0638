"""PFGM++ with the small DDPM++ on scikit-learn's 8x8 digits, D = 128 (any integer D >= 1 or inf with
--config.training.aug_dim): the UNet, images per step and step budget of poisson/digits_ddpmpp."""
from configs.default_digits_configs import get_pfgmpp_config, set_small_unet


def get_config():
    config = get_pfgmpp_config(aug_dim=128)
    set_small_unet(config.model, embedding_type="positional")
    return config
