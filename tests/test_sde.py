"""Closed-form tests of the score-SDE baselines (pfgm.methods.sde) and their samplers.

For Gaussian data N(mu, Sigma) every marginal is Gaussian, p_t = N(a(t) mu, C(t)) with
C(t) = a(t)^2 Sigma + std(t)^2 I (a = 1 for VE), so the exact score -C^{-1}(x - a mu) drives the
samplers and the DSM loss without any training.
"""
import importlib
import math

import numpy as np
import pytest
import scipy.integrate
import scipy.stats
import torch
from torch import nn

from pfgm import sampling
from pfgm.methods import sde_samplers
from pfgm.methods import get_method
from pfgm.methods.sde import VESDE
from pfgm import models

SDES = ["vesde", "vpsde", "subvpsde"]
CONFIG_DIR = {"vesde": "ve", "vpsde": "vp", "subvpsde": "subvp"}
MU = torch.tensor([0.5, -1.0], dtype=torch.float64)
SIGMA = torch.tensor([[1.0, 0.6], [0.6, 0.8]], dtype=torch.float64)
N_SAMPLES = 4000


def toy_config(sde):
    config = importlib.import_module(f"configs.{CONFIG_DIR[sde]}.toy2d").get_config()
    config.device = "cpu"
    return config


def make_method(sde):
    return get_method(toy_config(sde))


def marginal_cov(method, t):
    """C(t) of shape (B, 2, 2) for a (B,) tensor t."""
    a, s = method.mean_coeff(t), method.marginal_std(t)
    return a[:, None, None] ** 2 * SIGMA + s[:, None, None] ** 2 * torch.eye(2, dtype=t.dtype)


def exact_score(method):
    def score(x, t):
        t = torch.as_tensor(t, dtype=x.dtype).expand(x.shape[0])
        r = x - method.mean_coeff(t)[:, None] * MU
        return -torch.linalg.solve(marginal_cov(method, t), r.unsqueeze(-1)).squeeze(-1)
    return score


def sample_marginal(method, t, n, g):
    """n draws of p_t, float64."""
    tt = torch.full((1,), float(t), dtype=torch.float64)
    chol = torch.linalg.cholesky(marginal_cov(method, tt)[0])
    return method.mean_coeff(tt) * MU + torch.randn(n, 2, generator=g, dtype=torch.float64) @ chol.T


def sample_data(n, g):
    return MU + torch.randn(n, 2, generator=g, dtype=torch.float64) @ torch.linalg.cholesky(SIGMA).T


def assert_matches_data(x, mean_tol=0.06, cov_tol=0.08):
    assert torch.isfinite(x).all()
    mean_err = (x.mean(0) - MU).abs().max().item()
    cov_err = (torch.cov(x.T) - SIGMA).abs().max().item()
    assert mean_err < mean_tol and cov_err < cov_tol, (mean_err, cov_err)


class ExactNet(nn.Module):
    """A parameter-free 'network' whose output, read through the method's parameterization, is
    the exact score (optionally transformed by `perturb`)."""

    def __init__(self, method, perturb=None):
        super().__init__()
        self.method, self.score, self.perturb = method, exact_score(method), perturb

    def forward(self, x, cond):
        m = self.method
        if isinstance(m, VESDE):
            t = torch.log(cond / m.sigma_min) / math.log(m.sigma_max / m.sigma_min)
        else:
            t = cond / 999
        s = self.score(x, t)
        if self.perturb is not None:
            s = self.perturb(s)
        return s / m.output_to_score(torch.ones_like(x), t)   # score = k(t) * out, so out = score / k


# ---- the SDEs in closed form ----------------------------------------------------------------------

