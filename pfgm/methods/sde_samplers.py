"""The score SDEs' samplers (VE / VP / sub-VP baselines): the probability-flow drift for `sampling.odeint`,
predictors, correctors and the predictor-corrector loop.

`sde` is a pfgm.methods.sde.SDE; `score_fn(x, t)` returns the score for a float time t. Predictors
return (x, x_mean), x_mean being the step without its noise; correctors return x.
"""
import math

import torch

from pfgm import seeds
from pfgm.sampling import per_sample


def _noise(x, generator):
    return seeds.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)


def probability_flow_drift(sde, score_fn):
    """dx/dt = f(x, t) - g(t)^2 score(x, t) / 2, for `odeint` from T down to eps."""
    def drift(x, t):
        f, g = sde.sde(x, t)
        return f - 0.5 * per_sample(g * g, x) * score_fn(x, t)
    return drift


def reverse_diffusion_step(sde, score_fn, x, t, dt, *, N, generator=None, probability_flow=False):
    """x <- x - f + G^2 s + G z with (f, G) = sde.discretize(x, t, N); dt is implied by N.
    The probability-flow version halves G^2 s and adds no noise."""
    f, G = sde.discretize(x, t, N)
    G2s = per_sample(G * G, x) * score_fn(x, t)
    if probability_flow:
        x_mean = x - f + 0.5 * G2s
        return x_mean, x_mean
    x_mean = x - f + G2s
    return x_mean + per_sample(G, x) * _noise(x, generator), x_mean


def euler_maruyama_step(sde, score_fn, x, t, dt, *, N=None, generator=None, probability_flow=False):
    """One Euler-Maruyama step (dt < 0) of the reverse SDE dx = [f - g^2 s] dt + g dw-bar
    (probability flow: [f - g^2 s / 2] dt, no noise)."""
    f, g = sde.sde(x, t)
    k = 0.5 if probability_flow else 1.0
    x_mean = x + (f - k * per_sample(g * g, x) * score_fn(x, t)) * dt
    if probability_flow:
        return x_mean, x_mean
    return x_mean + per_sample(g, x) * math.sqrt(-dt) * _noise(x, generator), x_mean


def langevin_dynamics(score_fn, x, step_size, n_steps, generator=None):
    """Unadjusted Langevin: n_steps of x <- x + step score(x) + sqrt(2 step) z.
    step_size: a float or a tensor broadcasting against x."""
    step = torch.as_tensor(step_size, dtype=x.dtype, device=x.device)
    for _ in range(n_steps):
        x = x + step * score_fn(x) + torch.sqrt(2 * step) * _noise(x, generator)
    return x


def langevin_corrector(sde, score_fn, x, t, *, N, snr, n_steps, generator=None):
    """Langevin with step 2 alpha_i (snr ||z|| / ||s||)^2, norms averaged over the batch."""
    alpha = sde.corrector_alpha(t, x, N)
    for _ in range(n_steps):
        grad, z = score_fn(x, t), _noise(x, generator)
        ratio = z.flatten(1).norm(dim=1).mean() / grad.flatten(1).norm(dim=1).mean()
        step = per_sample(2 * alpha * (snr * ratio) ** 2, x)
        x = x + step * grad + torch.sqrt(2 * step) * z
    return x


def ald_corrector(sde, score_fn, x, t, *, N, snr, n_steps, generator=None):
    """Annealed Langevin dynamics: fixed step 2 alpha_i (snr std(t))^2 at this noise level."""
    std = sde.marginal_prob(x, t)[1]
    step = per_sample(2 * sde.corrector_alpha(t, x, N) * (snr * std) ** 2, x)
    return langevin_dynamics(lambda y: score_fn(y, t), x, step, n_steps, generator)


PREDICTORS = {"reverse_diffusion": reverse_diffusion_step, "euler_maruyama": euler_maruyama_step, "none": None}
CORRECTORS = {"langevin": langevin_corrector, "ald": ald_corrector, "none": None}


def pc_sampler(sde, score_fn, x, *, predictor="reverse_diffusion", corrector="langevin", snr=0.16,
               n_steps_each=1, N=1000, eps=1e-3, noise_removal=True, probability_flow=False,
               generator=None):
    """Predictor-corrector sampling from T to eps. Returns (x, nfe).

    Times are the first N points of linspace(T, eps, N + 1) (as the PFGM code; the last step ends at
    eps). At each time the corrector runs n_steps_each times, then the predictor steps to the next
    time. noise_removal returns the last predictor step without its noise.
    """
    if predictor not in PREDICTORS or corrector not in CORRECTORS:
        raise ValueError(f"unknown predictor {predictor!r} or corrector {corrector!r}")
    predict, correct = PREDICTORS[predictor], CORRECTORS[corrector]
    calls = [0]

    def counted(y, t):
        calls[0] += 1
        return score_fn(y, t)

    ts = torch.linspace(sde.T, eps, N + 1, dtype=torch.float64).tolist()
    x_mean = x
    with torch.no_grad():
        for t, t_next in zip(ts[:-1], ts[1:]):
            if correct is not None:
                x = correct(sde, counted, x, t, N=N, snr=snr, n_steps=n_steps_each, generator=generator)
            if predict is not None:
                x, x_mean = predict(sde, counted, x, t, t_next - t, N=N, generator=generator,
                                    probability_flow=probability_flow)
            else:
                x_mean = x
    return (x_mean if noise_removal else x), calls[0]


def denoise(sde, score_fn, x, t, *, N):
    """One noiseless reverse-diffusion step at time t (the end of the ODE sampler). 1 NFE."""
    f, G = sde.discretize(x, t, N)
    return x - f + per_sample(G * G, x) * score_fn(x, t)
