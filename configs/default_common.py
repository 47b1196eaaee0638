"""Building blocks of the configs, written once and used by every data set's defaults
(configs/default_*_configs.py):

  new_config     a new config holding only its seed and device
  set_loop       the training loop's keys (batch sizes, step counts and frequencies, loss options)
  set_sampler    the sampler's keys (sampling.method, ode_solver, N, rtol, atol, max_nfe, the PC keys)
  set_eval       the evaluation's keys (checkpoints, batch, samples, loss); calls set_likelihood and set_eval_outputs
  set_image_data the image data sets' data keys
  set_sde_scales the VE / VP / sub-VP SDEs' model keys (sigma_*, beta_*, num_scales)
  set_optim      the optimizer's keys
  set_ema        the EMA's keys (fixed rate, or EDM's half-life and ramp-up)
  (EDM's training recipe and evaluation protocol, as the PFGM++ code runs them: configs/default_edm.py)
  set_pfgm       PFGM's hyperparameters (M, tau, gamma, z_max, z_min, upper_norm, z_exp, sigma_end)
  pfgm_run       what every PFGM training config sets over its data set's defaults (sde, batch sizes, sampler)
  sde_run        the same for the score-SDE baselines (VE, VP, sub-VP)
  pfgmpp_run     the same for PFGM++ (D extra dimensions, EDM's preconditioning and sampler)
  set_ncsnpp     the NCSN++/DDPM++ architecture keys (configs/default_ncsnpp.py)
  set_songunet   EDM's SongUNet keys (its DDPM++ and NCSN++ settings), for PFGM++ (configs/default_songunet.py)
  set_likelihood the eval.bpd_* keys
  set_eval_outputs  eval.fid_stats, inception_weights, save_images, enable_interpolate, enable_rescale
  set_labels     class-conditional generation (model.label_dim, training.label_dropout, sampling.class_label,
                 sampling.guidance, guidance_tmin), off by default (configs/default_labels.py)

Each data set's defaults file then offers get_default_configs(), get_pfgm_config() and (where baselines
exist) get_sde_config(sde); the files under configs/<method>/ start from one of these and state only
their network and what really differs.

Every key a config can set is present in the defaults, at the value the code falls back to when a key
is missing (where the defaults do not choose another value on purpose).
"""
import ml_collections
import torch

# Their homes are modules of their own; kept importable from here, where the configs look for every block.
from configs.default_labels import set_labels  # noqa: F401
from configs.default_ncsnpp import set_ncsnpp  # noqa: F401
from configs.default_songunet import SONGUNET_PRESETS, set_songunet  # noqa: F401


def _set(config, section, **values):
    """config.<section>.<key> = value for each keyword; the section is created when the config has none."""
    if section not in config:
        config[section] = ml_collections.ConfigDict()
    for key, value in values.items():
        config[section][key] = value
    return config


def new_config(*, seed):
    """A config with only its seed (every random draw of a run derives from it), its device ('cuda' where
    torch sees a GPU, else 'cpu'), its number of CPU threads and, under torchrun, the timeout in seconds of
    the processes' collectives (collective_timeout: the others wait that long for rank 0's phases, e.g. the
    FID of an evaluation)."""
    config = ml_collections.ConfigDict()
    config.seed = seed
    config.device = "cuda" if torch.cuda.is_available() else "cpu"
    config.collective_timeout = 7200
    # torch's CPU threads per process (torch.set_num_threads, set by the command line); 0: torch's
    # default, one per core. One thread: on a shared 2-core machine one per core ran the toy 10-17x
    # slower (threads waiting on each other while other jobs hold a core; docs/measurements.md).
    config.num_threads = 1
    return config


