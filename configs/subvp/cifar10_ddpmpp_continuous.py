"""sub-VP SDE (score SDE) baseline: DDPM++ on CIFAR-10, continuous training (the official PFGM
repository's configs/subvp/cifar10_ddpmpp_continuous.py, itself score_sde's).

Same as vp/cifar10_ddpmpp_continuous except training.sde = 'subvpsde'. Fix relative to the official
file: sampling.ode_solver = 'rk45' is set (missing there; see the VP config).
"""
from configs.vp.cifar10_ddpmpp_continuous import get_config as _vp_config


def get_config():
    config = _vp_config()
    config.training.sde = "subvpsde"
    return config
