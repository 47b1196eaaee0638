"""VP SDE (score SDE) baseline: DDPM++ on CIFAR-10, continuous training (the official PFGM repository's
configs/vp/cifar10_ddpmpp_continuous.py, itself score_sde's: Song et al. 2021,
github.com/yang-song/score_sde_pytorch). The shared SDE settings: default_cifar10_configs.get_sde_config.

Fixes relative to the official file: it sets sampling.method = 'ode' without sampling.ode_solver, which
crashes at start-up (snapshot sampling reads it); ode_solver = 'rk45' is set (by
default_common.sde_run), with the probability-flow RK45 tolerances 1e-5 and end time eps = 1e-3 of the
score_sde sampler. beta_min = 0.1, beta_max = 20, num_scales = 1000, EMA 0.9999, dropout 0.1: the defaults'.
"""
from configs.default_cifar10_configs import get_sde_config
from configs.default_common import set_ncsnpp


def get_config():
    config = get_sde_config("vpsde")
    config.training.reduce_mean = True
    set_ncsnpp(config.model, embedding_type="positional")
    return config
