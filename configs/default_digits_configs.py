"""Defaults shared by the 8x8 digits configs: scikit-learn's 1797 hand-written digits (no download),
a small NCSN++/DDPM++ UNet, sized to train in minutes on 2 CPU cores; and the bases the digits configs
start from: get_pfgm_config() (poisson/digits_ddpmpp), get_sde_config(sde) (vp/digits_ddpmpp,
ve/digits_ncsnpp), get_pfgmpp_config(aug_dim) (pfgmpp/digits_ddpmpp).

The same UNet (set_small_unet) and the same number of images trained on per step (64) are used by
poisson/digits_ddpmpp, vp/digits_ddpmpp and ve/digits_ncsnpp, for a fair comparison.
"""
from configs.default_common import (new_config, pfgm_run, pfgmpp_run, sde_run, set_ema, set_eval, set_image_data, set_loop, set_ncsnpp,
                                   set_optim, set_pfgm, set_labels, set_sampler, set_sde_scales)

# Images trained on per step by every digits config (PFGM's B; the whole batch of the baselines).
TRAIN_POINTS = 64


def set_small_unet(model, **overrides):
    """NCSN++/DDPM++ at 8x8: two levels (8, 4), one ResBlock each, attention at 4x4, nf 32."""
    set_ncsnpp(model, nf=32, ch_mult=(1, 2), num_res_blocks=1, attn_resolutions=(4,), **overrides)
    model.dropout = 0.0
    return model


def get_default_configs():
    config = new_config(seed=42)
    # One training step of the small UNet on 64 digits costs ~0.19 s of CPU time (one thread,
    # measured): 3000 steps take about 6-10 minutes on 2 idle cores, plus snapshot sampling.
    set_loop(config, batch_size=TRAIN_POINTS, small_batch_size=TRAIN_POINTS, n_iters=3000, log_freq=50,
             eval_freq=500, snapshot_freq=1000, snapshot_freq_for_preemption=500, reduce_mean=True)
    set_sampler(config, N=100)
    set_eval(config, batch_size=250, num_samples=1000, enable_sampling=True, enable_loss=True, bpd_batch_size=300)
    set_image_data(config, dataset="digits", image_size=8, num_channels=1,
                   root="",             # unused: the digits ship with scikit-learn
                   random_flip=False)   # a mirrored digit is not a digit

    set_sde_scales(config, sigma_max=5.0)
    model = config.model
    set_ema(model, rate=0.999)          # 0.9999 averages over more steps than a run has
    set_small_unet(model)               # with dropout 0 and the positional time embedding

    set_optim(config, lr=5e-4, warmup=200)

    # PFGM's hyperparameters by the paper's App. B rule, pfgm.poisson.hyperparameters(data_norm, data_dim):
    #   data_norm = 6.77, the mean L2 norm of the centered digits 2x - 1 (x = pixel / 16) over all 1797
    #   images (median 6.78, max 7.53), data_dim = 64, sigma_end = 0.01, tau = 0.03
    #   -> M = 261, z_max = 17.88, upper_norm = 179.3.
    # z_exp = 1: the z-substitution's one-charge model was checked for N = 3072; with N = 64 it is kept
    # to the last stretch of each trajectory (0 disables it).
    set_pfgm(config, M=261, z_max=17.88, upper_norm=179.3, z_exp=1.0)
    set_labels(config)   # unconditional; the *_cond configs give the classes
    return config


def get_pfgm_config():
    """The start of the digits PFGM config: 512 charges per step (a third of the 1500 training digits),
    TRAIN_POINTS trained on, the mean loss, the backward ODE on centered data."""
    config = get_default_configs()
    pfgm_run(config, batch_size=512, small_batch_size=TRAIN_POINTS, reduce_mean=True)
    return config


def get_sde_config(sde):
    """The start of the digits score-SDE baselines ('vesde', 'vpsde', 'subvpsde'). DSM trains on every
    image of the batch, so batch_size = TRAIN_POINTS = PFGM's small_batch_size."""
    config = get_default_configs()
    sde_run(config, sde, batch_size=TRAIN_POINTS)
    return config


def get_pfgmpp_config(aug_dim):
    """PFGM++ with D = aug_dim on the digits: the same UNet and images per step as the other digits
    configs, data in [-1, 1] (sigma_data 0.5, EDM's), the mean loss like the other digits configs."""
    config = get_default_configs()
    pfgmpp_run(config, aug_dim=aug_dim, batch_size=TRAIN_POINTS)
    config.training.reduce_mean = True
    return config