def set_loop(config, *, batch_size, small_batch_size, n_iters, log_freq, eval_freq, snapshot_freq,
             snapshot_freq_for_preemption, reduce_mean, snapshot_num_samples=64, snapshot_sampling=True,
             max_nonfinite_steps=20, continuous=True, likelihood_weighting=False, sde="poisson", augment_p=0.0,
             mixed_precision="no", compile=False):
    """The training loop's keys (config.training; pfgm/train.py):

      sde                 the method trained ('poisson' for PFGM; pfgm_run / sde_run set it per run)
      batch_size          B_L: data points drawn per step (PFGM: the charges of the empirical field)
      small_batch_size    B: the points trained on per step (PFGM only; the baselines train on the whole batch)
      n_iters             training steps
      log_freq            steps between lines of log.txt / loss.csv (step, loss, learning rate)
      eval_freq           steps between losses of the EMA weights on one held-out batch (batch_size points)
      snapshot_freq       steps between numbered checkpoints (checkpoints/checkpoint_{step}.pth)
      snapshot_freq_for_preemption  steps between meta checkpoints, to resume after preemption
      snapshot_sampling   whether each numbered checkpoint also draws samples with the EMA weights
      snapshot_num_samples  how many (samples/iter_{step}/)
      max_nonfinite_steps non-finite steps in a row before the run stops
      reduce_mean         the per-sample loss: mean over coordinates (True) or their sum (False: halved for PFGM
                          and the score SDEs as their code, whole for PFGM++ as EDM's); averaged over the batch
      continuous          continuous-time training (the only kind implemented)
      likelihood_weighting  the score-SDE baselines' g(t)^2 weighting of the DSM loss (None leaves the key out)
      augment_p           EDM's augmentation pipe at probability p (pfgm/datasets/augment.py; 0: off); its 9
                          labels condition the network, which needs model.augment_dim = 9 (SongUNet)
      mixed_precision     the network's precision: 'no' (float32), 'bf16' or 'fp16' (autocast; fp16 with a
                          gradient scaler); the physics stays in float32/64 (pfgm/precision.py)
      compile             torch.compile the network
    """
    _set(config, "training", sde=sde, batch_size=batch_size, small_batch_size=small_batch_size, n_iters=n_iters,
         log_freq=log_freq, eval_freq=eval_freq, snapshot_freq=snapshot_freq,
         snapshot_freq_for_preemption=snapshot_freq_for_preemption, snapshot_sampling=snapshot_sampling,
         snapshot_num_samples=snapshot_num_samples, max_nonfinite_steps=max_nonfinite_steps,
         continuous=continuous, reduce_mean=reduce_mean, augment_p=augment_p, mixed_precision=mixed_precision,
         compile=compile)
    if likelihood_weighting is not None:
        _set(config, "training", likelihood_weighting=likelihood_weighting)
    return config


def set_sampler(config, *, N, pc_keys=True, method="ode", ode_solver="rk45", rtol=1e-4, atol=1e-4, max_nfe=10000,
                predictor="euler_maruyama", corrector="none", n_steps_each=1, noise_removal=True,
                probability_flow=False, snr=0.16):
    """The sampler's keys (config.sampling; pfgm_run and sde_run then set each method's own choices):

      method              'ode' (the backward / probability-flow ODE) or 'pc' (predictor-corrector)
      ode_solver          'rk45' (adaptive, rtol / atol) or a fixed-step solver ('euler', 'heun') with N steps
      N                   steps of the fixed-step solvers and of method 'pc'
      rtol, atol          rk45's tolerances
      max_nfe             bound on network evaluations per sample batch (0: none)
    and, unless pc_keys is False, the predictor-corrector sampler's (method 'pc'):
      predictor, corrector  the step kinds ('none': no corrector)
      n_steps_each        corrector steps at each time
      noise_removal       the last step returned without its noise
      probability_flow    the predictor steps the probability-flow ODE instead of the reverse SDE
      snr                 the Langevin corrector's signal-to-noise ratio
    """
    _set(config, "sampling", method=method, ode_solver=ode_solver, N=N, rtol=rtol, atol=atol, max_nfe=max_nfe)
    if pc_keys:
        _set(config, "sampling", predictor=predictor, corrector=corrector, n_steps_each=n_steps_each,
             noise_removal=noise_removal, probability_flow=probability_flow, snr=snr)
    return config


