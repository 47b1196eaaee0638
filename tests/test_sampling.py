"""ODE solvers on closed forms, and the backward ODE with the exact field of a few charges."""
import math

import pytest
import scipy.stats
import torch

from pfgm import poisson, sampling


def linear_drift(x, t):
    return -x * (1 + t)  # x(t) = x0 exp(-(t + t^2/2))


def exact_linear(x0, t):
    return x0 * math.exp(-(t + t * t / 2))


@pytest.mark.parametrize("solver,order", [("euler", 1), ("heun", 2)])
def test_fixed_step_convergence_order(solver, order):
    x0 = torch.ones(3, 2, dtype=torch.float64)
    errs = []
    for steps in (20, 40, 80):
        x, nfe = sampling.odeint(linear_drift, x0, 0.0, 1.0, solver=solver, steps=steps)
        assert nfe == steps * (1 if solver == "euler" else 2)
        errs.append((x - exact_linear(x0, 1.0)).abs().max().item())
    rates = [math.log2(errs[i] / errs[i + 1]) for i in range(2)]
    assert all(abs(r - order) < 0.15 for r in rates), rates


def test_rk45_tolerance_and_nfe():
    x0 = torch.ones(4, 3, 2, dtype=torch.float32)
    x, nfe = sampling.odeint(linear_drift, x0, 0.0, 1.0, solver="rk45", rtol=1e-8, atol=1e-8)
    assert x.dtype == torch.float32 and x.shape == x0.shape
    assert (x - exact_linear(x0, 1.0)).abs().max() < 1e-6
    assert nfe > 6 and nfe % 6 == 2  # Dormand-Prince: 6 evaluations a step plus the two initial ones


def test_bad_arguments():
    x = torch.zeros(2, 3)
    with pytest.raises(ValueError, match="solver"):
        sampling.odeint(linear_drift, x, 0, 1, solver="rk4")
    with pytest.raises(ValueError, match="z_min"):
        sampling.backward_ode(lambda x, z: (x, -z), x, z_max=1.0, z_min=2.0)


def exact_field_fn(charges, gamma=0.0):
    n = charges.shape[1]

    def field_fn(x, z):
        v = poisson.field_target(torch.cat([x.reshape(len(x), -1), z[:, None]], 1), charges, gamma)
        return v[:, :n].reshape(x.shape), v[:, n]

    return field_fn


CHARGES = torch.tensor([[1.0, 0.0, 0.0], [-0.5, 0.8, 0.1], [0.2, -0.9, 0.3], [-0.7, 0.1, -0.4]],
                       dtype=torch.float64)


@pytest.mark.parametrize("solver,steps", [("rk45", None), ("heun", 60), ("euler", 300)])
def test_exact_field_carries_prior_onto_charges_in_equal_shares(solver, steps):
    """Every charge sends half its flux up; the prior on a far plane is that of their sum, so each
    charge must receive an equal share of the samples, and every sample must land on a charge."""
    charges = CHARGES - CHARGES.mean(0)
    z_max = 100.0
    g = torch.Generator().manual_seed(0)
    x = poisson.sample_prior(2000, 3, z_max, 50 * z_max, generator=g, dtype=torch.float64)
    out, nfe = sampling.backward_ode(exact_field_fn(charges), x, z_max=z_max, z_min=1e-5, solver=solver,
                                     steps=steps or 100)
    dist, which = torch.cdist(out, charges).min(1)
    assert (dist < 1e-2).float().mean() > 0.99
    counts = torch.bincount(which, minlength=4).numpy()
    assert scipy.stats.chisquare(counts).pvalue > 1e-3, counts
    if steps:
        assert nfe == (2 * steps - 1 if solver == "heun" else steps)


