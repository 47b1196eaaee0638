"""VE SDE baseline on the 8x8 digits: NCSN++ (Fourier features of log sigma, FIR, residual input
pyramid) with the sizes, step budget and points per step of poisson/digits_ddpmpp.

sigma_max = 5: about the largest distance between two digits in [0, 1] pixel space (4.81 over all
1797), the usual VE rule. DSM trains on the whole batch: batch_size = 64 = PFGM's small_batch_size.
"""
from configs.default_digits_configs import TRAIN_POINTS, get_default_configs, set_small_unet


def get_config():
    config = get_default_configs()

    training = config.training
    training.sde = "vesde"
    training.continuous = True
    # The CIFAR-10 VE config sums the loss; the mean matches the other digits configs.
    training.reduce_mean = True
    training.batch_size = TRAIN_POINTS
    training.small_batch_size = TRAIN_POINTS   # unused by DSM

    data = config.data
    data.centered = False

    sampling = config.sampling
    sampling.method = "ode"
    sampling.ode_solver = "rk45"
    sampling.rtol = 1e-5
    sampling.atol = 1e-5
    sampling.eps = 1e-5
    sampling.N = 100
    sampling.predictor = "reverse_diffusion"   # used with method = 'pc'
    sampling.corrector = "langevin"
    sampling.snr = 0.16

    model = config.model
    set_small_unet(model, embedding_type="fourier", fir=True, progressive_input="residual",
                   scale_by_sigma=True)
    model.ema_rate = 0.999
    model.sigma_min = 0.01
    model.sigma_max = 5.0
    model.num_scales = 1000
    return config
