"""Class-conditional VP SDE on the eight Gaussians: vp/toy2d with model.label_dim = 8 and
training.label_dropout = 0.1; guidance on the score (docs/conditional.md)."""
from configs.default_common import set_labels
from configs.vp.toy2d import get_config as unconditional


def get_config():
    config = unconditional()
    config.data.dataset = "eight_gaussians"
    set_labels(config, label_dim=8, label_dropout=0.1)
    return config