def set_eval(config, *, batch_size, num_samples, enable_sampling, enable_loss, bpd_batch_size,
             begin_ckpt=-1, end_ckpt=-1, bpd_num_samples=0, bpd_num_repeats=5, bpd_estimator="rademacher",
             first_seed=-1, uint8="round"):
    """The evaluation's keys (config.eval; pfgm/evaluate.py):

      begin_ckpt, end_ckpt  the checkpoints evaluated, in units of training.snapshot_freq (-1: the newest only)
      batch_size          points per batch, for the held-out loss and for sampling
      num_samples         samples drawn per checkpoint (and the toy densities' held-out points)
      enable_sampling     draw samples (and their metrics)
      enable_loss         the loss over the held-out split
      first_seed          -1: the samples come from one random stream (config.seed); >= 0: sample i from its
                          own seed first_seed + i (EDM's generate.py --seeds), the same whatever eval.batch_size
      uint8               how samples become uint8 images for FID and eval.save_images: 'round' (EDM / PFGM++,
                          floor(255 x + 0.5)), 'truncate' (score_sde / PFGM, floor(255 x); pfgm_run and sde_run
                          set it), or 'nearest' (half to even); pfgm.images.to_uint8
    and the keys of set_likelihood (bpd_*: its batch_size, num_samples, num_repeats, estimator) and
    set_eval_outputs.
    """
    _set(config, "eval", begin_ckpt=begin_ckpt, end_ckpt=end_ckpt, batch_size=batch_size,
         enable_sampling=enable_sampling, num_samples=num_samples, enable_loss=enable_loss, first_seed=first_seed,
         uint8=uint8)
    set_likelihood(config.eval, batch_size=bpd_batch_size, num_samples=bpd_num_samples,
                   num_repeats=bpd_num_repeats, estimator=bpd_estimator)
    set_eval_outputs(config.eval)
    return config


def set_image_data(config, *, dataset, root, image_size, num_channels, random_flip,
                   centered=False, uniform_dequantization=False, num_workers=4):
    """The image data sets' keys (config.data; pfgm/datasets): the data set's name and where its files
    are (root), square images of image_size pixels with num_channels channels, random horizontal flips
    in training, data scaled to [-1, 1] (centered) or [0, 1], and uniform dequantization noise;
    num_workers: the DataLoader processes decoding image files for training (folder, LSUN, CelebA;
    0: decode in the training process; in-memory data sets ignore it)."""
    return _set(config, "data", dataset=dataset, root=root, image_size=image_size, random_flip=random_flip,
                centered=centered, uniform_dequantization=uniform_dequantization, num_channels=num_channels,
                num_workers=num_workers)


def set_sde_scales(config, *, sigma_max, sigma_min=0.01, num_scales=1000, beta_min=0.1, beta_max=20.0):
    """The score-SDE baselines' keys (config.model; pfgm/methods/sde.py), present for every SDE:
    the VE SDE's noise scales sigma_min..sigma_max, the VP / sub-VP SDEs' beta_min..beta_max, and
    num_scales, the discretization used by the final denoising step (and the unused `sigmas` buffer)."""
    return _set(config, "model", sigma_min=sigma_min, sigma_max=sigma_max, num_scales=num_scales,
                beta_min=beta_min, beta_max=beta_max)


def set_optim(config, *, lr, warmup, optimizer="Adam", beta1=0.9, eps=1e-8, weight_decay=0.0, grad_clip=1.0,
              lr_rampup_kimg=0.0, nonfinite_grads="skip"):
    """The optimizer's keys (config.optim; pfgm/train.py): Adam (the only one supported) with betas
    (beta1, 0.999), eps and weight_decay; the learning rate lr, reached by a linear warmup over `warmup`
    steps (0: none) or, as EDM, over lr_rampup_kimg thousand training images (lr * min(images seen /
    (lr_rampup_kimg * 1000), 1); 0: none; not both); gradients clipped to norm grad_clip (0: no clipping).
    nonfinite_grads: what a step whose loss is finite but whose gradients are not does: 'skip' (the
    update is skipped and counted toward training.max_nonfinite_steps) or 'nan_to_num' (EDM's: NaN -> 0,
    +-inf -> +-1e5, and the update is made). A non-finite loss is skipped either way."""
    return _set(config, "optim", optimizer=optimizer, lr=lr, beta1=beta1, eps=eps, weight_decay=weight_decay,
                warmup=warmup, grad_clip=grad_clip, lr_rampup_kimg=lr_rampup_kimg, nonfinite_grads=nonfinite_grads)


def set_ema(model, *, rate, halflife_kimg=0.0, rampup_ratio=0.0):
    """The EMA keys (config.model; pfgm/models/ema.py): score_sde's fixed rate (decay min(rate, (1 + n) /
    (10 + n)) after n updates), or, with halflife_kimg > 0, EDM's half-life in thousands of training
    images, ramped up as min(halflife, images seen * rampup_ratio) (0: no ramp-up)."""
    model.ema_rate = rate
    model.ema_halflife_kimg = halflife_kimg
    model.ema_rampup_ratio = rampup_ratio
    return model


