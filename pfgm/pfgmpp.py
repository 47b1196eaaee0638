"""PFGM++ (Xu, Tong, Tegmark, Jaakkola, Kim, ICML 2023): the charges in N + D dimensions.

Only the norm r of the D extra coordinates matters. The electric field of a charge y at (x, r) in N + D
dimensions gives the perturbation kernel

    p_r(x | y) = C(N, D) r^D (|x - y|^2 + r^2)^{-(N+D)/2},   C(N, D) = Gamma((N+D)/2) / (pi^{N/2} Gamma(D/2)),

and the backward ODE of the field becomes, with r = sigma sqrt(D) (EDM's noise level sigma),

    dx/dsigma = (x - E[y | x, sigma]) / sigma,

E[y | x, sigma] the posterior mean of the charges under that kernel. D = 1 is PFGM (r = z), D -> inf is
diffusion: the kernel tends to N(y, sigma^2 I) and the ODE to the VE probability flow. `D = math.inf` is
that limit here. Shapes: data points are flattened to N numbers; sigma is a float or a (B,) tensor.
"""
import math

import numpy as np
import scipy.special
import torch

from pfgm import poisson, seeds
from pfgm.sampling import per_sample


def radius_cdf(radius, data_dim, aug_dim, sigma):
    """P(|x - y| <= radius) under p_r(.|y), r = sigma sqrt(D): |x - y|^2 / r^2 ~ BetaPrime(N/2, D/2), so the
    CDF is I_{R^2 / (R^2 + r^2)}(N/2, D/2); for D = inf, |x - y| / sigma ~ chi_N. Numpy in, numpy out."""
    radius = np.asarray(radius, dtype=np.float64)
    if math.isinf(aug_dim):
        return scipy.special.gammainc(data_dim / 2.0, radius**2 / (2.0 * sigma**2))
    r2 = sigma**2 * aug_dim
    return scipy.special.betainc(data_dim / 2.0, aug_dim / 2.0, radius**2 / (radius**2 + r2))


def sample_radius(sigma, data_dim, aug_dim, generator=None, beta_clip=None):
    """|x - y| for x ~ p_r(.|y), one per entry of sigma ((B,) tensor): R = r sqrt(B / (1 - B)),
    B ~ Beta(N/2, D/2), drawn by inverting its CDF with the generator's uniforms (float64; computed on the
    host, one read of the device: `perturbation` uses it only for D > DEVICE_DRAW_MAX_D).
    beta_clip: B is clipped to [clip, 1 - clip], as the original does in training. D = inf: sigma chi_N."""
    device = sigma.device
    u = seeds.rand(sigma.shape, generator=generator, dtype=torch.float64, device=device).cpu().numpy()
    if math.isinf(aug_dim):
        chi2 = 2.0 * scipy.special.gammaincinv(data_dim / 2.0, u)
        return sigma.double() * torch.as_tensor(np.sqrt(chi2), device=device)
    # 1 - B ~ Beta(D/2, N/2): inverting the complement keeps 1 - B accurate when B is close to 1
    one_minus_b = scipy.special.betaincinv(aug_dim / 2.0, data_dim / 2.0, 1.0 - u)
    if beta_clip is not None:
        one_minus_b = np.clip(one_minus_b, beta_clip, 1.0 - beta_clip)
    one_minus_b = np.clip(one_minus_b, np.finfo(np.float64).tiny, 1.0)
    ratio = np.sqrt((1.0 - one_minus_b) / one_minus_b)
    return sigma.double() * math.sqrt(aug_dim) * torch.as_tensor(ratio, device=device)


# Up to this D the kernel is drawn on the device from Gaussians alone (no host read); beyond it the D
# Gaussians per sample would cost more than `sample_radius`'s inverse CDF on the host.
DEVICE_DRAW_MAX_D = 4096


