"""Class-conditional PFGM on the 8x8 digits: poisson/digits_ddpmpp with the ten classes (model.label_dim = 10)
and training.label_dropout = 0.1. A trained point of class c regresses the field of the batch's class-c
digits (about 51 of the 512 charges), a dropped one that of all of them (docs/conditional.md)."""
from configs.default_common import set_labels
from configs.poisson.digits_ddpmpp import get_config as unconditional


def get_config():
    config = unconditional()
    set_labels(config, label_dim=10, label_dropout=0.1)
    return config
