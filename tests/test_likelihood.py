"""Likelihoods through the probability-flow ODEs against closed forms.

- PFGM: charges on z = 0 seen from the plane z = z1 have the density of a mixture of multivariate
  Cauchy laws (the normalized flux), so the backward ODE driven by the exact field must reproduce it.
- Score SDEs: Gaussian data have Gaussian marginals, whose exact score drives the probability flow.
"""
import json
import math
import os

import numpy as np
import pytest
import scipy.integrate
import scipy.special
import torch
from torch import nn

from conftest import tiny_config
from configs.poisson import toy2d
from configs.vp import toy2d as vp_toy2d
from pfgm import config_checks, evaluate, methods, poisson, sampling, train
from pfgm.methods import sde_samplers
from pfgm.evaluation import likelihood
from pfgm.methods.base import ProbabilityFlow
from pfgm.methods.sde import VPSDE

torch.set_default_dtype(torch.float32)


# ---------------------------------------------------------------------------------------------------
# The point-charge prior's density


@pytest.mark.parametrize("n", [1, 2, 5, 12])
def test_prior_logp_is_the_density_of_the_radius_law(n):
    """Integrating p over spheres of radius r gives prior_radius_cdf (and 1 in total)."""
    z_max = 3.0
    sphere = 2 * math.pi ** (n / 2) / math.gamma(n / 2)  # area of S^{n-1}

    def radial(r):
        x = torch.zeros(1, n, dtype=torch.float64)
        x[0, 0] = r
        return math.exp(poisson.prior_logp(x, z_max).item()) * sphere * r ** (n - 1)

    for u in (0.5, 3.0, 20.0):
        mass, _ = scipy.integrate.quad(radial, 0, u, epsabs=1e-12, limit=200)
        assert mass == pytest.approx(float(poisson.prior_radius_cdf(u, n, z_max)), abs=1e-8)
    total, _ = scipy.integrate.quad(radial, 0, np.inf, epsabs=1e-12, limit=400)
    assert total == pytest.approx(1.0, abs=1e-6)


def test_prior_logp_is_finite_at_cifar_width():
    x = poisson.sample_prior(16, 3072, 40.0, 3000.0, generator=torch.Generator().manual_seed(0))
    lp = poisson.prior_logp(x, 40.0)
    ref = poisson.prior_logp(x.double(), 40.0)
    assert torch.isfinite(lp).all()
    torch.testing.assert_close(lp.double(), ref, rtol=1e-5, atol=0)


# ---------------------------------------------------------------------------------------------------
# Divergence estimators


def test_hutchinson_is_unbiased_and_exact_is_the_trace():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(4, 4, generator=g, dtype=torch.float64)
    x = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)

    def f():
        return x @ a.t() + 0.1 * torch.sin(x)

    exact = likelihood.divergence_exact(f(), x)
    trace = torch.diagonal(a).sum() + 0.1 * torch.cos(x.detach()).sum(1)
    torch.testing.assert_close(exact, trace)
    for kind in ("rademacher", "gaussian"):
        est = torch.stack([likelihood.divergence_hutchinson(f(), x, likelihood.hutchinson_probe(x, kind, g))
                           for _ in range(4000)])
        sem = est.std(0) / math.sqrt(len(est))
        assert ((est.mean(0) - trace).abs() < 5 * sem).all(), kind
        assert (est.std(0) > 0.1).all()  # off-diagonal terms make single probes noisy


def test_rademacher_is_exact_for_a_diagonal_jacobian():
    x = torch.randn(5, 3, 2, dtype=torch.float64, requires_grad=True)
    probe = likelihood.hutchinson_probe(x, "rademacher", torch.Generator().manual_seed(1))
    assert set(probe.unique().tolist()) == {-1.0, 1.0}
    torch.testing.assert_close(likelihood.divergence_hutchinson(torch.tanh(x) * 3, x, probe),
                               likelihood.divergence_exact(torch.tanh(x) * 3, x))


def test_unknown_estimator_is_refused():
    with pytest.raises(ValueError, match="estimator"):
        likelihood.augmented_drift(lambda x, t: x, (2, 2), "poisson")
    with pytest.raises(ValueError, match="probe"):
        likelihood.hutchinson_probe(torch.zeros(2), "uniform")