def set_pfgm(config, *, M, z_max, upper_norm, z_exp, tau=0.03, gamma=5.0, z_min=1e-3, sigma_end=0.01):
    """PFGM's hyperparameters (Xu et al. 2022, "Poisson Flow Generative Models", App. B).

    The data are perturbed to radius sigma_end (1 + tau)^m, m ~ U[0, M] (restrict_M: the original's
    cap on m); gamma is the field's normalization constant; sampling runs the backward ODE from
    z = z_max down to z_min, with prior radii clipped at upper_norm and the z-substitution below
    z = z_exp (0 disables it), which uses gamma too (App. B.2.3). The paper's rule picks M, z_max and upper_norm from the data's norm
    and dimension (pfgm.poisson.hyperparameters, tools/hyperparameters.py)."""
    training = config.training
    training.M = M
    training.tau = tau
    training.gamma = gamma
    training.restrict_M = True

    sampling = config.sampling
    sampling.z_max = z_max
    sampling.z_min = z_min
    sampling.upper_norm = upper_norm
    sampling.z_exp = z_exp

    config.model.sigma_end = sigma_end  # the perturbation's base scale
    return config


def pfgm_run(config, *, batch_size, small_batch_size, reduce_mean, N=100, centered=True):
    """The block every PFGM training config shares (the official PFGM configs,
    github.com/Newbeeer/Poisson_flow): continuous training on data scaled to [-1, 1] (centered),
    B_L = batch_size charges per step of which B = small_batch_size are perturbed and trained on,
    and the RK45 backward ODE at rtol = atol = 1e-4 (N: the steps of the fixed-step solvers and of
    method 'pc', PFGM's Euler step in z)."""
    training = config.training
    training.sde = "poisson"
    training.continuous = True
    training.batch_size = batch_size              # B_L: the charges of the empirical field
    training.small_batch_size = small_batch_size  # B: the perturbed points trained on
    training.reduce_mean = reduce_mean

    config.data.centered = centered
    config.eval.uint8 = "truncate"      # the PFGM code's FID protocol: np.clip(x * 255, 0, 255).astype(np.uint8)

    sampling = config.sampling
    sampling.method = "ode"
    sampling.ode_solver = "rk45"        # or 'euler' / 'heun' (or 'forward_euler' / 'improved_euler'): N steps
    sampling.N = N
    sampling.rtol = 1e-4
    sampling.atol = 1e-4
    sampling.predictor = "euler_maruyama"  # with method 'pc': PFGM's Euler step in z, the only one defined
    sampling.corrector = "none"            # PFGM has no corrector
    return config


# The score-SDE baselines' per-SDE choices (Song et al. 2021, github.com/yang-song/score_sde_pytorch, as
# the official PFGM repository runs them): data range, where sampling stops (t = eps) and the PC sampler.
SDE_CHOICES = {
    "vesde": dict(centered=False, eps=1e-5, predictor="reverse_diffusion", corrector="langevin"),
    "vpsde": dict(centered=True, eps=1e-3, predictor="euler_maruyama", corrector="none"),
    "subvpsde": dict(centered=True, eps=1e-3, predictor="euler_maruyama", corrector="none"),
}


def sde_run(config, sde, *, batch_size):
    """The block every score-SDE baseline config shares: continuous-time denoising score matching on the
    whole batch (small_batch_size is unused by it and set equal), unweighted; sampling by the
    probability-flow ODE with RK45 at rtol = atol = 1e-5, or by the predictor-corrector sampler
    (method 'pc', N steps); the per-SDE choices of SDE_CHOICES."""
    choice = SDE_CHOICES[sde]
    training = config.training
    training.sde = sde
    training.continuous = True
    training.likelihood_weighting = False
    training.batch_size = batch_size
    training.small_batch_size = batch_size   # unused by DSM

    config.data.centered = choice["centered"]
    config.eval.uint8 = "truncate"   # score_sde's FID protocol: np.clip(x * 255, 0, 255).astype(np.uint8)

    sampling = config.sampling
    sampling.method = "ode"          # 'ode' (probability flow) or 'pc' (predictor-corrector)
    sampling.ode_solver = "rk45"     # 'euler' | 'heun' (N steps) | 'rk45' (adaptive)
    sampling.rtol = 1e-5
    sampling.atol = 1e-5
    sampling.eps = choice["eps"]     # sampling ends at t = eps
    sampling.noise_removal = True
    sampling.predictor = choice["predictor"]   # used with method = 'pc'
    sampling.corrector = choice["corrector"]
    sampling.snr = 0.16
    sampling.n_steps_each = 1
    sampling.probability_flow = False
    return config


