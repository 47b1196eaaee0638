"""VP SDE (score SDE) baseline: DDPM++ on CIFAR-10, continuous training (facts §5.2).

Fixes relative to the official file: it sets sampling.method = 'ode' without sampling.ode_solver, which
crashes at start-up (snapshot sampling reads it); ode_solver = 'rk45' is set here, with the
probability-flow RK45 tolerances 1e-5 and end time eps = 1e-3 of the score_sde sampler.
"""
from configs.default_cifar10_configs import get_default_configs, set_ncsnpp


def get_config():
    config = get_default_configs()

    training = config.training
    training.sde = "vpsde"
    training.continuous = True
    training.reduce_mean = True
    training.batch_size = 128           # DSM trains on the whole batch; small_batch_size is unused
    training.small_batch_size = 128

    data = config.data
    data.centered = True

    sampling = config.sampling
    sampling.method = "ode"
    sampling.ode_solver = "rk45"        # FIX: missing in the official config
    sampling.rtol = 1e-5
    sampling.atol = 1e-5
    sampling.eps = 1e-3
    sampling.predictor = "euler_maruyama"      # used with method = 'pc'
    sampling.corrector = "none"

    model = config.model
    set_ncsnpp(model, embedding_type="positional", scale_by_sigma=False)
    model.ema_rate = 0.9999
    model.dropout = 0.1
    model.beta_min = 0.1
    model.beta_max = 20.0
    model.num_scales = 1000
    return config
