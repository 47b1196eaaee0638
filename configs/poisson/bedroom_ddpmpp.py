"""PFGM with DDPM++ on LSUN bedroom 256x256 (FID 13.66; facts §5.1).

With batch_size = small_batch_size = 32 the "large batch" of charges is the training batch itself.
Note that z_max = 100 and upper_norm = 30000 do not follow the App. B rule (which gives 296 and
164,760 for M = 356); they are the official values.

Fixes relative to the official file: training.model, data.channels and sampling.vs are dropped.
"""
from configs.default_cifar10_configs import set_ncsnpp
from configs.default_lsun_configs import get_default_configs


def get_config():
    config = get_default_configs()

    training = config.training
    training.sde = "poisson"
    training.continuous = True
    training.batch_size = 32
    training.small_batch_size = 32
    training.M = 356
    training.tau = 0.03
    training.gamma = 5.0
    training.restrict_M = True
    training.reduce_mean = True
    training.snapshot_freq = 50000

    data = config.data
    data.centered = True

    sampling = config.sampling
    sampling.method = "ode"
    sampling.ode_solver = "rk45"
    sampling.N = 100
    sampling.z_max = 100.0
    sampling.z_min = 1e-3
    sampling.upper_norm = 30000.0
    sampling.z_exp = 0.1
    sampling.rtol = 1e-4
    sampling.atol = 1e-4

    model = config.model
    set_ncsnpp(model, embedding_type="positional", ch_mult=(1, 1, 2, 2, 4, 4), num_res_blocks=2)
    model.ema_rate = 0.9999
    model.dropout = 0.0
    model.sigma_end = 0.01

    config.optim.lr = 2e-5
    return config
