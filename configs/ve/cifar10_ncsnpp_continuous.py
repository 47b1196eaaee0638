"""VE SDE (score SDE) baseline: NCSN++ on CIFAR-10, continuous training (the official PFGM repository's
configs/ve/cifar10_ncsnpp_continuous.py, itself score_sde's: Song et al. 2021,
github.com/yang-song/score_sde_pytorch). The shared SDE settings: default_cifar10_configs.get_sde_config.

Fixes relative to the official file: it sets sampling.method = 'ode' without sampling.ode_solver, which
crashes at start-up (snapshot sampling reads it); ode_solver = 'rk45' is set (by
default_common.sde_run), with the probability-flow RK45 tolerances 1e-5 and end time eps = 1e-5 of the
score_sde sampler. The summed loss (training.reduce_mean = False), sigma_min = 0.01, sigma_max = 50,
num_scales = 1000 and dropout 0.1 are the defaults'.
"""
from configs.default_cifar10_configs import get_sde_config
from configs.default_common import set_ncsnpp


def get_config():
    config = get_sde_config("vesde")
    model = config.model
    set_ncsnpp(model, embedding_type="fourier", fir=True, progressive_input="residual",
               scale_by_sigma=True)
    model.ema_rate = 0.999
    return config
