"""ODE solvers, and PFGM's backward ODE built on them.

Every solver is a plain function with one signature, `solve(drift, x, ts, **options) -> (x_end, nfe)`:
`drift(x, t)` returns dx/dt shaped like x, `ts` is the time grid t_0 -> t_N (any direction) shared by the
whole batch. The fixed-step solvers walk the grid; RK45 goes adaptively from ts[0] to ts[-1] with scipy's
Dormand-Prince written in torch (`pfgm.rk45`), on the samples' device. `odeint` lays out the grid: uniform in t, or uniform in log t
(`spacing='log'`, PFGM's z), where RK45 then integrates in log t. The score SDEs' predictor-corrector
sampler lives beside the SDEs (`pfgm.methods.sde_samplers`).
"""
import math

import torch

from pfgm import poisson, rk45 as dopri, run_utils

__all__ = ["SOLVERS", "SOLVER_ALIASES", "SPACINGS", "solver_name", "euler", "heun", "rk45", "time_grid", "odeint", "solve",
           "in_log_time", "backward_ode", "integrate_z", "pfgm_drift", "per_sample", "NonFiniteError", "TooManySteps"]


def euler(drift, x, ts, *, callback=None):
    """Forward Euler over the grid ts: x <- x + (t_{i+1} - t_i) drift(x, t_i). NFE = len(ts) - 1.
    callback(t, x) sees the state at every grid time, the first included."""
    if callback:
        callback(ts[0], x)
    for t0, t1 in zip(ts[:-1], ts[1:]):
        x = x + (t1 - t0) * drift(x, t0)
        if callback:
            callback(t1, x)
    return x, len(ts) - 1


def heun(drift, x, ts, *, last_step_euler=False, callback=None):
    """Heun's second-order method (Euler predictor, trapezoidal corrector) over the grid ts.

    NFE = 2 (len(ts) - 1), or one fewer with `last_step_euler` (the last step is plain Euler, as the
    original PFGM's `improved_euler`). callback(t, x) as in `euler`."""
    n = len(ts) - 1
    if callback:
        callback(ts[0], x)
    for i, (t0, t1) in enumerate(zip(ts[:-1], ts[1:])):
        d0 = drift(x, t0)
        x_pred = x + (t1 - t0) * d0
        if last_step_euler and i == n - 1:
            x = x_pred
        else:
            x = x + 0.5 * (t1 - t0) * (d0 + drift(x_pred, t1))
        if callback:
            callback(t1, x)
    return x, 2 * n - (1 if last_step_euler and n > 0 else 0)


def rk45(drift, x, ts, *, rtol=1e-4, atol=1e-4, callback=None):
    """Adaptive RK45 from ts[0] to ts[-1]: scipy's Dormand-Prince (tableau, error norm, step control) in
    torch on x's device (`pfgm.rk45`), the NFE as scipy counts it. The whole batch is one system, as in the
    original code: its step size is shared by all samples. It has no grid to report states on, so a
    callback is refused. A non-finite drift raises NonFiniteError at the step that met it."""
    if callback is not None:
        raise ValueError("callback: only the fixed-step solvers ('euler', 'heun') report their states")
    try:
        return dopri.dormand_prince(drift, x, float(ts[0]), float(ts[-1]), rtol=rtol, atol=atol,
                                    on_nonfinite=_raise_nonfinite)
    except dopri.StepTooSmall as e:
        raise RuntimeError(f"RK45 failed: {e}") from e


SOLVERS = {"euler": euler, "heun": heun, "rk45": rk45}
SOLVER_ALIASES = {"forward_euler": "euler", "improved_euler": "heun"}  # the original code's names
SPACINGS = ("uniform", "log")


def solver_name(name):
    """The solver `name` stands for (its own name or an alias of the original code); ValueError if none."""
    name = SOLVER_ALIASES.get(name, name)
    if name not in SOLVERS:
        raise ValueError(f"unknown solver {name!r}; choose one of {sorted(set(SOLVERS) | set(SOLVER_ALIASES))}")
    return name


def per_sample(v, x):
    """A (B,) tensor reshaped to broadcast against a batch x of shape (B, ...)."""
    return v.reshape((-1,) + (1,) * (x.dim() - 1))


def time_grid(t_start, t_end, steps, spacing="uniform"):
    """steps + 1 times from t_start to t_end (floats), uniform in t or in log t."""
    if spacing == "log":
        if not (t_start > 0 and t_end > 0):
            raise ValueError(f"a grid uniform in log t needs positive ends, got {t_start}, {t_end}")
        logs = torch.linspace(math.log(t_start), math.log(t_end), steps + 1, dtype=torch.float64)
        ts = logs.exp().tolist()
        ts[0], ts[-1] = float(t_start), float(t_end)  # exactly the ends, not exp(log(.))
        return ts
    if spacing != "uniform":
        raise ValueError(f"unknown grid spacing {spacing!r}; choose one of {list(SPACINGS)}")
    return torch.linspace(t_start, t_end, steps + 1, dtype=torch.float64).tolist()


