"""Class-conditional PFGM++ (D = 128) on the 8x8 digits: pfgmpp/digits_ddpmpp with model.label_dim = 10 and
training.label_dropout = 0.1 (docs/conditional.md)."""
from configs.default_common import set_labels
from configs.pfgmpp.digits_ddpmpp import get_config as unconditional


def get_config():
    config = unconditional()
    set_labels(config, label_dim=10, label_dropout=0.1)
    return config