def test_backward_ode_shapes_dtypes_and_z_substitution():
    charges = torch.rand(16, 2, 4, 4, dtype=torch.float64)
    flat = charges.reshape(16, -1)
    field = exact_field_fn(flat, gamma=5.0)

    def field_fn(x, z):
        vx, vz = field(x.reshape(len(x), -1), z)
        return vx.reshape(x.shape), vz

    for dtype in (torch.float32, torch.float64):
        x = poisson.sample_prior(6, 32, 20.0, 200.0, dtype=dtype).reshape(6, 2, 4, 4)
        out, nfe = sampling.backward_ode(field_fn, x, z_max=20.0, z_min=1e-3, solver="euler", steps=200)
        assert out.shape == x.shape and out.dtype == dtype
        out_sub, _ = sampling.backward_ode(field_fn, x, z_max=20.0, z_min=1e-3, solver="euler", steps=200,
                                           z_exp=1.0, gamma=5.0)
        # with the exact field the substitution changes little, and both end on a charge
        for o in (out, out_sub):
            assert torch.cdist(o.reshape(6, -1).double(), flat).min(1).values.max() < 0.05


def test_negative_vz_is_guarded():
    """A field with v_z >= 0 (a broken network) must not reverse or blow up the trajectory."""
    x = torch.ones(3, 2)
    out, _ = sampling.backward_ode(lambda x, z: (x, torch.zeros(len(x))), x, z_max=1.0, z_min=0.5,
                                   solver="euler", steps=10)
    assert torch.isfinite(out).all()


# ---- the original's fixed-step scheme: Euler / Heun in z on a grid uniform in log z ------------------

HIGH_DIM, N_CHARGES = 768, 50


@pytest.fixture(scope="module")
def high_dim_problem():
    """50 charges in [-1, 1]^768, 8 prior points on the App. B plane, and a float64 RK45 solution of
    the same ODE at rtol = atol = 1e-7 as the reference."""
    g = torch.Generator().manual_seed(0)
    charges = torch.rand(N_CHARGES, HIGH_DIM, generator=g, dtype=torch.float64) * 2 - 1
    hp = poisson.hyperparameters(charges.norm(dim=1).mean().item(), HIGH_DIM)
    x = poisson.sample_prior(8, HIGH_DIM, hp["z_max"], hp["upper_norm"], generator=g, dtype=torch.float64)
    field = exact_field_fn(charges)
    args = dict(z_max=hp["z_max"], z_min=1e-3)
    ref, _ = sampling.backward_ode(field, x, solver="rk45", rtol=1e-7, atol=1e-7, **args)
    return field, x, ref, args


# The original code's errors on this problem class (mean distance to the tight RK45 end point):
# Euler in z at N = 10, 20, 100 steps. Euler in log z scores 22.6, 0.060, 0.028 there.
ORIGINAL_EULER_ERRORS = {10: 0.0085, 20: 0.0030, 100: 0.00049}


@pytest.mark.parametrize("steps", sorted(ORIGINAL_EULER_ERRORS))
def test_euler_in_z_matches_the_original_accuracy_in_high_dimension(high_dim_problem, steps):
    field, x, ref, args = high_dim_problem
    out, nfe = sampling.backward_ode(field, x, solver="euler", steps=steps, **args)
    assert nfe == steps
    err = (out - ref).norm(dim=1).mean().item()
    assert err < ORIGINAL_EULER_ERRORS[steps], err


@pytest.mark.parametrize("steps", sorted(ORIGINAL_EULER_ERRORS))
def test_heun_in_z_beats_euler_with_nfe_2n_minus_1(high_dim_problem, steps):
    field, x, ref, args = high_dim_problem
    heun, nfe = sampling.backward_ode(field, x, solver="heun", steps=steps, **args)
    euler, _ = sampling.backward_ode(field, x, solver="euler", steps=steps, **args)
    assert nfe == 2 * steps - 1
    err_h, err_e = ((o - ref).norm(dim=1).mean().item() for o in (heun, euler))
    assert err_h < 0.5 * err_e, (err_h, err_e)