# ---------------------------------------------------------------------------------------------------
# PFGM: the exact field of a few charges


class ExactField(nn.Module):
    """A 'network' returning the normalized field pointing to the charges, -E/|E| (any positive
    rescaling leaves dx/dz unchanged)."""

    def __init__(self, charges):
        super().__init__()
        self.register_buffer("charges", charges)
        self.dummy = nn.Parameter(torch.zeros((), dtype=charges.dtype))

    def forward(self, x, z):
        e = poisson.empirical_field(torch.cat([x.flatten(1), z[:, None]], 1), self.charges)
        e = -e / e.norm(dim=1, keepdim=True)
        return e[:, :-1].reshape(x.shape), e[:, -1]


def mixture_logp(x, charges, z):
    """log of the normalized flux of the charges through the plane z: a mixture of Cauchy laws."""
    parts = torch.stack([poisson.prior_logp(x - c, z) for c in charges], 1)
    return torch.logsumexp(parts, 1) - math.log(len(charges))


def pfgm_config(z_min, z_max):
    c = toy2d.get_config()
    c.sampling.update(z_min=z_min, z_max=z_max, z_exp=0.0)
    return c


@pytest.fixture(scope="module")
def charges():
    return torch.tensor([[0.0, 0.0, 0.0], [1.0, -0.5, 0.3], [-0.7, 0.8, -1.2], [0.2, 1.5, 0.9]],
                        dtype=torch.float64)


def test_pfgm_ode_likelihood_matches_the_flux_density(charges):
    z1, z_max = 0.4, 50.0
    method = methods.get_method(pfgm_config(z1, z_max))
    model = ExactField(charges).double()
    flow = method.probability_flow(model)
    assert flow.t_data == pytest.approx(math.log(z1)) and flow.t_prior == pytest.approx(math.log(z_max))
    # the exact density on the z_max plane as the prior: only the ODE and the divergence are tested
    exact_flow = flow._replace(prior_logp=lambda y, z=z_max: mixture_logp(y, charges, z))
    x = torch.tensor([[0.1, 0.2, -0.1], [0.9, -0.4, 0.5], [-2.0, 0.5, -0.5], [3.0, 3.0, 3.0]],
                     dtype=torch.float64)
    want = mixture_logp(x, charges, z1)
    out = likelihood.ode_log_likelihood(exact_flow, x, rtol=1e-8, atol=1e-8, estimator="exact")
    torch.testing.assert_close(out.logp, want, rtol=0, atol=2e-5)
    assert out.nfe > 10
    # the point-charge prior is the z_max -> infinity limit of the flux; the error falls as 1/z_max
    errors = []
    for far in (50.0, 500.0):
        point_charge = methods.get_method(pfgm_config(z1, far)).probability_flow(model)
        approx = likelihood.ode_log_likelihood(point_charge, x, rtol=1e-8, atol=1e-8, estimator="exact")
        errors.append((approx.logp - want).abs().max().item())
    assert errors[0] < 1e-2 and errors[1] < 1e-3 and errors[1] < errors[0] / 5
    # Rademacher probes: unbiased, so their mean over repeats approaches the exact value
    g = torch.Generator().manual_seed(0)
    runs = torch.stack([likelihood.ode_log_likelihood(exact_flow, x, rtol=1e-6, atol=1e-6, generator=g).logp
                        for _ in range(30)])
    sem = runs.std(0) / math.sqrt(len(runs))
    assert ((runs.mean(0) - want).abs() < 5 * sem + 1e-4).all()


def test_pfgm_ode_likelihood_with_a_fixed_step_solver(charges):
    flow = methods.get_method(pfgm_config(0.4, 50.0)).probability_flow(ExactField(charges).double())
    flow = flow._replace(prior_logp=lambda x: mixture_logp(x, charges, 50.0))
    x = torch.tensor([[0.5, 0.0, 0.2]], dtype=torch.float64)
    want = mixture_logp(x, charges, 0.4)
    errors = [abs(likelihood.ode_log_likelihood(flow, x, solver="heun", steps=s, estimator="exact").logp.item()
                  - want.item()) for s in (10, 40)]
    assert errors[1] < 2e-3 and errors[1] < errors[0] / 4  # second order


