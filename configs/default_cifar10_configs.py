"""Defaults shared by the CIFAR-10 configs (PFGM and the diffusion baselines), and the bases they start
from: get_pfgm_config() for configs/poisson/cifar10_*, get_sde_config(sde) for the score-SDE baselines,
get_pfgmpp_config(aug_dim) for configs/pfgmpp/cifar10_ncsnpp*, get_pfgmpp_songunet_config(aug_dim, label_dim) for
the original's runs (configs/pfgmpp/cifar10_songunet_*).

Values are those of the official PFGM code's CIFAR-10 defaults (Xu et al. 2022,
github.com/Newbeeer/Poisson_flow, configs/default_cifar10_configs.py). Every key a model file may
override exists here, so command-line overrides work with a locked config.

Fixes and clean-ups relative to the official defaults:
  - config.device is a string ('cuda' or 'cpu'), not a torch.device.
  - keys the official defaults lacked but the code reads are added with the PFGM values:
    training.{sde, small_batch_size, tau, gamma, restrict_M, snapshot_num_samples, max_nonfinite_steps},
    sampling.{method, ode_solver, z_max, z_min, upper_norm, predictor, corrector, rtol, atol, max_nfe},
    model.sigma_end, data.root, and the eval keys of set_likelihood and set_eval_outputs.
  - sampling.vs (a verbosity flag) is dropped.
"""
from configs.default_common import (new_config, pfgm_run, pfgmpp_run, sde_run, set_ema,
                                   set_eval, set_image_data, set_loop, set_optim, set_pfgm, set_labels, set_sampler,
                                   set_sde_scales, set_songunet)
from configs.default_edm import set_edm_protocol, set_edm_recipe
# set_ncsnpp lived here once: config files written then import it from this module.
from configs.default_common import set_ncsnpp  # noqa: F401


def get_default_configs():
    config = new_config(seed=49)
    set_loop(config, batch_size=128, small_batch_size=128, n_iters=1300001, log_freq=50, eval_freq=10000,
             snapshot_freq=50000, snapshot_freq_for_preemption=10000, reduce_mean=False)
    set_sampler(config, N=1000)
    # bpd_batch_size: images per ODE batch; each step backpropagates through the network, so fewer than
    # eval.batch_size
    set_eval(config, begin_ckpt=8, end_ckpt=26, batch_size=1000, num_samples=10000, enable_sampling=False,
             enable_loss=False, bpd_batch_size=100)
    set_image_data(config, dataset="CIFAR10", image_size=32, num_channels=3, random_flip=True,
                   root="data/cifar10")  # cifar-10-python.tar.gz, cifar-10-batches-py/, or a folder with either

    set_sde_scales(config, sigma_max=50.0)
    model = config.model
    model.dropout = 0.1
    model.embedding_type = "fourier"
    set_ema(model, rate=0.9999)

    set_optim(config, lr=2e-4, warmup=5000)

    # The paper's CIFAR-10 values. App. B's rule (pfgm.poisson.hyperparameters) gives M = 287 for data
    # norm 30 and N = 3072; at M = 291 its z_max and upper_norm are 43.4 and 3015.
    set_pfgm(config, M=291, z_max=40.0, upper_norm=3000.0, z_exp=5.0)
    set_labels(config)   # unconditional; the *_cond configs give the classes
    return config


def get_pfgm_config():
    """The start of every CIFAR-10 PFGM config (the paper's runs): 4096 charges per step, 128 trained on,
    the summed loss, the backward ODE on centered data. The config files add the network."""
    config = get_default_configs()
    pfgm_run(config, batch_size=4096, small_batch_size=128, reduce_mean=False)
    return config


def get_sde_config(sde):
    """The start of the CIFAR-10 score-SDE baselines ('vesde', 'vpsde', 'subvpsde'): 128 images per step."""
    config = get_default_configs()
    sde_run(config, sde, batch_size=128)
    return config


def get_pfgmpp_config(aug_dim, augment_p=0.0):
    """PFGM++ on CIFAR-10 with the original's recipe (its README's NCSN++ runs, on EDM's CIFAR-10 recipe;
    configs/default_edm.set_edm_recipe): batch 512, Adam lr 1e-3 ramped over 10M images, no gradient
    clipping (nan_to_num), EMA half-life 0.5M images ramped up by 0.05, dropout 0.13, 200M images (390625
    steps), the augmentation pipe at augment_p (the original: 0.12; it needs a network with augment_dim, the
    SongUNet configs); 18 Heun levels (35 NFE); 50k samples with per-image seeds, rounded to uint8."""
    config = get_default_configs()
    pfgmpp_run(config, aug_dim=aug_dim, batch_size=512)
    set_edm_recipe(config, batch_size=512, lr=1e-3, mimg=200, augment_p=augment_p)
    set_edm_protocol(config)
    config.model.dropout = 0.13
    return config


def get_pfgmpp_songunet_config(aug_dim, label_dim=0):
    """The original's CIFAR-10 runs (its README's rows): get_pfgmpp_config with EDM's SongUNet in its NCSN++
    settings (model_channels 128, channel_mult [2, 2, 2], 4 blocks, attention at 16x16, Fourier noise
    embedding, residual encoder, [1, 3, 3, 1] resampling), dropout 0.13, the augmentation pipe at 0.12
    conditioning the network (augment_dim 9), label_dim classes (10: class-conditional)."""
    config = get_pfgmpp_config(aug_dim, augment_p=0.12)
    set_songunet(config.model, "ncsnpp", dropout=0.13, augment_dim=9, label_dim=label_dim)
    return config
