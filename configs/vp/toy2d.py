"""VP SDE (DDPM) baseline on a 2-D toy distribution: same MLP and training budget as poisson/toy2d."""
from configs.default_toy_configs import get_default_configs


def get_config():
    config = get_default_configs()
    training = config.training
    training.sde = "vpsde"
    # DSM trains on every point of the batch: 256 matches the points PFGM trains on per step
    # (its small_batch_size; the other 768 of its batch are only charges). small_batch_size is unused.
    training.batch_size = 256
    training.continuous = True
    training.likelihood_weighting = False

    model = config.model
    model.beta_min = 0.1
    model.beta_max = 20.0
    model.num_scales = 1000          # DDPM discretization used by the final denoising step
    model.sigma_min = 0.01           # unused by VP; kept so every SDE config has the same keys
    model.sigma_max = 6.0
    model.scale_by_sigma = False
    # The network's cond is 999 t, not a noise scale; x_t stays O(1), so no input scaling.
    model.scale_input = False

    sampling = config.sampling
    sampling.method = "ode"          # 'ode' (probability flow) or 'pc' (predictor-corrector)
    sampling.ode_solver = "rk45"     # 'euler' | 'heun' (N steps) | 'rk45' (adaptive)
    sampling.N = 100                 # Euler/Heun steps, or PC steps
    sampling.rtol = 1e-5
    sampling.atol = 1e-5
    sampling.eps = 1e-3              # sampling ends at t = eps
    sampling.noise_removal = True
    sampling.predictor = "euler_maruyama"
    sampling.corrector = "none"
    sampling.snr = 0.16
    sampling.n_steps_each = 1
    sampling.probability_flow = False
    return config
