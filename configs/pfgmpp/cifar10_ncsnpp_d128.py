"""PFGM++ with score_sde's NCSN++ on CIFAR-10, D = 128; otherwise configs/pfgmpp/cifar10_ncsnpp.py (the
original's D = 128 run, FID 1.92, is configs/pfgmpp/cifar10_songunet_ncsnpp_d128.py)."""
from configs.pfgmpp import cifar10_ncsnpp


def get_config():
    config = cifar10_ncsnpp.get_config()
    config.training.aug_dim = 128.0
    return config
