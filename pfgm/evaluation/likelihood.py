"""Log-likelihood through a probability-flow ODE, and bits per dimension.

A method's `probability_flow(model)` gives a deterministic map dx/dt = f(x, t) between the data (time
t_data) and its prior (t_prior): PFGM's backward ODE in t = log z, or a score SDE's probability-flow ODE.
Along a trajectory d log p_t(x(t)) / dt = -div_x f (the instantaneous change of variables), so

    log p_{t_data}(x) = log p_prior(x(t_prior)) + integral_{t_data}^{t_prior} div_x f(x(t), t) dt.

The state (x, running integral) is carried by the same solvers as sampling (`pfgm.sampling.odeint`).
The divergence is exact (N backward passes per evaluation; for low-dimensional data) or the
Hutchinson-Skilling estimate eps^T (df/dx) eps with one Rademacher or Gaussian probe per sample, fixed
for the whole trajectory, which keeps log p unbiased.

`images_bits_per_dim` (dequantize, scale, integrate, convert) and `points_nll` are the per-batch steps
of the evaluation loop's likelihood (`pfgm.evaluate.likelihood_report`).
"""
import math
from typing import NamedTuple

import torch

from pfgm import sampling
from pfgm.datasets.image_base import uniform_dequantize

ESTIMATORS = ("rademacher", "gaussian", "exact")


class LogLikelihood(NamedTuple):
    logp: torch.Tensor          # (B,) log p_{t_data}(x), in nats
    prior_point: torch.Tensor   # x(t_prior), shaped like x
    nfe: int                    # drift evaluations (each with its backward passes)


def hutchinson_probe(x, kind="rademacher", generator=None):
    """A probe eps shaped like x with E[eps eps^T] = I: random signs, or standard normal."""
    if kind == "rademacher":
        bits = torch.randint(0, 2, x.shape, generator=generator, device=x.device)
        return (2 * bits - 1).to(x.dtype)
    if kind == "gaussian":
        return torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    raise ValueError(f"unknown probe {kind!r}; choose 'rademacher' or 'gaussian'")


def divergence_hutchinson(f, x, probe):
    """(B,) eps^T (df/dx) eps, one vector-Jacobian product. f = f(x) with x requiring grad.

    Samples do not interact in f, so the batch's Jacobian is block diagonal and one product serves all.
    """
    (vjp,) = torch.autograd.grad(f, x, probe)
    return (vjp * probe).flatten(1).sum(1)


def divergence_exact(f, x):
    """(B,) trace of df/dx, one backward pass per coordinate."""
    flat = f.flatten(1)
    div = torch.zeros(flat.shape[0], dtype=f.dtype, device=f.device)
    for i in range(flat.shape[1]):
        (g,) = torch.autograd.grad(flat[:, i].sum(), x, retain_graph=i + 1 < flat.shape[1])
        div = div + g.flatten(1)[:, i]
    return div


def augmented_drift(drift, shape, estimator="rademacher", probe=None):
    """The drift of the state (flattened x, integral of div f): (B, N + 1) -> (B, N + 1)."""
    if estimator not in ESTIMATORS:
        raise ValueError(f"unknown divergence estimator {estimator!r}; choose one of {list(ESTIMATORS)}")
    if estimator != "exact" and probe is None:
        raise ValueError(f"the {estimator!r} estimator needs a probe shaped like x (see hutchinson_probe)")

    def f(state, t):
        with torch.enable_grad():
            x = state[:, :-1].detach().reshape(shape).requires_grad_(True)
            dx = drift(x, t)
            div = divergence_exact(dx, x) if estimator == "exact" else divergence_hutchinson(dx, x, probe)
        return torch.cat([dx.detach().flatten(1), div.detach().unsqueeze(1)], dim=1)

    return f


def ode_log_likelihood(flow, x, *, solver="rk45", steps=100, rtol=1e-5, atol=1e-5, estimator="rademacher",
                       generator=None):
    """log p(x) of data points under a probability-flow ODE.

    Args:
      flow: a `pfgm.methods.base.ProbabilityFlow` (drift, t_data, t_prior, prior_logp).
      x: (B, ...) points in model space (for images: dequantized, then scaled as for training).
      solver, steps, rtol, atol: as `pfgm.sampling.odeint`. RK45 controls one RMS error over all
        B (N + 1) components, so for images the integral's own error is only loosely controlled (as in
        the original code); tighten the tolerances and compare when it matters.
      estimator: 'rademacher' or 'gaussian' (Hutchinson), or 'exact'.
      generator: draws the Hutchinson probe (on x's device).
    Returns:
      LogLikelihood(logp (B,), prior_point, nfe).
    """
    probe = None if estimator == "exact" else hutchinson_probe(x, estimator, generator)
    f = augmented_drift(flow.drift, x.shape, estimator, probe)
    state = torch.cat([x.detach().flatten(1), x.new_zeros(x.shape[0], 1)], dim=1)
    end, nfe = sampling.odeint(f, state, flow.t_data, flow.t_prior, solver=solver, steps=steps,
                               rtol=rtol, atol=atol)
    prior_point = end[:, :-1].reshape(x.shape)
    logp = flow.prior_logp(prior_point) + end[:, -1]
    return LogLikelihood(logp, prior_point, nfe)


def bits_per_dim(logp, num_dims, *, scale=1.0, levels=256):
    """Bits per dimension of uniformly dequantized data from its model-space log-density.

    Data x in [0, 1] on the `levels`-level grid are dequantized to (U + (levels - 1) x) / levels,
    U ~ U[0, 1)^N, which fills bins of width 1/levels, and modelled in model space y = scale * x + shift
    (scale 2 for data centered on [-1, 1]). Then log P(bin) >= E_U log p_y(y) + N log(scale) - N log(levels):

        bpd = -log p_y / (N ln 2) - log2(scale) + log2(levels)   (7 + ... for centered 8-bit data).
    """
    return -logp / (num_dims * math.log(2.0)) - math.log2(scale) + math.log2(levels)


def scaler_slope(scaler):
    """d(model space) / d(data space) of an affine data scaler (2 for centering [0, 1] on [-1, 1])."""
    return float(scaler(torch.ones(())) - scaler(torch.zeros(())))


def images_bits_per_dim(flow, images, scaler, *, device=None, noise_generator=None, **ode_options):
    """Bits/dim of 8-bit images (B, C, H, W) in [0, 1] on the CPU: dequantize (with noise_generator),
    scale to model space, integrate the flow on `device`. Returns ((B,) float64 CPU tensor, nfe).
    `ode_options` go to `ode_log_likelihood`."""
    x = scaler(uniform_dequantize(images, noise_generator)).to(device)
    out = ode_log_likelihood(flow, x, **ode_options)
    bpd = bits_per_dim(out.logp.double().cpu(), images[0].numel(), scale=scaler_slope(scaler))
    return bpd, out.nfe


def points_nll(flow, points, scaler, *, device=None, **ode_options):
    """Negative log-likelihood in nats of continuous data-space points (B, ...): ((B,) float64, nfe)."""
    out = ode_log_likelihood(flow, scaler(points).to(device), **ode_options)
    # the density of the data-space points: the model-space one times |dy/dx| = scale^N
    log_jacobian = points[0].numel() * math.log(scaler_slope(scaler))
    return -(out.logp.double().cpu() + log_jacobian), out.nfe