@pytest.mark.parametrize("sde", SDES)
def test_marginal_prob_matches_moment_odes(sde):
    """mean' = f m and var' = 2 f var + g^2 (f the linear drift coefficient), integrated by scipy."""
    m = make_method(sde)
    one = torch.ones(1, 1, dtype=torch.float64)

    def rhs(t, y):
        f = m.sde(one, t)[0].item()          # drift at x = 1 is the coefficient f(t)
        g = m.sde(one, t)[1].item()
        return [f * y[0], 2 * f * y[1] + g * g]

    var0 = m.sigma_min ** 2 if sde == "vesde" else 0.0   # VE's kernel starts at sigma_min
    ts = [1e-3, 0.05, 0.3, 0.7, 1.0]
    sol = scipy.integrate.solve_ivp(rhs, (0.0, 1.0), [1.0, var0], t_eval=ts, rtol=1e-10, atol=1e-12)
    mean, std = m.marginal_prob(one.expand(len(ts), 1), torch.tensor(ts, dtype=torch.float64))
    np.testing.assert_allclose(mean[:, 0].numpy(), sol.y[0], rtol=1e-6)
    np.testing.assert_allclose(std.numpy(), np.sqrt(sol.y[1]), rtol=1e-5)


def test_closed_form_coefficients():
    ve, vp, sub = (make_method(s) for s in SDES)
    t = torch.tensor([0.0, 0.5, 1.0], dtype=torch.float64)
    np.testing.assert_allclose(ve.marginal_std(t).numpy(), [0.01, math.sqrt(0.01 * 6.0), 6.0], rtol=1e-12)
    a = torch.exp(-0.25 * t ** 2 * 19.9 - 0.05 * t)
    np.testing.assert_allclose(vp.mean_coeff(t).numpy(), a.numpy(), rtol=1e-12)
    np.testing.assert_allclose(vp.marginal_std(t).numpy(), torch.sqrt(1 - a ** 2).numpy(), rtol=1e-12)
    np.testing.assert_allclose(sub.marginal_std(t).numpy(), (1 - a ** 2).numpy(), rtol=1e-12)
    # The network's conditioning input: sigma(t) for VE, 999 t for VP / sub-VP.
    np.testing.assert_allclose(ve.network_cond(t).numpy(), ve.marginal_std(t).numpy())
    np.testing.assert_allclose(vp.network_cond(t).numpy(), 999 * t.numpy())
    # The network's output: eps-hat for VP / sub-VP (score = -out / std); for VE the score, divided
    # by sigma by the method for the MLP with scale_by_sigma (the toy config).
    t = t[1:]
    ones = torch.ones(2, 1, dtype=torch.float64)
    for m in (vp, sub):
        np.testing.assert_allclose(m.output_to_score(ones, t)[:, 0].numpy(), (-1 / m.marginal_std(t)).numpy())
    np.testing.assert_allclose(ve.output_to_score(ones, t)[:, 0].numpy(), (1 / ve.sigma(t)).numpy())
    # The SMLD discretization telescopes: sum_i G_i^2 = sigma_max^2.
    N = 50
    x = torch.zeros(N, 2, dtype=torch.float64)
    _, G = ve.discretize(x, torch.arange(N, dtype=torch.float64) / (N - 1), N)
    assert abs((G ** 2).sum().item() - 36.0) < 1e-9


@pytest.mark.parametrize("sde", SDES)
def test_prior_logp_and_sample(sde):
    m = make_method(sde)
    s = m.prior_std()
    # A normalized density: integrate exp(logp) over a 2-D grid.
    u = torch.linspace(-10 * s, 10 * s, 801, dtype=torch.float64)
    grid = torch.stack(torch.meshgrid(u, u, indexing="ij"), -1).reshape(-1, 2)
    mass = m.prior_logp(grid).exp().sum().item() * (u[1] - u[0]).item() ** 2
    assert abs(mass - 1) < 1e-6
    # Matches scipy on image-shaped input (all non-batch dims summed).
    z = torch.randn(5, 1, 2, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) * s
    ref = scipy.stats.multivariate_normal(np.zeros(6), s * s * np.eye(6)).logpdf(z.reshape(5, -1).numpy())
    np.testing.assert_allclose(m.prior_logp(z).numpy(), ref, rtol=1e-10)
    x = m.prior_sample(20000, (2,), "cpu", torch.Generator().manual_seed(1))
    assert x.shape == (20000, 2) and abs(x.std().item() / s - 1) < 0.02


