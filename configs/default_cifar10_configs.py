"""Defaults shared by the CIFAR-10 configs (PFGM and the diffusion baselines).

Values are those of the official PFGM code's CIFAR-10 defaults (facts §5.1). Every key a model file may
override exists here, so command-line overrides work with a locked config.

Fixes and clean-ups relative to the official defaults:
  - config.device is a string ('cuda' or 'cpu'), not a torch.device.
  - keys the official defaults lacked but the code reads are added with the PFGM values:
    training.{sde, small_batch_size, tau, gamma, restrict_M, snapshot_num_samples},
    sampling.{method, ode_solver, z_max, z_min, upper_norm, predictor, corrector, rtol, atol},
    model.sigma_end, data.root.
  - sampling.vs (a verbosity flag) is dropped.
"""
import ml_collections
import torch


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


def set_ncsnpp(model, **overrides):
    """The NCSN++/DDPM++ architecture keys (facts §4, §5.1), at the paper's DDPM++ CIFAR-10 values.

    Keyword arguments override single keys, e.g. set_ncsnpp(model, fir=True).
    """
    model.name = "ncsnpp"
    model.scale_by_sigma = False
    model.normalization = "GroupNorm"
    model.nonlinearity = "swish"
    model.nf = 128
    model.ch_mult = (1, 2, 2, 2)
    model.num_res_blocks = 4
    model.attn_resolutions = (16,)
    model.resamp_with_conv = True
    model.conditional = True
    model.fir = False
    model.fir_kernel = [1, 3, 3, 1]
    model.skip_rescale = True
    model.resblock_type = "biggan"
    model.progressive = "none"
    model.progressive_input = "none"
    model.progressive_combine = "sum"
    model.attention_type = "ddpm"
    model.init_scale = 0.0
    model.embedding_type = "positional"
    model.fourier_scale = 16
    model.conv_size = 3
    for key, value in overrides.items():
        if key not in model:
            raise KeyError(f"set_ncsnpp: unknown model key {key!r}")
        model[key] = value
    return model


def get_default_configs():
    config = ml_collections.ConfigDict()
    config.seed = 49
    config.device = "cuda" if torch.cuda.is_available() else "cpu"

    config.training = training = ml_collections.ConfigDict()
    training.sde = "poisson"
    training.batch_size = 128           # B_L: images drawn per step (the charges for PFGM)
    training.small_batch_size = 128     # B: images trained on per step (PFGM only)
    training.n_iters = 1300001
    training.snapshot_freq = 50000
    training.log_freq = 50
    training.eval_freq = 10000
    training.snapshot_freq_for_preemption = 10000  # meta checkpoint, to resume after preemption
    training.snapshot_sampling = True
    training.snapshot_num_samples = 64  # samples drawn with the EMA weights at each snapshot
    training.max_nonfinite_steps = 20  # non-finite steps in a row before the run stops
    training.likelihood_weighting = False
    training.continuous = True
    training.reduce_mean = False
    training.M = 291
    training.tau = 0.03
    training.gamma = 5.0
    training.restrict_M = True

    config.sampling = sampling = ml_collections.ConfigDict()
    sampling.method = "ode"
    sampling.ode_solver = "rk45"
    sampling.predictor = "euler_maruyama"
    sampling.corrector = "none"
    sampling.n_steps_each = 1
    sampling.noise_removal = True
    sampling.probability_flow = False
    sampling.snr = 0.16
    sampling.N = 1000
    sampling.z_max = 40.0
    sampling.z_min = 1e-3
    sampling.upper_norm = 3000.0
    sampling.z_exp = 5.0
    sampling.rtol = 1e-4
    sampling.atol = 1e-4
    sampling.max_nfe = 10000          # bound on network evaluations per sample batch (0: none)

    config.eval = evaluate = ml_collections.ConfigDict()
    evaluate.begin_ckpt = 8
    evaluate.end_ckpt = 26
    evaluate.batch_size = 1000
    evaluate.enable_sampling = False
    evaluate.num_samples = 10000
    evaluate.enable_loss = False
    # images per ODE batch: each step backpropagates through the network, so fewer than eval.batch_size
    set_likelihood(evaluate, batch_size=100)
    evaluate.fid_stats = ""             # mu/sigma .npz (tools/fid.py stats): enables FID/IS of the samples
    evaluate.inception_weights = ""     # pt_inception-2015-12-05-6726825d.pth; "" = $PFGM_INCEPTION_WEIGHTS or ~/.cache/pfgm
    evaluate.save_images = False
    evaluate.enable_interpolate = False
    evaluate.enable_rescale = False

    config.data = data = ml_collections.ConfigDict()
    data.dataset = "CIFAR10"
    data.root = "data/cifar10"  # cifar-10-python.tar.gz, cifar-10-batches-py/, or a folder with either
    data.image_size = 32
    data.random_flip = True
    data.centered = False
    data.uniform_dequantization = False
    data.num_channels = 3

    config.model = model = ml_collections.ConfigDict()
    model.sigma_end = 0.01     # PFGM perturbation base scale
    model.sigma_min = 0.01     # sigma_* / num_scales: the VE SDE (and the unused `sigmas` buffer)
    model.sigma_max = 50.0
    model.num_scales = 1000
    model.beta_min = 0.1       # VP / sub-VP SDE
    model.beta_max = 20.0
    model.dropout = 0.1
    model.embedding_type = "fourier"
    model.ema_rate = 0.9999

    config.optim = optim = ml_collections.ConfigDict()
    optim.weight_decay = 0.0
    optim.optimizer = "Adam"
    optim.lr = 2e-4
    optim.beta1 = 0.9
    optim.eps = 1e-8
    optim.warmup = 5000
    optim.grad_clip = 1.0
    return config