# ---------------------------------------------------------------------------------------------------
# Score SDEs: Gaussian data, exact score


def gaussian_sde_flow(name):
    c = vp_toy2d.get_config()
    c.training.sde = name
    c.model.update(sigma_min=0.01, sigma_max=50.0, beta_min=0.1, beta_max=20.0)
    sde = methods.get_method(c)
    g = torch.Generator().manual_seed(3)
    mu = torch.tensor([0.5, -1.0, 0.3], dtype=torch.float64)
    a = torch.randn(3, 3, generator=g, dtype=torch.float64) * 0.5
    cov = a @ a.t() + 0.2 * torch.eye(3, dtype=torch.float64)

    def marginal(t):
        t = torch.as_tensor(t, dtype=torch.float64)
        coeff, std = sde.mean_coeff(t), sde.marginal_std(t)
        return coeff * mu, coeff ** 2 * cov + std ** 2 * torch.eye(3, dtype=torch.float64)

    def score(x, t):
        m, s = marginal(float(t) if not torch.is_tensor(t) or t.dim() == 0 else float(t[0]))
        return -torch.linalg.solve(s, (x - m).t()).t()

    flow = ProbabilityFlow(sde_samplers.probability_flow_drift(sde, score), sde.likelihood_eps, sde.T, sde.prior_logp)
    return flow, marginal, sde, score


class ExactScoreNet(nn.Module):
    """A 'network' answering with the exact score of Gaussian data, in the method's parameterization
    (VP / sub-VP: the noise, cond = 999 t; VE: the score itself, cond = sigma(t))."""

    def __init__(self, sde, score):
        super().__init__()
        self.sde, self.score = sde, score
        self.dummy = nn.Parameter(torch.zeros((), dtype=torch.float64))

    def forward(self, x, cond):
        if isinstance(self.sde, VPSDE):
            t = float(cond[0]) / 999
            return -self.score(x, t) * self.sde.marginal_std(torch.tensor(t, dtype=x.dtype))
        t = math.log(float(cond[0]) / self.sde.sigma_min) / math.log(self.sde.sigma_max / self.sde.sigma_min)
        return self.score(x, t)


@pytest.mark.parametrize("name", ["vpsde", "subvpsde", "vesde"])
def test_sde_ode_likelihood_of_gaussian_data(name):
    flow, marginal, sde, score = gaussian_sde_flow(name)
    # the method's own flow, driven by a network that answers the exact score, is the same ODE
    own = sde.probability_flow(ExactScoreNet(sde, score))
    assert (own.t_data, own.t_prior) == (flow.t_data, flow.t_prior) == (1e-5, 1.0)
    flow = own
    x = torch.tensor([[0.5, -1.0, 0.3], [1.5, 0.0, -0.5], [-1.0, -2.0, 1.0]], dtype=torch.float64)
    m, s = marginal(flow.t_data)
    want = torch.distributions.MultivariateNormal(m, s).log_prob(x)
    m_T, s_T = marginal(flow.t_prior)
    exact_prior = flow._replace(prior_logp=torch.distributions.MultivariateNormal(m_T, s_T).log_prob)
    out = likelihood.ode_log_likelihood(exact_prior, x, rtol=1e-8, atol=1e-8, estimator="exact")
    torch.testing.assert_close(out.logp, want, rtol=0, atol=1e-5)
    # with the method's own prior N(0, prior_std^2 I), which p_T only approximates (VE: sigma_max = 50)
    out = likelihood.ode_log_likelihood(flow, x, rtol=1e-8, atol=1e-8, estimator="exact")
    torch.testing.assert_close(out.logp, want, rtol=0, atol=5e-2)


# ---------------------------------------------------------------------------------------------------
# Bits per dimension


