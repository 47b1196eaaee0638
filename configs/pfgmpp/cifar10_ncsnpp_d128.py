"""PFGM++ with NCSN++ on CIFAR-10, D = 128 (the original's README: FID 1.92); otherwise
configs/pfgmpp/cifar10_ncsnpp.py."""
from configs.pfgmpp import cifar10_ncsnpp


def get_config():
    config = cifar10_ncsnpp.get_config()
    config.training.aug_dim = 128.0
    return config
