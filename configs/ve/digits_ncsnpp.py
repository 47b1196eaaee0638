"""VE SDE baseline on the 8x8 digits: NCSN++ (Fourier features of log sigma, FIR, residual input
pyramid) with the sizes, step budget and points per step of poisson/digits_ddpmpp
(default_digits_configs.get_sde_config).

sigma_max = 5 (the defaults'): about the largest distance between two digits in [0, 1] pixel space
(4.81 over all 1797), the usual VE rule. The CIFAR-10 VE config sums the loss; here the mean
(training.reduce_mean, the defaults') matches the other digits configs.
"""
from configs.default_digits_configs import get_sde_config, set_small_unet


def get_config():
    config = get_sde_config("vesde")
    set_small_unet(config.model, embedding_type="fourier", fir=True, progressive_input="residual",
                   scale_by_sigma=True)
    return config
