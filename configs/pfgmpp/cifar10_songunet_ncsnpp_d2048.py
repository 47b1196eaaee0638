"""The original's README row cifar10-ncsnpp-D-2048 (FID 1.91;
github.com/Newbeeer/pfgmpp, options `--cond=0 --arch=ncsnpp --pfgmpp=1 --aug_dim=2048`):
PFGM++ on CIFAR-10 with EDM's SongUNet in its NCSN++ settings and EDM's training recipe.

The original's settings, as written (tests/test_recipe_configs.py checks every one against this config):
    arch = ncsnpp
    cond = 0
    pfgmpp = 1
    aug_dim = 2048
    batch = 512                 train.py --batch default
    lr = 10e-4                  train.py --lr default
    lr_rampup_kimg = 10000      training_loop.py default
    ema = 0.5                   train.py --ema default (Mimg): ema_halflife_kimg 500
    ema_rampup_ratio = 0.05     training_loop.py default
    dropout = 0.13              train.py --dropout default
    augment = 0.12              train.py --augment default (AugmentPipe; network augment_dim 9)
    xflip = False               train.py --xflip default
    duration = 200              train.py --duration default (Mimg)
    cres = 2,2,2                train.py arch default: channel_mult [2, 2, 2]
    cbase = 128                 train.py arch default: model_channels
    nblock = 4                  SongUNet default num_blocks
    grad_clip = none            training_loop.py: none, only torch.nan_to_num of the gradients
    nan_to_num = 1              training_loop.py: nan -> 0, +-inf -> +-1e5
    loss = sum/batch            training_loop.py: loss.sum() / images per step, per-image sum of the weighted squares
    P_mean = -1.2               training/loss.py EDMLoss default
    P_std = 1.2                 training/loss.py EDMLoss default
    sigma_data = 0.5            training/networks.py EDMPrecond default
    steps = 18                  generate.py --steps default (35 NFE)
    sigma_min = 0.002           generate.py edm_sampler default
    sigma_max = 80              generate.py edm_sampler default (and the PFGM++ prior's radius)
    rho = 7                     generate.py --rho default
    S_churn = 0                 generate.py --S_churn default (deterministic)
    num = 50000                 fid.py --num default; README: --seeds=0-49999 (3 sets, the minimum reported)
    seeds = 0                   README: --seeds=0-49999 (first seed)
"""
from configs.default_cifar10_configs import get_pfgmpp_songunet_config


def get_config():
    return get_pfgmpp_songunet_config(aug_dim=2048)