def test_euler_step_is_in_z_on_a_log_grid():
    """One Euler step from z0 to z1 moves x by exactly (z1 - z0) v_x / v_z, with z1 / z0 constant."""
    calls = []

    def field(x, z):
        calls.append(z[0].item())
        return torch.ones_like(x), -torch.full((len(x),), 2.0, dtype=x.dtype)

    x = torch.zeros(2, 3, dtype=torch.float64)
    out, nfe = sampling.backward_ode(field, x, z_max=8.0, z_min=1.0, solver="euler", steps=3)
    assert nfe == 3 and calls == pytest.approx([8.0, 4.0, 2.0])
    # a constant dx/dz = -1/2 integrates exactly: x(1) = x(8) + (1 - 8) * (-1/2)
    torch.testing.assert_close(out, torch.full_like(x, 3.5))


def test_pfgm_pc_is_the_euler_step_and_a_corrector_is_refused():
    from pfgm import methods
    from configs.poisson import toy2d
    c = toy2d.get_config()

    class Field(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(()))

        def forward(self, x, z):
            return x * 0.1 + self.w, -torch.ones(len(x))

    model = Field()
    m = methods.get_method(c)
    x = torch.randn(5, 2)
    pc, nfe_pc = m.sample(model, 5, (2,), x=x, method="pc", predictor="euler_maruyama", corrector="none", N=7)
    eu, nfe_eu = m.sample(model, 5, (2,), x=x, method="ode", ode_solver="euler", N=7)
    assert nfe_pc == nfe_eu == 7
    torch.testing.assert_close(pc, eu)
    with pytest.raises(ValueError, match="sampling.corrector"):
        m.sample(model, 5, (2,), x=x, method="pc", predictor="euler_maruyama", corrector="langevin", N=7)
    with pytest.raises(ValueError, match="sampling.predictor"):
        m.sample(model, 5, (2,), x=x, method="pc", predictor="reverse_diffusion", corrector="none", N=7)


@pytest.mark.parametrize("solver", ["rk45", "euler", "heun"])
def test_a_nan_field_stops_every_solver_with_an_error(solver):
    """scipy's RK45 shrinks its step forever on a NaN derivative; RK45 stops at the first evaluation, the
    fixed-step solvers (no host read per evaluation) at the end of their grid, with an error either way."""
    x = torch.ones(3, 4)
    calls = []

    def field(x, z):
        calls.append(1)
        return x * float("nan"), -torch.ones(len(x))

    with pytest.raises(sampling.NonFiniteError, match="not finite"):
        sampling.backward_ode(field, x, z_max=10.0, z_min=1e-3, solver=solver, steps=5)
    assert len(calls) == {"rk45": 1, "euler": 5, "heun": 9}[solver]


def test_max_nfe_bounds_an_adaptive_solve():
    stiff = lambda x, t: -1e6 * (x - torch.cos(torch.tensor(t)))  # noqa: E731 - RK45 needs ~1e6 steps here
    with pytest.raises(sampling.TooManySteps, match="max_nfe"):
        sampling.odeint(stiff, torch.ones(2, 2, dtype=torch.float64), 0.0, 10.0, solver="rk45", rtol=1e-8,
                        atol=1e-8, max_nfe=500)
    _, nfe = sampling.odeint(linear_drift, torch.ones(2, 2), 0.0, 1.0, solver="rk45", max_nfe=500)
    assert nfe <= 500


def test_a_field_pointing_away_from_the_data_is_named_in_the_error():
    data = torch.tensor([[0.0, 0.0], [1.0, 1.0], [-1.0, 2.0]])

    def physical_e(x, z):  # the charges' E points away from them: v_z > 0, the wrong sign for the ODE
        e = poisson.empirical_field(torch.cat([x, z[:, None]], dim=1), data)
        return e[:, :-1], e[:, -1]

    x = poisson.sample_prior(20, 2, 10.0, 30.0, generator=torch.Generator().manual_seed(0))
    with pytest.raises(sampling.NonFiniteError, match=r"v_z >= 0 \(pointing away from the data\) for 20 of 20"):
        sampling.backward_ode(physical_e, x, z_max=10.0, z_min=1e-3, solver="heun", steps=20)
    towards, _ = sampling.backward_ode(lambda x, z: tuple(-v for v in physical_e(x, z)), x, z_max=10.0, z_min=1e-3,
                                       solver="heun", steps=20)
    assert torch.cdist(towards, data).min(1).values.max() < 0.05
