"""EDM's training recipe and evaluation protocol as the PFGM++ code runs them (github.com/Newbeeer/pfgmpp on
NVIDIA's EDM), for the configs of the original's runs (configs/pfgmpp/*_songunet_*.py):

  set_edm_recipe    the training loop: lr ramp over images, EMA half-life with ramp-up, no gradient clipping
                    (nan_to_num), the summed loss, the augmentation pipe
  set_edm_protocol  the evaluation: 50k samples, per-image seeds, rounding to uint8
"""
from configs.default_common import set_ema, set_optim


def set_edm_recipe(config, *, batch_size, lr=1e-3, mimg=200, lr_rampup_kimg=10000, ema_halflife_kimg=500,
                   ema_rampup_ratio=0.05, augment_p=0.0):
    """EDM's training loop as the PFGM++ code runs it (github.com/Newbeeer/pfgmpp, train.py and
    training/training_loop.py defaults): `batch_size` images per step, all trained, for `mimg` million
    images; Adam (0.9, 0.999, eps 1e-8) at lr, ramped over lr_rampup_kimg thousand images, no gradient
    clipping but nan_to_num of the gradients; the EMA's half-life ema_halflife_kimg thousand images,
    ramped up by ema_rampup_ratio; the loss summed over each image and averaged over the batch
    (training.reduce_mean False); the augmentation pipe at augment_p (its 9 labels condition the network:
    model.augment_dim 9; its x-flips replace the data set's, EDM's --xflip being False by default).
    model.ema_rate is set to the half-life's per-step decay, for reading only (EDM's rule is used)."""
    t = config.training
    t.batch_size = t.small_batch_size = batch_size
    t.n_iters = int(round(mimg * 1e6 / batch_size))
    t.reduce_mean = False
    t.augment_p = augment_p
    if augment_p > 0:
        config.model.augment_dim = 9
        config.data.random_flip = False
    set_optim(config, lr=lr, warmup=0, lr_rampup_kimg=lr_rampup_kimg, grad_clip=0.0, nonfinite_grads="nan_to_num")
    set_ema(config.model, rate=0.5 ** (batch_size / (ema_halflife_kimg * 1000)), halflife_kimg=ema_halflife_kimg,
            rampup_ratio=ema_rampup_ratio)
    return config


def set_edm_protocol(config, *, num_samples=50000, first_seed=0):
    """The PFGM++ / EDM evaluation: num_samples samples, image i from seed first_seed + i (generate.py
    --seeds; the README's 3 sets are first_seed 0, 50000, 100000 and it reports the minimum FID),
    rounded to uint8 as generate.py does."""
    config.eval.update(num_samples=num_samples, first_seed=first_seed, uint8="round", enable_sampling=True)
    return config