def pfgmpp_run(config, *, aug_dim, batch_size, sigma_max=80.0, sigma_min=0.002, sigma_data=0.5, N=18,
               centered=True):
    """The block every PFGM++ config shares (Xu et al. 2023, github.com/Newbeeer/pfgmpp, on NVIDIA's EDM):
    D = aug_dim extra dimensions (a float so that inf, the diffusion limit, can be given on the command
    line), ln sigma ~ N(-1.2, 1.2^2) in training, EDM's preconditioning around the network with the data's
    standard deviation sigma_data, the summed loss; sampling by EDM's Heun on the rho = 7 schedule from
    sigma_max to sigma_min (N = 18 levels: 35 NFE), or 'euler' / 'rk45' on the same ODE. The denoising
    target is the clean point (training.stf = True: the posterior mean of the whole batch instead)."""
    training = config.training
    training.sde = "pfgmpp"
    training.aug_dim = float(aug_dim)
    training.P_mean = -1.2
    training.P_std = 1.2
    training.stf = False
    training.beta_clip = 1e-3        # B ~ Beta(N/2, D/2) clipped to [clip, 1 - clip] in training, as the original
    training.batch_size = batch_size
    training.small_batch_size = batch_size   # all trained; with stf the rest of a larger batch are charges
    training.reduce_mean = False

    config.data.centered = centered
    config.model.sigma_data = sigma_data
    config.eval.uint8 = "round"      # EDM's FID protocol: (x * 127.5 + 128).clip(0, 255) to uint8

    sampling = config.sampling
    sampling.method = "ode"
    sampling.ode_solver = "heun"     # EDM's sampler; 'euler' (N steps) or 'rk45' (rtol, atol) on the same ODE
    sampling.N = N
    sampling.sigma_min = sigma_min
    sampling.sigma_max = sigma_max
    sampling.rho = 7.0
    sampling.rtol = 1e-4
    sampling.atol = 1e-4
    # EDM's stochastic sampler (its generate.py): S_churn 0 is the deterministic Heun above; S_churn > 0
    # adds noise at the levels in [S_min, S_max], scaled by S_noise (EDM's defaults for the other three)
    sampling.S_churn = 0.0
    sampling.S_min = 0.0
    sampling.S_max = float("inf")
    sampling.S_noise = 1.0
    return config


def set_likelihood(evaluate, *, batch_size, num_samples=0, num_repeats=5, estimator="rademacher"):
    """The eval.bpd_* keys: the likelihood through the probability-flow ODE (pfgm/evaluation/likelihood.py),
    off by default. Images: bits/dim of the test split, 5 passes (as the original); points: NLL in nats."""
    evaluate.enable_bpd = False
    evaluate.bpd_dataset = "test"          # split: 'test' or 'train'
    evaluate.bpd_num_samples = num_samples  # images of the split or held-out points (0: all / eval.num_samples)
    evaluate.bpd_batch_size = batch_size   # per ODE batch (0: eval.batch_size)
    evaluate.bpd_num_repeats = num_repeats  # passes, each with fresh dequantization noise and probes
    evaluate.bpd_solver = "rk45"           # or 'euler' / 'heun' with bpd_steps steps
    evaluate.bpd_steps = 100
    evaluate.bpd_rtol = 1e-5
    evaluate.bpd_atol = 1e-5
    evaluate.bpd_estimator = estimator     # Hutchinson probe ('rademacher', 'gaussian') or 'exact'
    return evaluate


def set_eval_outputs(evaluate):
    """The evaluation's optional outputs, all off."""
    evaluate.fid_stats = ""             # mu/sigma .npz (tools/fid.py stats): enables FID/IS of the samples
    evaluate.inception_weights = ""     # pt_inception-2015-12-05-6726825d.pth; "" = $PFGM_INCEPTION_WEIGHTS or ~/.cache/pfgm
    evaluate.save_images = False        # every sample as a PNG (image data)
    evaluate.enable_interpolate = False  # slerped prior points -> interpolation_{step}.png (image data)
    evaluate.enable_rescale = False     # rescaled prior points -> rescale_{step}.png (image data)
    return evaluate
