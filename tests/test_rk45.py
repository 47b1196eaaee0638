"""The torch Dormand-Prince (pfgm.rk45, sampling.rk45) against scipy's RK45, the reference: the same NFE
within a few percent and the same solution within the tolerance, for every method's ODE and for the
likelihood's augmented ODE; and sampling without scipy's solve_ivp at all."""
import math

import numpy as np
import pytest
import scipy.integrate
import torch

from conftest import tiny_config
from pfgm import methods, models, poisson, rk45, sampling
from pfgm.evaluation import likelihood


def scipy_rk45(drift, x, t0, t1, rtol, atol):
    """scipy's solve_ivp(RK45) over the flattened batch, in float64: (x at t1, nfev)."""
    shape, dtype = x.shape, x.dtype

    def f(t, y):
        return drift(torch.as_tensor(y, dtype=dtype).reshape(shape), float(t)).reshape(-1).double().numpy()

    sol = scipy.integrate.solve_ivp(f, (t0, t1), x.detach().reshape(-1).double().numpy(), method="RK45",
                                    rtol=rtol, atol=atol)
    assert sol.status == 0, sol.message
    return torch.as_tensor(sol.y[:, -1]).reshape(shape), sol.nfev


def assert_matches_scipy(drift, x, t0, t1, rtol=1e-4, atol=1e-4):
    with torch.no_grad():
        ours, nfe = rk45.dormand_prince(drift, x, t0, t1, rtol=rtol, atol=atol)
        ref, ref_nfe = scipy_rk45(drift, x, t0, t1, rtol, atol)
    assert abs(nfe - ref_nfe) <= max(6, 0.05 * ref_nfe), (nfe, ref_nfe)
    scale = atol + rtol * ref.abs()
    assert ((ours.double() - ref).abs() / scale).max() < 1.0
    return nfe


def test_linear_ode_closed_form_and_scipy():
    a = torch.tensor([[-1.0, 2.0], [-2.0, -0.5]], dtype=torch.float64)
    x = torch.randn(50, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    drift = lambda x, t: x @ a.T.to(x.dtype)  # noqa: E731
    out, _ = rk45.dormand_prince(drift, x, 0.0, 1.5, rtol=1e-8, atol=1e-10)
    exact = x @ torch.linalg.matrix_exp(1.5 * a).T
    assert torch.allclose(out, exact, rtol=1e-6, atol=1e-8)
    assert_matches_scipy(drift, x, 0.0, 1.5)
    assert_matches_scipy(drift, x.float(), 1.5, 0.1, rtol=1e-5, atol=1e-5)  # backwards, float32 drift


def _method_and_model(name, **training):
    c = tiny_config(name, **training)
    torch.manual_seed(0)
    return c, methods.get_method(c), models.build(c, torch.device("cpu")).eval()


@pytest.mark.parametrize("name", ["poisson/toy2d", "pfgmpp/toy2d", "vp/toy2d", "ve/toy2d", "subvp/toy2d"])
def test_every_methods_probability_flow_matches_scipy(name):
    c, method, model = _method_and_model(name)
    flow = method.probability_flow(model)
    x = torch.randn(40, 2, generator=torch.Generator().manual_seed(1))
    assert_matches_scipy(flow.drift, x, flow.t_data, flow.t_prior)


@pytest.mark.parametrize("estimator", ["exact", "rademacher"])
def test_likelihood_augmented_ode_matches_scipy(estimator):
    c, method, model = _method_and_model("vp/toy2d")
    flow = method.probability_flow(model)
    x = torch.randn(30, 2, generator=torch.Generator().manual_seed(2))
    probe = likelihood.hutchinson_probe(x, estimator, torch.Generator().manual_seed(3)) \
        if estimator != "exact" else None
    f = likelihood.augmented_drift(flow.drift, x.shape, estimator, probe)
    state = torch.cat([x, x.new_zeros(len(x), 1)], 1)
    assert_matches_scipy(f, state, flow.t_data, flow.t_prior, rtol=1e-5, atol=1e-5)


def test_pfgm_exact_field_backward_ode_matches_scipy():
    charges = torch.tensor([[1.0, 0.0, 0.0], [-0.5, 0.8, 0.1], [0.2, -0.9, 0.3]], dtype=torch.float64)

    def field_fn(x, z):
        v = poisson.field_target(torch.cat([x, z[:, None]], 1), charges, 0.0)
        return v[:, :3], v[:, 3]

    drift = sampling.in_log_time(sampling.pfgm_drift(field_fn))
    x = poisson.sample_prior(200, 3, 40.0, 400.0, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert_matches_scipy(drift, x, math.log(40.0), math.log(1e-3))


@pytest.fixture
def no_scipy_solver(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("scipy.integrate.solve_ivp called: the sampler must not need it")
    monkeypatch.setattr(scipy.integrate, "solve_ivp", refuse)


@pytest.mark.parametrize("name", ["poisson/toy2d", "pfgmpp/toy2d", "vp/toy2d"])
def test_rk45_samples_without_scipy(no_scipy_solver, name):
    c, method, model = _method_and_model(name)
    with torch.no_grad():
        x, nfe = method.sample(model, 64, (2,), generator=torch.Generator().manual_seed(0), device="cpu",
                               method="ode", ode_solver="rk45")
    assert x.shape == (64, 2) and torch.isfinite(x).all() and nfe > 6


def test_exact_field_flow_lands_on_the_charges_without_scipy(no_scipy_solver):
    charges = torch.tensor([[1.0, 0.0, 0.0], [-0.5, 0.8, 0.1], [0.2, -0.9, 0.3], [-0.7, 0.1, -0.4]],
                           dtype=torch.float64)
    charges = charges - charges.mean(0)

    def field_fn(x, z):
        v = poisson.field_target(torch.cat([x, z[:, None]], 1), charges, 0.0)
        return v[:, :3], v[:, 3]

    x = poisson.sample_prior(1000, 3, 100.0, 5000.0, generator=torch.Generator().manual_seed(0),
                             dtype=torch.float64)
    out, nfe = sampling.backward_ode(field_fn, x, z_max=100.0, z_min=1e-5, solver="rk45")
    on_charge = (torch.cdist(out, charges).min(1).values < 1e-2).double().mean().item()
    assert on_charge >= 0.97, on_charge
    counts = np.bincount(torch.cdist(out, charges).argmin(1).numpy(), minlength=4)
    assert counts.min() > 150, counts  # every charge gets its share (250 expected)
