"""VP SDE baseline on the 8x8 digits: the UNet, step budget and points per step of poisson/digits_ddpmpp.

DSM trains on every image of the batch, so batch_size = 64 = PFGM's small_batch_size (PFGM's other
448 images per step are only charges).
"""
from configs.default_digits_configs import TRAIN_POINTS, get_default_configs, set_small_unet


def get_config():
    config = get_default_configs()

    training = config.training
    training.sde = "vpsde"
    training.continuous = True
    training.reduce_mean = True
    training.batch_size = TRAIN_POINTS
    training.small_batch_size = TRAIN_POINTS   # unused by DSM

    data = config.data
    data.centered = True

    sampling = config.sampling
    sampling.method = "ode"
    sampling.ode_solver = "rk45"
    sampling.rtol = 1e-5
    sampling.atol = 1e-5
    sampling.eps = 1e-3
    sampling.N = 100
    sampling.predictor = "euler_maruyama"      # used with method = 'pc'
    sampling.corrector = "none"

    model = config.model
    set_small_unet(model, embedding_type="positional", scale_by_sigma=False)
    model.ema_rate = 0.999
    model.beta_min = 0.1
    model.beta_max = 20.0
    model.num_scales = 1000
    return config
