"""PFGM with NCSN++ on CIFAR-10 (facts §5.1): Fourier features of log z, FIR resampling, a residual
input pyramid, EMA 0.999.

Fixes relative to the official file: the unused keys training.model (the typo "nscnpp"), model.z_max /
model.z_min (sampling.z_max / z_min are the ones read), data.channels and sampling.vs are dropped.
"""
from configs.default_cifar10_configs import get_default_configs, set_ncsnpp


def get_config():
    config = get_default_configs()

    training = config.training
    training.sde = "poisson"
    training.continuous = True
    training.batch_size = 4096
    training.small_batch_size = 128
    training.M = 291
    training.tau = 0.03
    training.gamma = 5.0
    training.restrict_M = True
    training.reduce_mean = False
    training.snapshot_freq = 50000

    data = config.data
    data.centered = True

    sampling = config.sampling
    sampling.method = "ode"
    sampling.ode_solver = "rk45"
    sampling.N = 100
    sampling.z_max = 40.0
    sampling.z_min = 1e-3
    sampling.upper_norm = 3000.0
    sampling.z_exp = 5.0
    sampling.rtol = 1e-4
    sampling.atol = 1e-4

    model = config.model
    set_ncsnpp(model, embedding_type="fourier", fir=True, progressive_input="residual")
    model.ema_rate = 0.999
    model.dropout = 0.1
    model.sigma_end = 0.01
    return config
