"""PFGM++ on a 2-D toy distribution: the MLP and training budget of poisson/toy2d, D = 128 extra
dimensions (--config.training.aug_dim=1 is PFGM's kernel, =inf the diffusion limit)."""
from configs.default_toy_configs import get_pfgmpp_config


def get_config():
    return get_pfgmpp_config(aug_dim=128)
