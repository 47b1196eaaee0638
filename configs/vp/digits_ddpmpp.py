"""VP SDE baseline on the 8x8 digits: the UNet, step budget and points per step of poisson/digits_ddpmpp
(default_digits_configs.get_sde_config).

DSM trains on every image of the batch, so batch_size = 64 = PFGM's small_batch_size (PFGM's other
448 images per step are only charges).
"""
from configs.default_digits_configs import get_sde_config, set_small_unet


def get_config():
    config = get_sde_config("vpsde")
    set_small_unet(config.model, embedding_type="positional")
    return config
