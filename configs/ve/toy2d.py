"""VE SDE (SMLD) baseline on a 2-D toy distribution: same MLP and training budget as poisson/toy2d
(default_toy_configs.get_sde_config).

The sampler is the original's VE recipe (default_common.sde_run): PC with the reverse-diffusion
predictor and the Langevin corrector at snr 0.16. On this toy the trained MLP's score does worse with
the Langevin corrector (PC, N=1000: sliced W 0.36 at snr 0.16, 0.13 at snr 0.05, 0.065 with
corrector='none'); with an exact score the corrector is harmless, so it is the learned score, not the
sampler.
"""
from configs.default_toy_configs import get_sde_config


def get_config():
    config = get_sde_config("vesde")
    model = config.model
    model.scale_by_sigma = True      # the network's output is divided by sigma(t) (by the method for the MLP)
    model.scale_input = True         # MLP sees x / sqrt(1 + sigma^2): O(1) inputs at every noise level
    return config