# ---- samplers driven by the exact score ---------------------------------------------------------

PC_CASES = [("reverse_diffusion", "none", 500), ("euler_maruyama", "none", 300),
            ("reverse_diffusion", "langevin", 200), ("euler_maruyama", "langevin", 200)]


@pytest.mark.parametrize("sde", SDES)
@pytest.mark.parametrize("predictor,corrector,N", PC_CASES)
def test_pc_sampler_exact_score(sde, predictor, corrector, N):
    m = make_method(sde)
    g = torch.Generator().manual_seed(0)
    x = sample_marginal(m, 1.0, N_SAMPLES, g)   # start from p_T itself: tests the sampler, not the prior
    out, nfe = sde_samplers.pc_sampler(m, exact_score(m), x, predictor=predictor, corrector=corrector,
                                   snr=0.16, n_steps_each=1, N=N, eps=m.config.sampling.eps, generator=g)
    assert nfe == N * (1 + (corrector != "none"))
    assert_matches_data(out)


def exact_flow(m, x1, t):
    """The probability-flow map for Gaussian data: in Sigma's eigenbasis each coordinate of
    x - a mu scales by sqrt(c(t) / c(1)), c = a^2 lambda + std^2 (all C(t) commute)."""
    lam, vec = torch.linalg.eigh(SIGMA)
    tt = torch.tensor([t, 1.0], dtype=torch.float64)
    a, s = m.mean_coeff(tt), m.marginal_std(tt)
    c = a[:, None] ** 2 * lam + s[:, None] ** 2
    y = ((x1 - a[1] * MU) @ vec) * torch.sqrt(c[0] / c[1])
    return y @ vec.T + a[0] * MU


@pytest.mark.parametrize("sde", SDES)
@pytest.mark.parametrize("solver,steps,tol", [("rk45", None, 2e-3), ("heun", 100, 5e-3)])
def test_probability_flow_exact_score(sde, solver, steps, tol):
    m = make_method(sde)
    g = torch.Generator().manual_seed(0)
    eps = m.config.sampling.eps
    x1 = sample_marginal(m, 1.0, N_SAMPLES, g)
    drift = sde_samplers.probability_flow_drift(m, exact_score(m))
    x, nfe = sampling.odeint(drift, x1, 1.0, eps, solver=solver, steps=steps or 1, rtol=1e-5, atol=1e-5)
    if solver == "heun":
        assert nfe == 2 * steps
    # Pathwise against the exact flow, then in distribution after the final denoising step.
    assert (x - exact_flow(m, x1, eps)).abs().max().item() < tol
    assert_matches_data(sde_samplers.denoise(m, exact_score(m), x, eps, N=m.N))


def test_langevin_dynamics_samples_gaussian():
    prec = torch.linalg.inv(SIGMA)
    x0 = torch.full((N_SAMPLES, 2), 3.0, dtype=torch.float64)   # far from the mode
    x = sde_samplers.langevin_dynamics(lambda y: -(y - MU) @ prec, x0, 0.01, 1500,
                                   generator=torch.Generator().manual_seed(0))
    assert_matches_data(x)


