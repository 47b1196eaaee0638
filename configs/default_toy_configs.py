"""Defaults shared by the 2-D toy configs (a small MLP; minutes on a laptop CPU), and the bases the toy
configs start from: get_pfgm_config() (poisson/toy2d), get_sde_config(sde) (vp/toy2d, ve/toy2d, subvp/toy2d),
get_pfgmpp_config(aug_dim) (pfgmpp/toy2d).
"""
import ml_collections

from configs.default_common import (new_config, pfgm_run, pfgmpp_run, sde_run, set_ema, set_eval, set_loop, set_optim, set_pfgm,
                                   set_labels, set_sampler, set_sde_scales)


def get_default_configs():
    config = new_config(seed=42)
    # 1024 charges that define the field target, 256 points trained on per step.
    # 10000 steps: MMD 0.0022 against held-out data (5000 samples) where 4000 gave 0.0030; the
    # quick start still ends in under 3 minutes on 2 cores (README, "The toy main job").
    set_loop(config, batch_size=1024, small_batch_size=256, n_iters=10000, log_freq=100, eval_freq=1000,
             snapshot_freq=5000, snapshot_freq_for_preemption=1000, snapshot_num_samples=2000, reduce_mean=True,
             likelihood_weighting=None)   # sde_run sets it for the baselines
    # Without the predictor-corrector keys: pfgm_run and sde_run set the ones their sampler reads.
    set_sampler(config, N=100, pc_keys=False)

    config.data = data = ml_collections.ConfigDict()
    data.dataset = "checkerboard"
    data.shape = (2,)
    data.path = ""
    data.centered = False

    config.model = model = ml_collections.ConfigDict()
    model.name = "mlp"
    model.nf = 256
    model.num_layers = 4
    model.embed_dim = 64
    model.scale_input = True
    model.label_dim = 0               # classes embedded beside the noise level (0: unconditional)
    set_ema(model, rate=0.999)

    set_optim(config, lr=2e-3, warmup=200)

    # NLL of 1000 held-out points; two coordinates: the exact divergence costs two backward passes
    set_eval(config, batch_size=5000, num_samples=5000, enable_sampling=True, enable_loss=True,
             bpd_batch_size=1000, bpd_num_samples=1000, bpd_num_repeats=1, bpd_estimator="exact")
    set_labels(config)   # unconditional; the *_cond configs give the classes
    return config


def get_pfgm_config():
    """PFGM on the toy: the main job of the quick start."""
    config = get_default_configs()
    # The appendix rule (tools/hyperparameters.py --data_norm 1.5 --data_dim 2) gives M=228 and
    # upper_norm = 1.8 z_max, which in 2-D clips half the prior (see upper_norm below). Here the
    # perturbations reach radius sigma_end (1+tau)^M ≈ 1800, so the network has seen the whole prior.
    # gamma = 5 suits N = 3072, where |E| is large; in 2-D it shrinks the target near the data
    # to ~1e-3 and the sampler's v_x / v_z turns to noise there.
    # In 2-D the prior's radius has a 1/R tail: P(R > u) = z_max / sqrt(u^2 + z_max^2). The paper's
    # rule (upper_norm ≈ 1.8 z_max at N=2) would clip 49% of the samples onto one circle, whose field
    # lines all land on the data's outer edge. 10 z_max clips 10%; further out the learned far field,
    # seen rarely in training, strands a few percent of the samples (measured: 100 z_max left 3% at R > 3).
    # z_exp = 0: no z-substitution, which assumes N >> 1.
    set_pfgm(config, M=410, gamma=0.05, z_max=20.0, z_min=1e-2, upper_norm=200.0, z_exp=0.0)
    # The batch sizes of the defaults: 1024 charges, 256 points trained on. rk45 takes ~140 NFE at
    # rtol = atol = 1e-4 (docs/reproduce_cpu.md, toy table); N: steps when ode_solver is 'euler' or 'heun'.
    pfgm_run(config, batch_size=1024, small_batch_size=256, reduce_mean=True, N=50, centered=False)
    # Guidance (a conditional model, w > 1) only above z = 0.5, about half the eight Gaussians' spacing: below
    # it the class is decided, and a sample near another class's part has a nearly horizontal class field
    # whose small v_z the network gets wrong, so the guided slope flings it away (eight Gaussians, 3000
    # steps, w = 3: RK45 stalls, Heun 100 puts 58-96% on the class; from z = 0.5 on: 99-100%; docs/conditional.md)
    config.sampling.guidance_tmin = 0.5
    return config


def get_sde_config(sde):
    """A score-SDE baseline on the toy ('vesde', 'vpsde', 'subvpsde'): the MLP and training budget of
    the PFGM toy config. DSM trains on every point of the batch: 256 matches the points PFGM trains on
    per step (its small_batch_size; the other 768 of its batch are only charges)."""
    config = get_default_configs()
    sde_run(config, sde, batch_size=256)
    config.data.centered = False     # the points are used as they are, for every SDE (no 2x - 1 scaling)
    # VE: sigma_max ~ the largest distance between toy points (about 4 sqrt 2 on [-2, 2]^2), so the
    # prior N(0, sigma_max^2 I) is close to the perturbed data at t = 1.
    set_sde_scales(config, sigma_max=6.0)
    return config


def get_pfgmpp_config(aug_dim):
    """PFGM++ with D = aug_dim on the toy: the MLP and the 256 points per step of the other toy configs.
    The checkerboard's coordinates have standard deviation ~1.15 (sigma_data 1); sigma_max = 40 is far
    beyond the data's extent (as EDM's 80 is for images of sigma_data 0.5)."""
    config = get_default_configs()
    pfgmpp_run(config, aug_dim=aug_dim, batch_size=256, sigma_max=40.0, sigma_data=1.0, centered=False)
    config.training.reduce_mean = True
    config.model.scale_input = False   # the preconditioning already scales the input to unit size
    # training.beta_clip stays the original's 1e-3 although at N = 2 it moves a large share of the draws of
    # B ~ Beta(1, D/2) (B ~ 2/D): 22.6% at D = 512, 40% at 1024, 64% at 2048, half from D = 1386
    # (tools/beta_clip_share.py), and cuts 3.2% of D = 1's heavy tail: without it D = 1's kernel has infinite
    # variance in 2-D and the weighted loss does not settle. Its effect on large D: docs/pfgmpp.md. This toy
    # is not the original's (its notebook: N = 1000, D = 100, sigma_max = 50, 50 steps, no clip).
    return config
