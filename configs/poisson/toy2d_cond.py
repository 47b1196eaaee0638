"""Class-conditional PFGM on the eight Gaussians (label k: the component at angle 2 pi k / 8): the MLP and
settings of poisson/toy2d with model.label_dim = 8 and training.label_dropout = 0.1 (EDM's), so that one
network learns the conditional and the unconditional field (docs/conditional.md).

  python -m pfgm.main --config configs/poisson/toy2d_cond.py --workdir runs/toy_cond --mode eval \
      --config.sampling.class_label=3 --config.sampling.guidance=3
"""
from configs.default_common import set_labels
from configs.default_toy_configs import get_pfgm_config


def get_config():
    config = get_pfgm_config()
    config.data.dataset = "eight_gaussians"
    # guidance from z = 0.5 on, as poisson/toy2d.py (set_labels would reset it to 0: guidance at every z)
    set_labels(config, label_dim=8, label_dropout=0.1, guidance_tmin=config.sampling.guidance_tmin)
    return config
