"""PFGM with DDPM++ on CelebA 64x64 (FID 3.68; facts §5.1).

Fixes relative to the official file: training.model, data.channels and sampling.vs are dropped;
training.M = 291 comes from the CelebA defaults (missing from the official ones).
"""
from configs.default_celeba_configs import get_default_configs
from configs.default_cifar10_configs import set_ncsnpp


def get_config():
    config = get_default_configs()

    training = config.training
    training.sde = "poisson"
    training.continuous = True
    training.batch_size = 512
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
    sampling.z_max = 60.0
    sampling.z_min = 1e-3
    sampling.upper_norm = 6000.0
    sampling.z_exp = 1.0
    sampling.rtol = 1e-4
    sampling.atol = 1e-4

    model = config.model
    set_ncsnpp(model, embedding_type="positional")
    model.ema_rate = 0.9999
    model.dropout = 0.1
    model.sigma_end = 0.01
    return config
