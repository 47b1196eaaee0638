"""Class-conditional PFGM with DDPM++ on CIFAR-10: poisson/cifar10_ddpmpp (the paper's model and settings)
with its ten classes (model.label_dim = 10, the label embedding added to the noise embedding) and
training.label_dropout = 0.1 (EDM's). Each of the 128 trained points regresses the field of the
4096-image batch's charges of its own class (about 410), a dropped one that of all of them; sampling
guidance mixes the class and null slopes dx/dz (docs/conditional.md). No published number to compare."""
from configs.default_common import set_labels
from configs.poisson.cifar10_ddpmpp import get_config as unconditional


def get_config():
    config = unconditional()
    set_labels(config, label_dim=10, label_dropout=0.1)
    return config
