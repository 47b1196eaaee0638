"""Class-conditional PFGM++ (D = 128) on the eight Gaussians: pfgmpp/toy2d with model.label_dim = 8 and
training.label_dropout = 0.1; guidance on the denoiser (docs/conditional.md)."""
from configs.default_common import set_labels
from configs.default_toy_configs import get_pfgmpp_config


def get_config():
    config = get_pfgmpp_config(aug_dim=128)
    config.data.dataset = "eight_gaussians"
    set_labels(config, label_dim=8, label_dropout=0.1)
    return config
