"""PFGM with a small DDPM++ on scikit-learn's 8x8 digits: the CPU-sized image experiment.

M, z_max and upper_norm follow the App. B rule, pfgm.poisson.hyperparameters(data_norm, data_dim):
  data_norm = 6.77, the mean L2 norm of the centered digits 2x - 1 (x = pixel / 16) over all 1797
    images (median 6.78, max 7.53), data_dim = 64, sigma_end = 0.01, tau = 0.03
  -> M = 261, z_max = 17.88, upper_norm = 179.3.
z_exp = 1: the z-substitution's one-charge model was checked for N = 3072; with N = 64 it is kept to
the last stretch of each trajectory (0 disables it).
"""
from configs.default_digits_configs import TRAIN_POINTS, get_default_configs, set_small_unet


def get_config():
    config = get_default_configs()

    training = config.training
    training.sde = "poisson"
    training.continuous = True
    training.batch_size = 512           # B_L: charges (a third of the 1500 training digits)
    training.small_batch_size = TRAIN_POINTS
    training.M = 261
    training.tau = 0.03
    training.gamma = 5.0
    training.restrict_M = True
    training.reduce_mean = True

    data = config.data
    data.centered = True

    sampling = config.sampling
    sampling.method = "ode"
    sampling.ode_solver = "rk45"
    sampling.N = 100
    sampling.z_max = 17.88
    sampling.z_min = 1e-3
    sampling.upper_norm = 179.3
    sampling.z_exp = 1.0
    sampling.rtol = 1e-4
    sampling.atol = 1e-4

    model = config.model
    set_small_unet(model, embedding_type="positional")
    model.ema_rate = 0.999
    model.sigma_end = 0.01
    return config