def test_bits_per_dim_of_the_uniform_density_is_eight():
    n = 12
    uniform_01 = torch.zeros(2, dtype=torch.float64)          # log-density 0 on [0, 1]^n
    uniform_pm1 = torch.full((2,), -n * math.log(2.0), dtype=torch.float64)  # on [-1, 1]^n
    torch.testing.assert_close(likelihood.bits_per_dim(uniform_01, n), torch.full((2,), 8.0, dtype=torch.float64))
    torch.testing.assert_close(likelihood.bits_per_dim(uniform_pm1, n, scale=2.0),
                               torch.full((2,), 8.0, dtype=torch.float64))
    # a density twice as high on half the cube saves one bit over the whole image: 1/n per dim
    torch.testing.assert_close(likelihood.bits_per_dim(uniform_01 + math.log(2.0), n),
                               torch.full((2,), 8.0 - 1.0 / n, dtype=torch.float64))


# ---------------------------------------------------------------------------------------------------
# The eval loop


def digits_config():
    c = tiny_config("poisson/digits_ddpmpp")
    c.eval.update(enable_loss=False, enable_sampling=False, enable_bpd=True, bpd_batch_size=5, bpd_num_samples=7,
                  bpd_num_repeats=2, bpd_solver="euler", bpd_steps=3)
    return c


@pytest.mark.e2e
def test_eval_writes_bits_per_dim(tmp_path):
    c = digits_config()
    work = str(tmp_path / "run")
    train.train(c, work)
    (report,) = evaluate.evaluate(c, work, "ev")
    saved = np.load(os.path.join(work, "ev", "ckpt_2", "likelihood_test.npz"))
    assert saved["bpd"].shape == (2, 7)          # repeats x images
    assert len(saved["nfe"]) == 2 * 2 and (saved["nfe"] == 3).all()  # 2 batches (5 + 2) per pass
    assert report["bpd"] == pytest.approx(saved["bpd"].mean())
    assert report["bpd_num_points"] == 7 and report["bpd_nfe"] == 3
    assert np.isfinite(saved["bpd"]).all() and report["bpd_stderr"] > 0
    # the two passes differ (fresh dequantization noise and probes) but not by much
    assert not np.allclose(saved["bpd"][0], saved["bpd"][1])
    assert abs(saved["bpd"][0].mean() - saved["bpd"][1].mean()) < 0.5
    assert json.load(open(os.path.join(work, "ev", "report_2.json")))["bpd"] == report["bpd"]

    c.eval.update(bpd_dataset="train", bpd_num_repeats=1, bpd_num_samples=0, bpd_batch_size=750)
    c.eval.update(bpd_solver="euler", bpd_steps=1)
    (train_report,) = evaluate.evaluate(c, work, "ev_train")
    assert train_report["bpd_num_points"] == 1500 and train_report["bpd_dataset"] == "train"


class SpyMethod:
    """A method whose flow is the identity (drift 0) and whose prior records what it is given, so
    likelihood_report's bookkeeping (dequantization, scaling, bits/dim) can be checked exactly."""

    def __init__(self, prior_logp):
        self.prior_logp, self.seen = prior_logp, []

    def probability_flow(self, model):
        def prior(x):
            self.seen.append(x.detach().clone())
            return self.prior_logp(x)
        return ProbabilityFlow(lambda x, t: 0.0 * x, 0.0, 1.0, prior)


class _Log:
    def info(self, *args):
        pass


@pytest.mark.parametrize("centered", [False, True])
def test_likelihood_report_dequantizes_scales_and_converts(tmp_path, centered):
    from pfgm import datasets

    c = digits_config()
    c.data.centered = centered
    c.eval.update(bpd_num_samples=9, bpd_batch_size=4, bpd_num_repeats=2, bpd_solver="euler", bpd_steps=1)
    data = datasets.get_dataset(c)
    images = next(data.split_batches("test", 9)).double()
    # a density in data space of prod_i 2 u_i on [0, 1]^64, u the dequantized pixel
    n = images[0].numel()

    def logp(x):
        u = (x.double() + 1) / 2 if centered else x.double()
        return torch.log(2 * u).flatten(1).sum(1) - (n * math.log(2.0) if centered else 0.0)

    spy = SpyMethod(logp)
    report = evaluate.likelihood_report(c, spy, None, data, torch.device("cpu"), str(tmp_path), _Log())
    seen = torch.cat(spy.seen).double().reshape(2, 9, *images.shape[1:])
    u = (seen + 1) / 2 if centered else seen
    offset = u * 256 - 255 * images  # each pixel inside its 1/256 bin: (255 x + U) / 256, U in [0, 1)
    assert (offset >= -1e-4).all() and (offset < 1 + 1e-4).all()
    assert offset.std() > 0.2 and not torch.allclose(seen[0], seen[1])  # fresh noise each pass
    want = -torch.log2(2 * u).flatten(2).sum(2) / n + 8  # bits/dim of the data-space density, 8-bit bins
    saved = np.load(tmp_path / "likelihood_test.npz")["bpd"]
    np.testing.assert_allclose(saved, want.numpy(), rtol=0, atol=1e-4)
    assert report["bpd"] == pytest.approx(float(want.mean()), abs=1e-4)