@pytest.mark.parametrize("sde", ["vesde", "vpsde"])
def test_langevin_corrector_step_size(sde):
    """One step: x + eps c + sqrt(2 eps) z with eps = 2 alpha_i (snr mean||z|| / mean||c||)^2."""
    m, N, t, snr = make_method(sde), 100, 0.5, 0.2
    x = torch.zeros(64, 2, dtype=torch.float64)
    c = torch.tensor([3.0, -4.0], dtype=torch.float64)
    out = sde_samplers.langevin_corrector(m, lambda y, s: c.expand_as(y), x, t, N=N, snr=snr, n_steps=1,
                                      generator=torch.Generator().manual_seed(0))
    z = torch.randn(x.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    alpha = 1.0 if sde == "vesde" else 1 - (0.1 + (19.9 / 99) * math.floor(t * 99)) / N
    step = 2 * alpha * (snr * z.norm(dim=1).mean() / 5.0) ** 2
    torch.testing.assert_close(out, step * c + torch.sqrt(2 * step) * z)


def test_pc_probability_flow_is_deterministic():
    m = make_method("vpsde")
    x = sample_marginal(m, 1.0, 500, torch.Generator().manual_seed(0))
    runs = [sde_samplers.pc_sampler(m, exact_score(m), x, predictor="euler_maruyama", corrector="none",
                                snr=0.16, n_steps_each=1, N=50, eps=1e-3, probability_flow=True,
                                generator=torch.Generator().manual_seed(s))[0] for s in (1, 2)]
    assert torch.equal(runs[0], runs[1])


# ---- the DSM loss ----------------------------------------------------------------------------------

def min_dsm_loss(m):
    """E_t[1 - std^2 tr(C^{-1}) / d]: the reduce_mean DSM loss at the true score, t ~ U(1e-5, 1)."""
    def integrand(t):
        tt = torch.tensor([t], dtype=torch.float64)
        c_inv = torch.linalg.inv(marginal_cov(m, tt)[0])
        return 1 - m.marginal_std(tt).item() ** 2 * torch.trace(c_inv).item() / 2
    return scipy.integrate.quad(integrand, m.train_eps, 1, limit=200)[0] / (1 - m.train_eps)


@pytest.mark.parametrize("sde", SDES)
def test_dsm_loss_minimized_by_true_score(sde):
    m = make_method(sde)
    x0 = sample_data(100000, torch.Generator().manual_seed(0))

    def loss(perturb=None):
        return m.loss(ExactNet(m, perturb), x0, generator=torch.Generator().manual_seed(1)).item()

    best = loss()
    assert abs(best - min_dsm_loss(m)) < 0.01
    assert best < loss(lambda s: 1.1 * s) and best < loss(lambda s: 0.9 * s)
    assert best < loss(lambda s: s + 0.05)

    m.config.training.likelihood_weighting = True
    best = loss()
    assert math.isfinite(best)
    assert best < loss(lambda s: 1.05 * s) and best < loss(lambda s: 0.95 * s)


@pytest.mark.parametrize("sde", SDES)
def test_dsm_loss_formula(sde):
    """The loss of an arbitrary network, recomputed by hand (draws: t first, then z) for the three
    variants: reduce_mean, 0.5 * sum, likelihood weighting g(t)^2 ||s + z / std||^2."""
    m = make_method(sde)
    x0 = torch.randn(16, 1, 2, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    net = nn.Module()
    net.forward = lambda x, cond: 0.3 * x + torch.log(cond)[:, None, None, None]
    g = torch.Generator().manual_seed(1)
    t = torch.rand(16, generator=g, dtype=torch.float64) * (1 - 1e-5) + 1e-5
    z = torch.randn(x0.shape, generator=g, dtype=torch.float64)
    std = m.marginal_std(t)[:, None, None, None]
    xt = m.mean_coeff(t)[:, None, None, None] * x0 + std * z
    score = m.output_to_score(net(xt, m.network_cond(t)), t)
    g2 = m.sde(x0, t)[1][:, None, None, None] ** 2
    want = {"mean": ((score * std + z) ** 2).mean((1, 2, 3)).mean(),
            "sum": 0.5 * ((score * std + z) ** 2).sum((1, 2, 3)).mean(),
            "weighted": (g2 * (score + z / std) ** 2).mean((1, 2, 3)).mean()}
    for variant, value in want.items():
        m.config.training.reduce_mean = variant != "sum"
        m.config.training.likelihood_weighting = variant == "weighted"
        got = m.loss(net, x0, generator=torch.Generator().manual_seed(1))
        torch.testing.assert_close(got, value, msg=variant)


# ---- configs, the MLP and Method.sample -----------------------------------------------------------

def test_config_checks():
    config = toy_config("vesde")
    config.training.continuous = False
    with pytest.raises(ValueError, match="training.continuous"):
        get_method(config)
    config = toy_config("vpsde")
    config.sampling.method = "pc"
    config.sampling.predictor = "ancestral_sampling"
    with pytest.raises(ValueError, match="sampling.predictor"):
        get_method(config)
    m = make_method("vpsde")
    with pytest.raises(ValueError, match="unknown sampling options"):
        m.sample(ExactNet(m), 4, (2,), bogus=1)
    with pytest.raises(ValueError, match="needs N > beta_max"):
        m.sample(ExactNet(m), 4, (2,), method="pc", predictor="reverse_diffusion", N=10)


@pytest.mark.parametrize("sde", SDES)
def test_method_sample_with_exact_network(sde):
    """Method.sample wires the parameterization, solver and denoising step together."""
    m = make_method(sde)
    g = torch.Generator().manual_seed(0)
    x = sample_marginal(m, 1.0, N_SAMPLES, g)
    out, nfe = m.sample(ExactNet(m), N_SAMPLES, (2,), x=x)
    assert 0 < nfe < 200
    assert_matches_data(out)
    # noise_removal is one noiseless reverse-diffusion step at eps: x - f + G^2 score, 1 more NFE.
    raw, raw_nfe = m.sample(ExactNet(m), N_SAMPLES, (2,), x=x, noise_removal=False)
    f, G = m.discretize(raw, m.config.sampling.eps, m.N)
    torch.testing.assert_close(out, raw - f + G[:, None] ** 2 * exact_score(m)(raw, m.config.sampling.eps))
    assert nfe == raw_nfe + 1
    out, nfe = m.sample(ExactNet(m), N_SAMPLES, (2,), x=x, method="pc", predictor="reverse_diffusion",
                        corrector="langevin", N=200, generator=g)
    assert nfe == 400
    assert_matches_data(out)


@pytest.mark.parametrize("sde", SDES)
def test_toy_configs_train_and_sample(sde):
    torch.manual_seed(0)
    config = toy_config(sde)
    config.model.nf, config.model.num_layers = 32, 2    # small and fast; the wiring is what is tested
    model = models.build(config)
    m = get_method(config)
    assert isinstance(m, VESDE) == m.config.model.scale_by_sigma
    if sde == "vesde":
        assert m.divide_by_sigma
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(0)
    for _ in range(3):
        loss = m.loss(model, sample_data(64, g).float(), generator=g)
        assert torch.isfinite(loss)
        opt.zero_grad()
        loss.backward()
        opt.step()

    n, N = 32, 5
    cases = [(dict(ode_solver="euler", N=N, noise_removal=False), N),
             (dict(ode_solver="euler", N=N), N + 1),
             (dict(ode_solver="heun", N=N), 2 * N + 1),
             (dict(ode_solver="rk45", rtol=1e-3, atol=1e-3), None),
             # The DDPM discretization (VP reverse diffusion, VP Langevin step) needs N > beta_max.
             (dict(method="pc", N=25), 25 * (1 + (config.sampling.corrector != "none"))),
             (dict(method="pc", predictor="reverse_diffusion", corrector="ald", n_steps_each=2, N=25), 75)]
    for overrides, want in cases:
        x, nfe = m.sample(model, n, (2,), generator=torch.Generator().manual_seed(0), **overrides)
        assert x.shape == (n, 2) and x.dtype == torch.float32 and torch.isfinite(x).all(), overrides
        assert nfe == want if want is not None else nfe > 0, (overrides, nfe)