def perturbation(shape, sigma, aug_dim, generator=None, beta_clip=None, dtype=torch.float32):
    """x - y for x ~ p_r(.|y), shape = (B, ...), sigma (B,): a radius times a uniform direction.

    Drawn from Gaussians on sigma's device (float64): g ~ N(0, I_N) and h ~ N(0, I_D) give the direction
    g / |g| and, independent of it, 1 - B = |h|^2 / (|g|^2 + |h|^2) with B ~ Beta(N/2, D/2), so
    R = r sqrt(B / (1 - B)) = sigma |g| / sqrt(|h|^2 / D) (the kernel is a multivariate Student t with D
    degrees of freedom). beta_clip: B clipped to [clip, 1 - clip], as the original does in training.
    D = inf: sigma g, N(0, sigma^2 I). D > DEVICE_DRAW_MAX_D: the radius from `sample_radius` (scipy's
    inverse CDF, on the host)."""
    n = shape[0]
    data_dim = math.prod(shape[1:])
    g = seeds.randn((n, data_dim), generator=generator, dtype=torch.float64, device=sigma.device)
    g_norm = g.norm(dim=1)
    direction = g / g_norm.unsqueeze(1)
    if math.isinf(aug_dim):
        radius = sigma.double() * g_norm
    elif aug_dim <= DEVICE_DRAW_MAX_D:
        h2 = seeds.randn((n, int(aug_dim)), generator=generator, dtype=torch.float64,
                         device=sigma.device).square().sum(1)
        one_minus_b = h2 / (g_norm.square() + h2)
        if beta_clip is not None:
            one_minus_b = one_minus_b.clamp(beta_clip, 1.0 - beta_clip)
        one_minus_b = one_minus_b.clamp_min(torch.finfo(torch.float64).tiny)
        radius = sigma.double() * math.sqrt(aug_dim) * ((1.0 - one_minus_b) / one_minus_b).sqrt()
    else:
        radius = sample_radius(sigma, data_dim, aug_dim, generator, beta_clip)
    return (direction * radius.unsqueeze(1)).to(dtype).reshape(shape)


def sample_prior(n, shape, aug_dim, sigma_max, generator=None, device=None, dtype=torch.float32):
    """n starting points of the sampler: the kernel around the origin at sigma_max (radius
    sigma_max sqrt(D) sqrt(B / (1 - B))), the data being a point charge seen from that far."""
    sigma = torch.full((n,), float(sigma_max), dtype=torch.float64, device=device)
    return perturbation((n, *shape), sigma, aug_dim, generator, dtype=dtype)


def _log_normalizer(data_dim, sigma, aug_dim):
    """The kernel's log-normalization at sigma (float or tensor): log C(N, D) + D log r, or
    -N/2 log(2 pi sigma^2) for D = inf."""
    if math.isinf(aug_dim):
        return -0.5 * data_dim * torch.log(2 * math.pi * torch.as_tensor(sigma, dtype=torch.float64) ** 2)
    log_c = math.lgamma((data_dim + aug_dim) / 2) - math.lgamma(aug_dim / 2) - data_dim / 2 * math.log(math.pi)
    return log_c + aug_dim / 2 * torch.log(torch.as_tensor(sigma, dtype=torch.float64) ** 2 * aug_dim)


def log_kernel(x, y, sigma, aug_dim):
    """log p_r(x | y) for x (B, ...) and y shaped like x or broadcasting (B,) -> (B,), normalized in x:
    log C(N, D) + D log r - (N+D)/2 log(|x - y|^2 + r^2), or the Gaussian log-density for D = inf."""
    d2 = (x - y).flatten(1).double().pow(2).sum(1)
    data_dim = x[0].numel()
    sigma = sigma.to(x.device, torch.float64) if torch.is_tensor(sigma) else \
        torch.full((), float(sigma), dtype=torch.float64, device=x.device)
    if math.isinf(aug_dim):
        return _log_normalizer(data_dim, sigma, aug_dim) - d2 / (2 * sigma**2)
    return _log_normalizer(data_dim, sigma, aug_dim) - (data_dim + aug_dim) / 2 * torch.log(d2 + sigma**2 * aug_dim)


def prior_logp(x, sigma_max, aug_dim):
    """(B,) log-density of the prior (the kernel around the origin at sigma_max): the ODE's end for
    likelihoods. Closed form from the integral of (|x|^2 + r^2)^{-(N+D)/2} over R^N,
    pi^{N/2} r^{-D} Gamma(D/2) / Gamma((N+D)/2)."""
    return log_kernel(x, torch.zeros_like(x), sigma_max, aug_dim)


def _log_weights(x, charges, sigma, aug_dim, mask=None):
    """(B, L) unnormalized log-weights of the charges in the posterior at x: -(N+D)/2 log(d^2 + r^2),
    or -d^2 / (2 sigma^2) for D = inf; -inf where the (B, L) bool mask leaves a charge out. Squared
    distances from one matrix product (no B x L x N tensor)."""
    xf, cf = x.flatten(1).double(), charges.flatten(1).double().to(x.device)
    d2 = (xf.pow(2).sum(1, keepdim=True) + cf.pow(2).sum(1) - 2.0 * xf @ cf.T).clamp_min(0.0)
    sigma = sigma.to(x.device, torch.float64) if torch.is_tensor(sigma) else \
        torch.full((), float(sigma), dtype=torch.float64, device=x.device)  # no host copy per call
    s2 = per_sample(sigma.expand(len(x)) ** 2, d2)
    lw = -d2 / (2.0 * s2) if math.isinf(aug_dim) else -(xf.shape[1] + aug_dim) / 2.0 * torch.log(d2 + s2 * aug_dim)
    return lw if mask is None else lw.masked_fill(~mask, -math.inf)