def test_likelihood_report_nll_of_points(tmp_path):
    c = toy2d.get_config()
    c.eval.update(bpd_num_samples=10, bpd_batch_size=4, bpd_solver="euler", bpd_steps=1)
    normal = torch.distributions.Normal(0.0, 1.0)
    spy = SpyMethod(lambda x: normal.log_prob(x.double()).sum(1))
    from pfgm import datasets

    report = evaluate.likelihood_report(c, spy, None, datasets.get_dataset(c), torch.device("cpu"), str(tmp_path),
                                        _Log())
    seen = torch.cat(spy.seen).double()
    assert seen.shape == (10, 2) and "bpd" not in report and report["nll_dataset"] == "held_out"
    assert report["nll"] == pytest.approx(float(-normal.log_prob(seen).sum(1).mean()), abs=1e-6)
    assert report["nll"] > math.log(2 * math.pi)  # -log N(x; 0, I) >= log(2 pi) in 2-D


def test_likelihood_report_keeps_going_past_non_finite_values(tmp_path):
    from pfgm import datasets

    c = digits_config()
    c.eval.update(bpd_num_samples=6, bpd_batch_size=6, bpd_num_repeats=1, bpd_solver="euler", bpd_steps=1)
    # a 'diverged' prior for the first two images of every batch, uniform density otherwise
    spy = SpyMethod(lambda x: torch.where(torch.arange(len(x)) < 2, float("nan"), -64 * math.log(2.0)))
    report = evaluate.likelihood_report(c, spy, None, datasets.get_dataset(c), torch.device("cpu"), str(tmp_path),
                                        _Log())
    assert report["bpd_nonfinite"] == 2 and report["bpd"] == pytest.approx(8.0)
    assert np.isnan(np.load(tmp_path / "likelihood_test.npz")["bpd"][0, :2]).all()


def test_points_nll_counts_the_scaler():
    """NLL of data-space points when the model lives in a scaled space: -log p_y - N log(scale)."""
    flow = ProbabilityFlow(lambda x, t: 0.0 * x, 0.0, 1.0,
                           lambda y: torch.distributions.Normal(0.0, 2.0).log_prob(y).sum(1))
    x = torch.randn(5, 3, dtype=torch.float64)
    nll, _ = likelihood.points_nll(flow, x, lambda v: 2 * v - 1, solver="euler", steps=1, estimator="exact")
    # y = 2x - 1 ~ N(0, 4) means x ~ N(1/2, 1)
    want = -torch.distributions.Normal(0.5, 1.0).log_prob(x).sum(1)
    torch.testing.assert_close(nll, want)


def test_pfgm_flow_applies_the_z_substitution_below_z_exp(charges):
    c = pfgm_config(0.01, 50.0)
    c.sampling.z_exp = 1.0
    c.training.gamma = 5.0
    model = ExactField(charges).double()
    flow = methods.get_method(c).probability_flow(model)
    plain = methods.get_method(pfgm_config(0.01, 50.0)).probability_flow(model)
    x = torch.tensor([[0.3, 0.1, 0.0]], dtype=torch.float64)
    for z, same in ((0.5, False), (2.0, True)):
        a, b = flow.drift(x, math.log(z)), plain.drift(x, math.log(z))
        assert torch.allclose(a, b) == same, z
    ref = sampling.pfgm_drift(methods.get_method(c).field_fn(model), z_exp=1.0, gamma=5.0)
    torch.testing.assert_close(flow.drift(x, math.log(0.5)), 0.5 * ref(x, 0.5))