def odeint(drift, x, t_start, t_end, *, solver="rk45", steps=100, rtol=1e-4, atol=1e-4, spacing="uniform",
           last_step_euler=False, max_nfe=None, callback=None):
    """Integrate dx/dt = drift(x, t) from t_start to t_end with a named solver. Returns (x, nfe).

    spacing='log' (t > 0): Euler/Heun step in t on a grid uniform in log t, and RK45 integrates
    dx/ds = t drift(x, t) in s = log t. Otherwise the grid is uniform in t. See `solve`.
    """
    solver = solver_name(solver)
    if solver != "rk45" and (not isinstance(steps, int) or isinstance(steps, bool) or steps < 1):
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    if spacing not in SPACINGS:
        raise ValueError(f"unknown grid spacing {spacing!r}; choose one of {list(SPACINGS)}")
    ts = [t_start, t_end] if solver == "rk45" else time_grid(t_start, t_end, steps, spacing)
    return solve(drift, x, ts, solver=solver, rtol=rtol, atol=atol, last_step_euler=last_step_euler,
                 max_nfe=max_nfe, callback=callback, log_time=spacing == "log")


def solve(drift, x, ts, *, solver="heun", rtol=1e-4, atol=1e-4, last_step_euler=False, max_nfe=None,
          callback=None, log_time=False):
    """Integrate dx/dt = drift(x, t) over the grid ts (RK45: from ts[0] to ts[-1]). Returns (x, nfe).

    last_step_euler: Heun's last step is plain Euler (so the drift is never evaluated at ts[-1]).
    log_time (t > 0): RK45 integrates dx/ds = t drift(x, t) in s = log t, and progress counts in log t.
    A non-finite drift raises `NonFiniteError`; more than `max_nfe` evaluations raise `TooManySteps`.
    callback(t, x): called at every grid time by the fixed-step solvers (RK45 refuses one).
    """
    solver = solver_name(solver)
    options = dict(rtol=rtol, atol=atol) if solver == "rk45" else {}
    if solver == "heun":
        options["last_step_euler"] = last_step_euler
    # a progress display (log lines when stderr is not a terminal): an undertrained network can need
    # thousands of evaluations, which should not pass in silence
    with run_utils.progress(total=100, desc=f"ODE ({solver})", unit="%", leave=False) as bar, torch.no_grad():
        f = _guarded(drift, max_nfe, bar, (ts[0], ts[-1], math.log if log_time else float))
        if solver == "rk45" and log_time:
            return rk45(in_log_time(f), x, [math.log(ts[0]), math.log(ts[-1])], callback=callback, **options)
        x_end, nfe = SOLVERS[solver](f, x, ts, callback=callback, **options)
        # one check of the end state instead of a host read per evaluation: NaN and inf carry through
        if not bool(torch.isfinite(x_end).all()):
            _raise_nonfinite(ts[-1], x_end[None], during=True)
        return x_end, nfe


def in_log_time(drift):
    """dx/ds = t drift(x, t) with s = log t: the same ODE in log time."""
    return lambda x, s: math.exp(s) * drift(x, math.exp(s))


# ---- guards: a solve ends with a clear error instead of carrying NaN on or running without end ------

class NonFiniteError(FloatingPointError):
    """The drift returned NaN or infinity: the solver stops instead of carrying it on (or hanging)."""


class TooManySteps(RuntimeError):
    """A solve went past its bound on drift evaluations (`max_nfe`)."""


def _raise_nonfinite(t, values, during=False):
    """NonFiniteError naming how many samples went non-finite; values (k, B, ...) holds their states or
    drifts (read to the host only here, on the way out)."""
    finite = torch.isfinite(values.reshape(values.shape[0], values.shape[1], -1)).all(2).all(0)
    where = f"during the solve (ended at t = {t:.6g})" if during else f"at t = {t:.6g}"
    raise NonFiniteError(f"the drift (the field or score it is built from) is not finite {where} "
                         f"for {int((~finite).sum())} of {len(finite)} samples")


def _guarded(drift, max_nfe=None, bar=None, span=None):
    """drift, raising TooManySteps past max_nfe calls (finiteness is checked by the solvers: RK45 at each
    step's error norm, the fixed-step ones on the end state, never by a host read per call); `bar`
    (a tqdm bar of total 100) shows the share of the time span (t_start, t_end, warp) done and the NFE,
    measured in warp(t)."""
    calls = [0]

    def f(x, t):
        calls[0] += 1
        if bar is not None:
            a, b, warp = span
            done = int(100 * min(1.0, abs(warp(t) - warp(a)) / abs(warp(b) - warp(a))))
            bar.set_postfix(nfe=calls[0], refresh=False)
            bar.update(max(0, done - bar.n))
        if max_nfe and calls[0] > max_nfe:
            raise TooManySteps(f"the ODE solve passed {max_nfe} drift evaluations (sampling.max_nfe) at "
                               f"t = {t:.6g}: the network's field is probably far from trained; raise "
                               f"sampling.max_nfe or the solver tolerances to go on")
        return drift(x, t)

    return f


