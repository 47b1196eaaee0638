"""PFGM on a 2-D toy distribution (default: checkerboard). The main job of the quick start."""
from configs.default_toy_configs import get_default_configs


def get_config():
    config = get_default_configs()
    training = config.training
    training.sde = "poisson"
    # tools/hyperparameters.py --data_norm 1.5 --data_dim 2 gives M=201, z_max=3.1, upper_norm=5.5;
    # a larger M puts the prior plane further from the data, where it is closer to a point charge's.
    training.M = 291
    training.tau = 0.03
    training.gamma = 5.0
    training.restrict_M = True

    config.model.sigma_end = 0.01

    sampling = config.sampling
    sampling.z_max = 40.0
    sampling.z_min = 1e-3
    sampling.upper_norm = 80.0
    sampling.z_exp = 0.0               # no z-substitution: it assumes N >> 1
    return config