@pytest.mark.e2e
def test_eval_nll_of_toy_points(tmp_path):
    c = tiny_config("poisson/toy2d", batch_size=64, small_batch_size=16, model=dict(nf=16, num_layers=2))
    c.eval.update(enable_loss=False, enable_sampling=False, enable_bpd=True, bpd_num_samples=20, batch_size=8,
                  bpd_rtol=1e-3, bpd_atol=1e-3)
    work = str(tmp_path / "run")
    train.train(c, work)
    (report,) = evaluate.evaluate(c, work, "ev")
    saved = np.load(os.path.join(work, "ev", "ckpt_2", "likelihood_held_out.npz"))
    assert saved["nll"].shape == (1, 20) and np.isfinite(saved["nll"]).all()
    assert "bpd" not in report and report["nll"] == pytest.approx(saved["nll"].mean())


@pytest.mark.parametrize("key,value", [("bpd_dataset", "valid"), ("bpd_num_repeats", 0), ("bpd_solver", "rk4"),
                                       ("bpd_estimator", "hutch"), ("bpd_rtol", -1.0), ("bpd_num_samples", -3)])
def test_bad_likelihood_config_names_the_key(key, value):
    c = digits_config()
    c.eval[key] = value
    with pytest.raises(config_checks.ConfigError, match=f"eval.{key}"):
        config_checks.validate(c, mode="eval")


def test_pfgm_likelihood_steps_in_log_z_not_z(charges):
    """The sampler's fixed steps are in z; the likelihood's stay in log z, where the divergence of the
    flow (~N / z in z-time near the data) is smooth: there log z is ~10x more accurate."""
    field = methods.get_method(pfgm_config(0.4, 50.0)).field_fn(ExactField(charges).double())
    prior = lambda x: mixture_logp(x, charges, 50.0)  # noqa: E731
    x = torch.tensor([[0.5, 0.0, 0.2]], dtype=torch.float64)
    want = mixture_logp(x, charges, 0.4).item()
    in_log_z = methods.get_method(pfgm_config(0.4, 50.0)).probability_flow(ExactField(charges).double())
    in_log_z = in_log_z._replace(prior_logp=prior)
    err_log = abs(likelihood.ode_log_likelihood(in_log_z, x, solver="heun", steps=40, estimator="exact").logp.item()
                  - want)
    # the same Heun steps taken in z on the same grid (uniform in log z)
    z_drift = likelihood.augmented_drift(sampling.pfgm_drift(field), x.shape, "exact")
    state = torch.cat([x, x.new_zeros(1, 1)], 1)
    end, _ = sampling.odeint(z_drift, state, 0.4, 50.0, solver="heun", steps=40, spacing="log")
    err_z = abs((prior(end[:, :-1]) + end[:, -1]).item() - want)
    assert err_log < 2e-3 and err_z > 5 * err_log, (err_log, err_z)


def test_likelihood_report_counts_a_diverging_batch_and_goes_on(tmp_path):
    """A NaN drift stops the solver of its batch (it never runs on with NaN); the report counts that
    batch's points as non-finite and evaluates the other batches."""
    from pfgm import datasets

    c = digits_config()
    c.eval.update(bpd_num_samples=6, bpd_batch_size=3, bpd_num_repeats=1, bpd_solver="rk45")
    calls = []

    class Diverging(SpyMethod):
        def probability_flow(self, model):
            def drift(x, t):
                calls.append(len(x))
                return x * (float("nan") if len(calls) == 1 else 0.0)
            return ProbabilityFlow(drift, 0.0, 1.0, lambda x: torch.full((len(x),), -64 * math.log(2.0)))

    report = evaluate.likelihood_report(c, Diverging(None), None, datasets.get_dataset(c), torch.device("cpu"),
                                        str(tmp_path), _Log())
    assert report["bpd_nonfinite"] == 3 and report["bpd"] == pytest.approx(8.0, abs=1e-6)
    assert calls[0] == 3 and len(calls) > 1
