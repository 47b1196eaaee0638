"""Defaults of the FFHQ 64x64 configs (PFGM++ and EDM, the original's README rows ffhq-ddpm-D-128 and
ffhq-ddpm-D-inf): the CIFAR-10 defaults with FFHQ's images as a folder (data.root: the 70,000 images at
64x64, e.g. extracted from EDM's dataset_tool.py zip; 1/20 of them held out for the eval loss, as for any
folder without a split), and get_pfgmpp_config(aug_dim), the original's FFHQ recipe."""
from configs.default_cifar10_configs import get_default_configs as _cifar10_defaults
from configs.default_common import pfgmpp_run, set_songunet
from configs.default_edm import set_edm_protocol, set_edm_recipe


def get_default_configs():
    config = _cifar10_defaults()
    config.data.update(dataset="folder", root="data/ffhq-64x64", image_size=64)
    return config


def get_pfgmpp_config(aug_dim):
    """PFGM++ on FFHQ 64 as the original's README runs it (`--arch=ddpmpp --batch=256 --cres=1,2,2,2 --lr=2e-4
    --dropout=0.05 --augment=0.15`, the rest train.py's and training_loop.py's defaults): SongUNet in its
    DDPM++ settings with channel_mult [1, 2, 2, 2], batch 256, Adam lr 2e-4 ramped over 10M images, EMA
    half-life 0.5M images ramped up by 0.05, no gradient clipping, dropout 0.05, augmentation 0.15, 200M
    images; EDM's Heun with generate.py's default 18 levels (35 NFE); 50k samples, per-image seeds."""
    config = get_default_configs()
    pfgmpp_run(config, aug_dim=aug_dim, batch_size=256)
    set_edm_recipe(config, batch_size=256, lr=2e-4, mimg=200, augment_p=0.15)
    set_edm_protocol(config)
    set_songunet(config.model, "ddpmpp", channel_mult=(1, 2, 2, 2), dropout=0.05, augment_dim=9)
    return config
