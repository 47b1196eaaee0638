"""Dormand-Prince RK5(4) on the samples' device: scipy's `RK45` (scipy.integrate._ivp.rk) in torch.

The same tableau, FSAL stage, error estimate (the RMS over the whole batch of E.K h / scale, scale =
atol + max(|y|, |y_new|) rtol), initial step (Hairer, Norsett & Wanner's `select_initial_step`) and
step-size control (safety 0.9, factors in [0.2, 10], no growth right after a rejection) as scipy, so
the NFE and the solution match scipy's within rounding. The state is carried in float64 like scipy's;
the drift sees it in the samples' dtype. The host reads one number per step (the error norm), never
the batch: no device<->host copy of the state per evaluation.
"""
import math

import torch

C = (0.0, 1 / 5, 3 / 10, 4 / 5, 8 / 9, 1.0)
A = ((),
     (1 / 5,),
     (3 / 40, 9 / 40),
     (44 / 45, -56 / 15, 32 / 9),
     (19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729),
     (9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656))
B = (35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84)
E = (-71 / 57600, 0.0, 71 / 16695, -71 / 1920, 17253 / 339200, -22 / 525, 1 / 40)
ORDER = 4                     # of the error estimator
SAFETY, MIN_FACTOR, MAX_FACTOR = 0.9, 0.2, 10.0


class StepTooSmall(RuntimeError):
    """The step size fell below 10 ulps of t (scipy's 'Required step size is less than spacing between
    numbers.')."""


def rms(v):
    """scipy's norm: the root mean square of all entries, read to the host."""
    return float(torch.linalg.vector_norm(v) / math.sqrt(v.numel()))


def _combine(y, h, weights, ks):
    out = y.clone()
    for w, k in zip(weights, ks):
        if w:
            out.add_(k, alpha=h * w)
    return out


def initial_step(fun, t0, y0, f0, t_bound, rtol, atol):
    """scipy's select_initial_step (one evaluation of fun)."""
    length, direction = abs(t_bound - t0), math.copysign(1.0, t_bound - t0)
    if length == 0:
        return 0.0
    scale = atol + y0.abs() * rtol
    d0, d1 = rms(y0 / scale), rms(f0 / scale)
    h0 = 1e-6 if d0 < 1e-5 or d1 < 1e-5 else 0.01 * d0 / d1
    h0 = min(h0, length)
    f1 = fun(t0 + h0 * direction, y0 + h0 * direction * f0)
    d2 = rms((f1 - f0) / scale) / h0
    if d1 <= 1e-15 and d2 <= 1e-15:
        h1 = max(1e-6, h0 * 1e-3)
    else:
        h1 = (0.01 / max(d1, d2)) ** (1 / (ORDER + 1))
    return min(100 * h0, h1, length)


def dormand_prince(drift, x, t0, t1, *, rtol=1e-4, atol=1e-4, on_nonfinite=None):
    """Integrate dx/dt = drift(x, t) from t0 to t1 (floats). Returns (x at t1 in x's dtype, NFE).

    on_nonfinite(t, y): called (and expected to raise) when a step's error is not finite, i.e. some
    stage of the drift was NaN or infinite; without it a FloatingPointError is raised."""
    dtype = x.dtype
    nfe = [0]

    def fun(t, y):
        nfe[0] += 1
        return drift(y.to(dtype), t).to(torch.float64)

    t, y = float(t0), x.detach().to(torch.float64)
    direction = math.copysign(1.0, t1 - t0) if t1 != t0 else 1.0
    f = fun(t, y)
    if on_nonfinite is not None and not math.isfinite(rms(f)):
        on_nonfinite(t, f[None])
    h_abs = initial_step(fun, t, y, f, t1, rtol, atol)
    exponent = -1.0 / (ORDER + 1)
    while direction * (t - t1) < 0:
        min_step = 10 * abs(math.nextafter(t, direction * math.inf) - t)
        h_abs = max(h_abs, min_step)
        rejected = False
        while True:
            if h_abs < min_step:
                raise StepTooSmall(f"RK45: the step size fell below the spacing of numbers at t = {t:.6g}")
            t_new = t + h_abs * direction
            if direction * (t_new - t1) > 0:
                t_new = t1
            h = t_new - t
            h_abs = abs(h)
            ks = [f]
            for c, a in zip(C[1:], A[1:]):
                ks.append(fun(t + c * h, _combine(y, h, a, ks)))
            y_new = _combine(y, h, B, ks)
            f_new = fun(t + h, y_new)
            ks.append(f_new)
            scale = atol + torch.maximum(y.abs(), y_new.abs()) * rtol
            err = _combine(torch.zeros_like(y), h, E, ks) / scale
            error_norm = rms(err)
            if not math.isfinite(error_norm):
                if on_nonfinite is not None:
                    on_nonfinite(t, torch.stack(ks))
                raise FloatingPointError(f"RK45: the drift is not finite between t = {t:.6g} and {t_new:.6g}")
            if error_norm < 1:
                factor = MAX_FACTOR if error_norm == 0 else min(MAX_FACTOR, SAFETY * error_norm ** exponent)
                if rejected:
                    factor = min(1.0, factor)
                h_abs *= factor
                break
            h_abs *= max(MIN_FACTOR, SAFETY * error_norm ** exponent)
            rejected = True
        t, y, f = t_new, y_new, f_new
    return y.to(dtype), nfe[0]
