"""sub-VP SDE baseline on a 2-D toy distribution: the VP toy config with training.sde = 'subvpsde'."""
from configs.vp.toy2d import get_config as get_vp_config


def get_config():
    config = get_vp_config()
    config.training.sde = "subvpsde"
    return config
