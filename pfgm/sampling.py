"""ODE solvers, and PFGM's backward ODE built on them.

A solver is a plain function `solve(drift, x, t_start, t_end, ...) -> (x_end, nfe)` over a scalar time
t shared by the whole batch; `drift(x, t)` returns dx/dt shaped like x. Fixed-step solvers walk a
uniform grid in t; RK45 hands the flattened batch to scipy's adaptive Dormand-Prince.
"""
import math

import numpy as np
import scipy.integrate
import torch

from pfgm import poisson

__all__ = ["SOLVERS", "euler", "heun", "rk45", "odeint", "backward_ode", "pfgm_drift"]


def euler(drift, x, t_start, t_end, *, steps=100, **_):
    """Forward Euler on a uniform grid of `steps` steps. NFE = steps."""
    ts = torch.linspace(t_start, t_end, steps + 1, dtype=torch.float64).tolist()
    for t0, t1 in zip(ts[:-1], ts[1:]):
        x = x + (t1 - t0) * drift(x, t0)
    return x, steps


def heun(drift, x, t_start, t_end, *, steps=100, **_):
    """Heun's second-order method (trapezoidal corrector) on a uniform grid. NFE = 2 * steps."""
    ts = torch.linspace(t_start, t_end, steps + 1, dtype=torch.float64).tolist()
    for t0, t1 in zip(ts[:-1], ts[1:]):
        d0 = drift(x, t0)
        x_pred = x + (t1 - t0) * d0
        x = x + 0.5 * (t1 - t0) * (d0 + drift(x_pred, t1))
    return x, 2 * steps


def rk45(drift, x, t_start, t_end, *, rtol=1e-4, atol=1e-4, **_):
    """Adaptive RK45 (scipy's Dormand-Prince) over the flattened batch; NFE as scipy counts it.

    The whole batch is one system, as in the original code: its step size is shared by all samples.
    """
    shape, dtype, device = x.shape, x.dtype, x.device

    def f(t, y):
        xt = torch.as_tensor(y, dtype=dtype, device=device).reshape(shape)
        return drift(xt, float(t)).reshape(-1).double().cpu().numpy()

    y0 = x.detach().reshape(-1).double().cpu().numpy()
    sol = scipy.integrate.solve_ivp(f, (t_start, t_end), y0, method="RK45", rtol=rtol, atol=atol)
    if sol.status != 0:
        raise RuntimeError(f"RK45 failed: {sol.message}")
    out = torch.as_tensor(np.ascontiguousarray(sol.y[:, -1]), dtype=dtype, device=device)
    return out.reshape(shape), int(sol.nfev)


SOLVERS = {"euler": euler, "heun": heun, "rk45": rk45}


def odeint(drift, x, t_start, t_end, *, solver="rk45", steps=100, rtol=1e-4, atol=1e-4):
    """Integrate dx/dt = drift(x, t) from t_start to t_end with a named solver. Returns (x, nfe)."""
    if solver not in SOLVERS:
        raise ValueError(f"unknown solver {solver!r}; choose one of {sorted(SOLVERS)}")
    if solver != "rk45" and (not isinstance(steps, int) or steps < 1):
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    with torch.no_grad():
        return SOLVERS[solver](drift, x, t_start, t_end, steps=steps, rtol=rtol, atol=atol)


def pfgm_drift(field_fn, *, z_exp=None, gamma=None, vz_floor=1e-5):
    """dx/d(log z) = z v_x / v_z of the backward ODE (Eq. 6 in log-z time, App. B.2.2).

    Args:
      field_fn: (x, z) -> (v_x like x, v_z of shape (B,)), the normalized field.
      z_exp, gamma: when both are given, v_z is rebuilt from v_x below z = z_exp (App. B.2.3).
      vz_floor: v_z is capped at -vz_floor. The field of charges below the point always has v_z < 0;
        a network that predicts otherwise would send the trajectory back up or to infinity.
    Returns:
      drift(x, t) with t = log z.
    """
    substitute = z_exp is not None and gamma is not None and gamma > 0

    def drift(x, t):
        z_val = math.exp(t)
        z = torch.full((x.shape[0],), z_val, dtype=x.dtype, device=x.device)
        v_x, v_z = field_fn(x, z)
        if substitute and z_val < z_exp:
            v_z = poisson.substitute_vz(v_x, z, gamma, v_x[0].numel())
        v_z = v_z.clamp(max=-vz_floor)
        scale = (z / v_z).reshape((-1,) + (1,) * (x.dim() - 1))
        return (scale * v_x).to(x.dtype)

    return drift


def backward_ode(field_fn, x, *, z_max, z_min, solver="rk45", steps=100, rtol=1e-4, atol=1e-4,
                 z_exp=None, gamma=None):
    """Carry prior samples on the plane z = z_max down to z = z_min along the field (Sec. 3.3).

    Integrates dx/dt = z v_x / v_z in t = log z from log z_max to log z_min; no denoising step at the
    end, the state at z_min is the sample.

    Args:
      field_fn: (x, z) -> (v_x, v_z), see `pfgm_drift`.
      x: (B, ...) float32 or float64 starting points on the z_max plane.
      solver: 'euler' or 'heun' (`steps` uniform in log z) or 'rk45' (adaptive; rtol, atol).
      z_exp, gamma: optional z-substitution below z_exp (App. B.2.3).
    Returns:
      (samples shaped like x, number of field evaluations).
    """
    if not 0 < z_min < z_max:
        raise ValueError(f"need 0 < z_min < z_max, got z_min={z_min}, z_max={z_max}")
    drift = pfgm_drift(field_fn, z_exp=z_exp, gamma=gamma)
    return odeint(drift, x, math.log(z_max), math.log(z_min), solver=solver, steps=steps,
                  rtol=rtol, atol=atol)