def posterior_mean(x, charges, sigma, aug_dim, mask=None):
    """E[y | x, sigma] over the charges (L, ...) with weights proportional to p_r(x | y_i): the exact
    denoiser of the empirical data (and the original's `stf` training target). x (B, ...) -> like x.
    mask: optional (B, L) bool, the charges each row counts (`poisson.class_mask`)."""
    w = torch.softmax(_log_weights(x, charges, sigma, aug_dim, mask), dim=1)
    return (w @ charges.flatten(1).double().to(x.device)).to(x.dtype).reshape(x.shape)


def class_posterior_mean(x, charges, sigma, aug_dim, labels, charge_labels, check=True):
    """The conditional `stf` target: row i is posterior_mean(x_i, charges[charge_labels == labels_i]),
    the exact denoiser of the batch's charges of the row's own class; a NULL (-1, dropped) label takes
    all the charges; every class in one pass, with no host read unless `check` (poisson.class_field_target).
    x (B, ...), sigma float or (B,), labels (B,), charge_labels (L,) -> like x."""
    mask = poisson.class_mask(labels, charge_labels)
    if check:
        poisson.check_every_row_has_charges(mask, labels)
    return posterior_mean(x, charges, sigma, aug_dim, mask)


def mixture_logp(x, charges, sigma, aug_dim):
    """(B,) log-density at x of the charges' kernels at sigma, averaged: log (1/L) sum_i p_r(x | y_i)."""
    lw = _log_weights(x, charges, sigma, aug_dim)
    log_norm = _log_normalizer(x[0].numel(), float(sigma), aug_dim).to(lw.device)
    return log_norm + torch.logsumexp(lw, dim=1) - math.log(len(charges))


def ode_drift(denoiser):
    """dx/dsigma = (x - D(x, sigma)) / sigma for a denoiser D(x, sigma (B,)) -> like x (EDM's ODE; PFGM++
    changes only the prior and the training kernel)."""
    def drift(x, sigma):
        s = torch.full((len(x),), sigma, dtype=x.dtype, device=x.device)
        return (x - denoiser(x, s)) / sigma
    return drift


def edm_sigmas(steps, sigma_min, sigma_max, rho=7.0):
    """EDM's schedule: `steps` noise levels (sigma_max^{1/rho} + i/(steps-1) (sigma_min^{1/rho} -
    sigma_max^{1/rho}))^rho, i = 0..steps-1, then 0. Floats, steps + 1 of them."""
    if steps < 2:
        raise ValueError(f"the EDM schedule needs at least 2 steps, got {steps}")
    a, b = sigma_max ** (1 / rho), sigma_min ** (1 / rho)
    return [(a + i / (steps - 1) * (b - a)) ** rho for i in range(steps)] + [0.0]


def churned_sigma(sigma, steps, S_churn, S_min=0.0, S_max=math.inf):
    """EDM's raised level before a step of its stochastic sampler (Algorithm 2, lines 5-6):
    sigma_hat = sigma (1 + gamma), gamma = min(S_churn / steps, sqrt(2) - 1) for S_min <= sigma <= S_max,
    else 0; `steps` is the number of levels of the schedule."""
    gamma = min(S_churn / steps, math.sqrt(2) - 1) if S_min <= sigma <= S_max else 0.0
    return sigma + gamma * sigma


def preconditioning(sigma, sigma_data=0.5):
    """EDM's (c_skip, c_out, c_in, c_noise) at sigma ((B,) tensor): the denoiser is
    c_skip x + c_out F(c_in x, c_noise), c_noise = log(sigma) / 4."""
    s2, d2 = sigma**2, sigma_data**2
    return d2 / (s2 + d2), sigma * sigma_data / torch.sqrt(s2 + d2), 1 / torch.sqrt(s2 + d2), torch.log(sigma) / 4


def loss_weight(sigma, sigma_data=0.5):
    """EDM's lambda(sigma) = (sigma^2 + sigma_data^2) / (sigma sigma_data)^2: unit loss at every sigma."""
    return (sigma**2 + sigma_data**2) / (sigma * sigma_data) ** 2