def pfgm_drift(field_fn, *, z_exp=None, gamma=None, vz_floor=1e-5):
    """dx/dz = v_x / v_z of the backward ODE (Eq. 6 in the paper, App. B.2.2).

    Args:
      field_fn: (x, z) -> (v_x like x, v_z of shape (B,)), the normalized field.
      z_exp, gamma: when both are given, v_z is rebuilt from v_x below z = z_exp (App. B.2.3).
      vz_floor: v_z is capped at -vz_floor. The field of charges below the point always has v_z < 0;
        a network that predicts otherwise would send the trajectory back up or to infinity.
    Returns:
      drift(x, z), shaped like x. Its `pointing_away()` is (count, n, z) of the samples whose v_z was
      capped at the last call with any (None if never): `backward_ode` names them when a solve fails.
      The count and z are kept on the device and read only then.
    """
    substitute = z_exp is not None and gamma is not None and gamma > 0
    seen = {}

    def drift(x, z_val):
        z = torch.full((x.shape[0],), z_val, dtype=x.dtype, device=x.device)
        v_x, v_z = field_fn(x, z)
        if substitute and z_val < z_exp:
            v_z = poisson.substitute_vz(v_x, z, gamma, v_x[0].numel())
        away = (v_z > -vz_floor).sum()
        if not seen:
            seen.update(count=torch.zeros_like(away), z=torch.zeros((), dtype=torch.float64, device=x.device),
                        n=len(v_z))
        seen["z"] = torch.where(away > 0, z_val, seen["z"])
        seen["count"] = torch.where(away > 0, away, seen["count"])
        v_z = v_z.clamp(max=-vz_floor)
        return (v_x / per_sample(v_z, x)).to(x.dtype)

    def pointing_away():
        if not seen or not int(seen["count"]):
            return None
        return int(seen["count"]), seen["n"], float(seen["z"])

    drift.pointing_away = pointing_away
    return drift


def backward_ode(field_fn, x, *, z_max, z_min, solver="rk45", steps=100, rtol=1e-4, atol=1e-4,
                 z_exp=None, gamma=None, max_nfe=None, callback=None):
    """Carry prior samples on the plane z = z_max down to z = z_min along the field (Sec. 3.3).

    Integrates dx/dz = v_x / v_z from z_max to z_min, as the original code: Euler and Heun step in z
    on `steps` intervals uniform in log z (Heun's last step is plain Euler: NFE 2 steps - 1), RK45
    integrates in log z. Far from the data the field lines are nearly straight in z, so a step in z
    is almost exact there, where a step in log z (x += dlog z . z v_x/v_z) overshoots. No denoising
    step at the end: the state at z_min is the sample.

    Args:
      field_fn: (x, z) -> (v_x like x, v_z of shape (B,)): the normalized field, pointing towards the
        data (v_z < 0 above the plane), as `poisson.field_target` or a trained network gives it; a v_z
        >= 0 is capped at -1e-5 (see `pfgm_drift`) and, when the solve then fails, named in its error.
      x: (B, ...) float32 or float64 starting points on the z_max plane.
      solver: 'euler' (NFE steps), 'heun' (NFE 2 steps - 1) or 'rk45' (adaptive; rtol, atol).
      z_exp, gamma: optional z-substitution below z_exp (App. B.2.3).
      max_nfe: optional bound on field evaluations (`TooManySteps` past it).
      callback: (z, x) at every grid point (fixed-step solvers), e.g. to draw the field lines.
    Returns:
      (samples shaped like x, number of field evaluations).
    """
    drift = pfgm_drift(field_fn, z_exp=z_exp, gamma=gamma)
    return integrate_z(drift, x, z_max=z_max, z_min=z_min, solver=solver, steps=steps, rtol=rtol, atol=atol,
                       max_nfe=max_nfe, callback=callback)


def integrate_z(drift, x, *, z_max, z_min, solver="rk45", steps=100, rtol=1e-4, atol=1e-4, max_nfe=None,
                callback=None):
    """`backward_ode`'s integration of a given dx/dz drift(x, z) (e.g. a guided one) from z_max to z_min."""
    if not 0 < z_min < z_max:
        raise ValueError(f"need 0 < z_min < z_max, got z_min={z_min}, z_max={z_max}")
    try:
        return odeint(drift, x, z_max, z_min, solver=solver, steps=steps, rtol=rtol, atol=atol, spacing="log",
                      last_step_euler=True, max_nfe=max_nfe, callback=callback)
    except (NonFiniteError, TooManySteps) as e:
        info = drift.pointing_away() if callable(getattr(drift, "pointing_away", None)) else None
        if info is None:
            raise
        away, n, z = info
        # A field of the wrong sign (e.g. the physical E, which points away from the charges) has its
        # v_z capped at -1e-5: dx/dz is then huge and carries the samples off to infinity.
        raise type(e)(f"{e}; field_fn gave v_z >= 0 (pointing away from the data) for {away} of {n} samples "
                      f"at z = {z:.6g}: the backward ODE follows the field towards the data, v_z < 0 above the "
                      f"plane (the sign of poisson.field_target, minus the physical E of "
                      f"poisson.empirical_field); check field_fn's sign, or the network's training") from e
