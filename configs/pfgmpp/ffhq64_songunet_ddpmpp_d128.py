"""The original's README row ffhq-ddpm-D-128 (FID 2.43; github.com/Newbeeer/pfgmpp, options
`--cond=0 --arch=ddpmpp --batch=256 --cres=1,2,2,2 --lr=2e-4 --dropout=0.05 --augment=0.15 --pfgmpp=1 --aug_dim=128`):
PFGM++ on FFHQ 64x64 with EDM's SongUNet in its DDPM++ settings and EDM's training recipe. The sampler is
generate.py's default (18 levels, 35 NFE); EDM's own FFHQ numbers used 40 (79 NFE) and the PFGM++ README
does not say which its FID used: --config.sampling.N=40 for EDM's.

The original's settings, as written (tests/test_recipe_configs.py checks every one against this config):
    arch = ddpmpp
    cond = 0
    pfgmpp = 1
    aug_dim = 128
    batch = 256                 README option --batch=256
    lr = 2e-4                   README option --lr=2e-4
    lr_rampup_kimg = 10000      training_loop.py default
    ema = 0.5                   train.py --ema default (Mimg): ema_halflife_kimg 500
    ema_rampup_ratio = 0.05     training_loop.py default
    dropout = 0.05              README option --dropout=0.05
    augment = 0.15              README option --augment=0.15 (AugmentPipe; network augment_dim 9)
    xflip = False               train.py --xflip default
    duration = 200              train.py --duration default (Mimg)
    cres = 1,2,2,2              README option --cres=1,2,2,2: channel_mult
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
from configs.default_ffhq_configs import get_pfgmpp_config


def get_config():
    return get_pfgmpp_config(aug_dim=128)
