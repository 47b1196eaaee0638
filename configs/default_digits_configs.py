"""Defaults shared by the 8x8 digits configs: scikit-learn's 1797 hand-written digits (no download),
a small NCSN++/DDPM++ UNet, sized to train in minutes on 2 CPU cores.

The same UNet (set_small_unet) and the same number of images trained on per step (64) are used by
poisson/digits_ddpmpp, vp/digits_ddpmpp and ve/digits_ncsnpp, for a fair comparison.
"""
import ml_collections
import torch

from configs.default_cifar10_configs import set_likelihood, set_ncsnpp

# Images trained on per step by every digits config (PFGM's B; the whole batch of the baselines).
TRAIN_POINTS = 64


def set_small_unet(model, **overrides):
    """NCSN++/DDPM++ at 8x8: two levels (8, 4), one ResBlock each, attention at 4x4, nf 32."""
    set_ncsnpp(model, nf=32, ch_mult=(1, 2), num_res_blocks=1, attn_resolutions=(4,), **overrides)
    model.dropout = 0.0
    return model


def get_default_configs():
    config = ml_collections.ConfigDict()
    config.seed = 42
    config.device = "cuda" if torch.cuda.is_available() else "cpu"

    config.training = training = ml_collections.ConfigDict()
    training.sde = "poisson"
    training.batch_size = TRAIN_POINTS
    training.small_batch_size = TRAIN_POINTS
    # One training step of the small UNet on 64 digits costs ~0.19 s of CPU time (one thread,
    # measured): 3000 steps take about 6-10 minutes on 2 idle cores, plus snapshot sampling.
    training.n_iters = 3000
    training.snapshot_freq = 1000
    training.log_freq = 50
    training.eval_freq = 500
    training.snapshot_freq_for_preemption = 500
    training.snapshot_sampling = True
    training.snapshot_num_samples = 64
    training.max_nonfinite_steps = 20  # non-finite steps in a row before the run stops
    training.likelihood_weighting = False
    training.continuous = True
    training.reduce_mean = True
    training.M = 261
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
    sampling.N = 100
    sampling.z_max = 17.88
    sampling.z_min = 1e-3
    sampling.upper_norm = 179.3
    sampling.z_exp = 1.0
    sampling.rtol = 1e-4
    sampling.atol = 1e-4
    sampling.max_nfe = 10000          # bound on network evaluations per sample batch (0: none)

    config.eval = evaluate = ml_collections.ConfigDict()
    evaluate.begin_ckpt = -1            # -1: the newest checkpoint only
    evaluate.end_ckpt = -1
    evaluate.batch_size = 250
    evaluate.enable_sampling = True
    evaluate.num_samples = 1000
    evaluate.enable_loss = True
    set_likelihood(evaluate, batch_size=300)
    evaluate.fid_stats = ""             # mu/sigma .npz (tools/fid.py stats): enables FID/IS of the samples
    evaluate.inception_weights = ""     # pt_inception-2015-12-05-6726825d.pth; "" = $PFGM_INCEPTION_WEIGHTS or ~/.cache/pfgm
    evaluate.save_images = False
    evaluate.enable_interpolate = False
    evaluate.enable_rescale = False

    config.data = data = ml_collections.ConfigDict()
    data.dataset = "digits"
    data.root = ""                      # unused: the digits ship with scikit-learn
    data.image_size = 8
    data.random_flip = False            # a mirrored digit is not a digit
    data.centered = False
    data.uniform_dequantization = False
    data.num_channels = 1

    config.model = model = ml_collections.ConfigDict()
    model.sigma_end = 0.01
    model.sigma_min = 0.01
    model.sigma_max = 5.0
    model.num_scales = 1000
    model.beta_min = 0.1
    model.beta_max = 20.0
    model.dropout = 0.0
    model.embedding_type = "positional"
    model.ema_rate = 0.999              # 0.9999 averages over more steps than a run has
    set_small_unet(model)

    config.optim = optim = ml_collections.ConfigDict()
    optim.weight_decay = 0.0
    optim.optimizer = "Adam"
    optim.lr = 5e-4
    optim.beta1 = 0.9
    optim.eps = 1e-8
    optim.warmup = 200
    optim.grad_clip = 1.0
    return config
