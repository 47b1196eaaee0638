"""PFGM++ on CIFAR-10, D = 2048, with this package's score_sde NCSN++ (Fourier features, FIR, residual
input pyramid) fed EDM's noise label log(sigma) / 4, trained with the original's recipe
(default_cifar10_configs.get_pfgmpp_config: batch 512, lr 1e-3 ramped over 10M images, no gradient clipping,
EMA half-life 0.5M images ramped up by 0.05, dropout 0.13, 200M images) but without the augmentation pipe,
which needs a network that takes its labels (random horizontal flips instead). This is not the original's
network: EDM's SongUNet is, in configs/pfgmpp/cifar10_songunet_ncsnpp_*.py (the README's rows, FID 1.91 at
D = 2048, 1.92 at D = 128, EDM 1.98). Kept as the same recipe on score_sde's NCSN++ (62.8M parameters).
"""
from configs.default_cifar10_configs import get_pfgmpp_config
from configs.default_common import set_ncsnpp


def get_config():
    config = get_pfgmpp_config(aug_dim=2048)
    set_ncsnpp(config.model, embedding_type="fourier", fir=True, progressive_input="residual")
    return config
