"""PFGM with NCSN++ on CIFAR-10: Fourier features of log z, FIR resampling, a residual input pyramid,
EMA 0.999. The PFGM settings are those of every CIFAR-10 PFGM config:
default_cifar10_configs.get_pfgm_config().

Fixes relative to the official file (github.com/Newbeeer/Poisson_flow, configs/poisson/cifar10_ncsnpp.py):
the unused keys training.model (the typo "nscnpp"), model.z_max / model.z_min (sampling.z_max / z_min
are the ones read), data.channels and sampling.vs are dropped.
"""
from configs.default_cifar10_configs import get_pfgm_config
from configs.default_common import set_ncsnpp


def get_config():
    config = get_pfgm_config()
    model = config.model
    set_ncsnpp(model, embedding_type="fourier", fir=True, progressive_input="residual")
    model.ema_rate = 0.999
    return config
