"""PFGM++ against closed forms: the kernel's radial law, the exact denoiser of a few charges carrying the
prior onto them, D = 1 equal to PFGM's field ODE, large D equal to the VE probability flow, and the
likelihood of the charges' kernel mixture."""
import math

import numpy as np
import pytest
import scipy.stats
import torch
from torch import nn

from conftest import shipped_config, tiny_config
from pfgm import methods, pfgmpp, poisson, sampling, train
from pfgm.evaluation import likelihood
from pfgm.methods import sde_samplers

INF = math.inf


# ---- the kernel ---------------------------------------------------------------------------------

@pytest.mark.parametrize("aug_dim", [1, 8, 2048, INF])
@pytest.mark.parametrize("data_dim", [3, 64])
def test_kernel_radii_follow_the_closed_form_radial_law(data_dim, aug_dim):
    sigma = torch.full((4000,), 0.7, dtype=torch.float64)
    g = torch.Generator().manual_seed(1)
    noise = pfgmpp.perturbation((4000, data_dim), sigma, aug_dim, generator=g, dtype=torch.float64)
    radii = noise.norm(dim=1).numpy()
    p = scipy.stats.kstest(radii, lambda r: pfgmpp.radius_cdf(r, data_dim, aug_dim, 0.7)).pvalue
    assert p > 1e-3, p
    # the law of another D is told apart: the test has the power to see a wrong kernel
    other = {1: 8, 8: 1, 2048: 8, INF: 4}[aug_dim]
    assert scipy.stats.kstest(radii, lambda r: pfgmpp.radius_cdf(r, data_dim, other, 0.7)).pvalue < 1e-3
    # directions are uniform: the mean unit vector is ~0 (its norm ~ 1/sqrt(n))
    assert (noise / noise.norm(dim=1, keepdim=True)).mean(0).norm() < 4 / math.sqrt(4000)


def test_d1_kernel_is_pfgms_prior_and_large_d_is_gaussian():
    r = np.linspace(0.01, 30, 50)
    # D = 1, r = z: the PFGM prior's law on the plane z (its flux through the plane)
    np.testing.assert_allclose(pfgmpp.radius_cdf(r, 64, 1, 5.0), poisson.prior_radius_cdf(r, 64, 5.0), atol=1e-12)
    x = torch.randn(6, 64, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) * 5
    torch.testing.assert_close(pfgmpp.prior_logp(x, 5.0, 1), poisson.prior_logp(x, 5.0))
    # D -> inf: the kernel tends to N(y, sigma^2 I), both in law and in density
    np.testing.assert_allclose(pfgmpp.radius_cdf(r, 64, 10**8, 2.0), pfgmpp.radius_cdf(r, 64, INF, 2.0), atol=1e-4)
    torch.testing.assert_close(pfgmpp.prior_logp(x, 2.0, 10**8), pfgmpp.prior_logp(x, 2.0, INF), rtol=0, atol=1e-3)


@pytest.mark.parametrize("aug_dim", [1, 8, INF])
def test_kernel_density_integrates_to_one(aug_dim):
    """The closed-form normalization: the density's radial integral over R^3 is 1."""
    sigma, n = 0.5, 3
    r = np.concatenate([np.linspace(0, 10, 20001), np.geomspace(10, 1e7, 20001)[1:]])
    x = torch.zeros(len(r), n, dtype=torch.float64)
    x[:, 0] = torch.as_tensor(r)
    density = pfgmpp.log_kernel(x, torch.zeros_like(x), sigma, aug_dim).exp().numpy()
    total = np.trapezoid(density * 4 * np.pi * r**2, r)
    assert total == pytest.approx(1.0, abs=2e-3 if aug_dim == 1 else 1e-5)


# ---- flows driven by the exact denoiser of a few charges ------------------------------------------

CHARGES = torch.tensor([[1.0, 0.0, 0.0, 0.5], [-0.5, 0.8, 0.1, -0.3], [0.2, -0.9, 0.3, 0.1],
                        [-0.7, 0.1, -0.4, 0.9]], dtype=torch.float64)


def exact_denoiser(charges, aug_dim):
    return lambda x, sigma: pfgmpp.posterior_mean(x, charges, sigma, aug_dim)


class ExactDenoiserNet(nn.Module):
    """A 'network' F such that the method's preconditioned denoiser c_skip x + c_out F(c_in x, sigma) is
    the exact posterior mean: it exercises the method's whole path (preconditioning included)."""

    def __init__(self, charges, aug_dim, sigma_data):
        super().__init__()
        self.register_buffer("charges", charges)
        self.aug_dim, self.sigma_data = aug_dim, sigma_data
        self.dummy = nn.Parameter(torch.zeros((), dtype=charges.dtype))

    def forward(self, u, sigma):
        c_skip, c_out, c_in, _ = (sampling.per_sample(c, u) for c in pfgmpp.preconditioning(sigma, self.sigma_data))
        x = u / c_in
        return (pfgmpp.posterior_mean(x, self.charges, sigma, self.aug_dim) - c_skip * x) / c_out


def pfgmpp_method(aug_dim, sigma_max=40.0, sigma_min=1e-3, **sampling_keys):
    c = shipped_config("pfgmpp/toy2d")
    c.data.shape = (CHARGES.shape[1],)
    c.training.aug_dim = float(aug_dim)
    c.sampling.update(sigma_max=sigma_max, sigma_min=sigma_min, **sampling_keys)
    return methods.get_method(c)


@pytest.mark.parametrize("aug_dim", [1, 8, 128])
def test_exact_denoiser_carries_the_prior_onto_every_charge(aug_dim):
    method = pfgmpp_method(aug_dim, ode_solver="heun", N=60)
    model = ExactDenoiserNet(CHARGES, aug_dim, method.sigma_data)
    g = torch.Generator().manual_seed(0)
    x0 = method.prior_sample(400, (4,), "cpu", g).double()
    out, nfe = method.sample(model, 400, (4,), x=x0)
    assert nfe == 2 * 60 - 1
    dist, which = torch.cdist(out, CHARGES).min(1)
    assert (dist < 1e-2).float().mean() >= 0.97
    assert set(which.tolist()) == {0, 1, 2, 3}
    # the prior is far out: the samples did travel
    assert x0.norm(dim=1).median() > 10 * CHARGES.norm(dim=1).max()


def test_d1_flow_is_pfgms_backward_ode():
    """With D = 1 and r = z, dx/dsigma = (x - E[y|x]) / sigma is PFGM's dx/dz = E_x / E_z."""
    charges = CHARGES
    g = torch.Generator().manual_seed(3)
    x0 = pfgmpp.sample_prior(16, (4,), 1, 30.0, generator=g, dtype=torch.float64)
    drift = pfgmpp.ode_drift(exact_denoiser(charges, 1))
    ours, _ = sampling.solve(drift, x0, [30.0, 0.05], solver="rk45", rtol=1e-9, atol=1e-9, log_time=True)

    def field_fn(x, z):
        v = poisson.field_target(torch.cat([x, z[:, None]], 1), charges, 0.0)
        return v[:, :-1], v[:, -1]

    pfgm, _ = sampling.backward_ode(field_fn, x0, z_max=30.0, z_min=0.05, solver="rk45", rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(ours, pfgm, rtol=0, atol=1e-6)
    assert (ours - x0).norm(dim=1).min() > 1.0


def test_large_d_flow_is_the_ve_probability_flow():
    """D = inf is the VE probability-flow ODE of the charges (exact score); D = 10^6 is close to it."""
    c = shipped_config("ve/toy2d")
    c.data.shape = (4,)
    c.model.update(sigma_min=0.05, sigma_max=20.0)
    ve = methods.get_method(c)

    def score(x, t):
        s = ve.sigma(torch.as_tensor(t, dtype=x.dtype))
        return (pfgmpp.posterior_mean(x, CHARGES, s, INF) - x) / s**2

    g = torch.Generator().manual_seed(4)
    x0 = 20.0 * torch.randn(16, 4, generator=g, dtype=torch.float64)
    tol = dict(rtol=1e-9, atol=1e-9)
    want, _ = sampling.odeint(sde_samplers.probability_flow_drift(ve, score), x0, 1.0, 0.0, solver="rk45", **tol)
    flows = {d: sampling.solve(pfgmpp.ode_drift(exact_denoiser(CHARGES, d)), x0, [20.0, 0.05], solver="rk45",
                               log_time=True, **tol)[0] for d in (INF, 10**6, 8)}
    torch.testing.assert_close(flows[INF], want, rtol=0, atol=1e-6)
    gap = (flows[10**6] - want).norm(dim=1).max()
    assert gap < 1e-3
    assert (flows[8] - want).norm(dim=1).max() > 100 * gap   # a small D is a different flow


@pytest.mark.parametrize("aug_dim", [1, 8, INF])
def test_likelihood_of_the_kernel_mixture(aug_dim):
    """The probability flow driven by the exact denoiser carries the charges' kernel mixture at sigma_min
    to the one at sigma_max: with that as the prior the ODE likelihood is the closed form."""
    method = pfgmpp_method(aug_dim, sigma_max=30.0, sigma_min=0.3)
    flow = method.probability_flow(ExactDenoiserNet(CHARGES, aug_dim, method.sigma_data))
    assert flow.t_data == pytest.approx(math.log(0.3)) and flow.t_prior == pytest.approx(math.log(30.0))
    exact = flow._replace(prior_logp=lambda y: pfgmpp.mixture_logp(y, CHARGES, 30.0, aug_dim))
    g = torch.Generator().manual_seed(5)
    x = CHARGES[torch.arange(6) % 4] + pfgmpp.perturbation((6, 4), torch.full((6,), 0.3, dtype=torch.float64),
                                                           aug_dim, generator=g, dtype=torch.float64)
    out = likelihood.ode_log_likelihood(exact, x, rtol=1e-8, atol=1e-8, estimator="exact")
    torch.testing.assert_close(out.logp, pfgmpp.mixture_logp(x, CHARGES, 0.3, aug_dim), rtol=0, atol=1e-4)
    # and the method's own prior (a point charge at the origin) is close when sigma_max is large
    approx = likelihood.ode_log_likelihood(flow, x, rtol=1e-8, atol=1e-8, estimator="exact")
    assert (approx.logp - out.logp).abs().max() < 0.05


# ---- the schedule, the sampler's NFE, training ----------------------------------------------------

def test_edm_schedule_and_nfe():
    s = pfgmpp.edm_sigmas(18, 0.002, 80.0)
    assert len(s) == 19 and s[0] == pytest.approx(80.0) and s[17] == pytest.approx(0.002) and s[18] == 0.0
    assert all(a > b for a, b in zip(s, s[1:]))
    method = pfgmpp_method(128, sigma_max=80.0, sigma_min=0.002)
    model = ExactDenoiserNet(CHARGES, 128, method.sigma_data)
    for solver, n, nfe in (("heun", 18, 35), ("euler", 10, 10)):
        _, got = method.sample(model, 3, (4,), ode_solver=solver, N=n, generator=torch.Generator().manual_seed(0))
        assert got == nfe
    _, got = method.sample(model, 3, (4,), ode_solver="rk45", generator=torch.Generator().manual_seed(0))
    assert got > 10


@pytest.mark.parametrize("aug_dim", [1, 8, INF])
def test_stf_target_is_the_batch_posterior_mean(aug_dim):
    """training.stf: the target is E[y | x, sigma] over the batch's charges, at the sigma the point was
    perturbed with. The exact denoiser of those charges then has zero loss (a sigma or r mixed up between
    the perturbation, the target and the preconditioning would not), and a positive one without stf."""
    c = shipped_config("pfgmpp/toy2d")
    c.data.shape = (4,)
    c.training.update(aug_dim=float(aug_dim), stf=True, batch_size=4, small_batch_size=4)
    method = methods.get_method(c)
    model = ExactDenoiserNet(CHARGES, aug_dim, method.sigma_data)
    g = torch.Generator().manual_seed(7)
    assert method.loss(model, CHARGES, generator=g).item() < 1e-10
    c.training.stf = False
    assert methods.get_method(c).loss(model, CHARGES, generator=torch.Generator().manual_seed(7)).item() > 1e-3


def test_preconditioning_gives_unit_scale_inputs_and_targets():
    sigma = torch.tensor([0.002, 0.5, 80.0], dtype=torch.float64)
    c_skip, c_out, c_in, c_noise = pfgmpp.preconditioning(sigma, 0.5)
    # EDM: Var(c_in (y + n)) = 1 and the effective target (y - c_skip x) / c_out has unit variance
    torch.testing.assert_close(c_in**2 * (sigma**2 + 0.25), torch.ones(3, dtype=torch.float64))
    torch.testing.assert_close((c_skip**2 * sigma**2 + (1 - c_skip) ** 2 * 0.25) / c_out**2, torch.ones(3, dtype=torch.float64))
    torch.testing.assert_close(c_noise, sigma.log() / 4)


@pytest.mark.e2e
@pytest.mark.parametrize("aug_dim", [1.0, 128.0, INF])
def test_training_learns_the_denoiser_of_a_single_point(tmp_path, aug_dim):
    """With one data point the exact denoiser is that point at every sigma and the weighted loss can reach
    0; from an untrained network's ~1 (the preconditioning's unit scale) it must fall far, for any D."""
    path = tmp_path / "one.npy"
    np.save(path, np.tile([[0.5, -0.3]], (64, 1)))
    c = tiny_config("pfgmpp/toy2d", 400, batch_size=64, small_batch_size=64, model=dict(nf=64, num_layers=2))
    c.data.update(dataset="points", path=str(path))
    c.training.aug_dim = aug_dim
    c.optim.warmup = 10
    t = train.Trainer(c, str(tmp_path / "never-written"))
    losses = [t.train_step(t.global_batch(k))[0] for k in range(400)]
    assert np.isfinite(losses).all()
    # medians: with D = 1 in 2-D the kernel is heavy-tailed and single steps can be large
    assert np.median(losses[:10]) > 0.5 and np.median(losses[-50:]) < 0.2 * np.median(losses[:10])


def test_bad_aug_dim_is_refused_by_name():
    from pfgm import config_checks
    for bad in (0.0, 2.5, -1.0, float("nan")):
        c = shipped_config("pfgmpp/toy2d")
        c.training.aug_dim = bad
        with pytest.raises(config_checks.ConfigError, match="aug_dim"):
            config_checks.validate(c)


def test_kernel_is_drawn_on_the_device_without_host_reads_up_to_the_threshold():
    from pfgm.host_reads import HostReads

    sigma = torch.full((64,), 0.5, dtype=torch.float64)
    with HostReads() as reads:
        pfgmpp.perturbation((64, 3, 4, 4), sigma, 128, generator=torch.Generator().manual_seed(0))
        pfgmpp.perturbation((64, 3, 4, 4), sigma, INF, generator=torch.Generator().manual_seed(0))
    assert reads.total == 0 and reads.uploads == 0
    # beyond it, scipy's inverse CDF: the same law (the radial law's KS test)
    big = pfgmpp.DEVICE_DRAW_MAX_D * 2
    noise = pfgmpp.perturbation((3000, 16), torch.full((3000,), 0.7, dtype=torch.float64), big,
                                generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    p = scipy.stats.kstest(noise.norm(dim=1).numpy(), lambda r: pfgmpp.radius_cdf(r, 16, big, 0.7)).pvalue
    assert p > 1e-3, p


def test_beta_clip_bounds_the_kernel_radius():
    sigma, d, n, clip = 0.5, 8, 64, 0.4
    noise = pfgmpp.perturbation((2000, n), torch.full((2000,), sigma, dtype=torch.float64), d, beta_clip=clip,
                                generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    ratio = noise.norm(dim=1) / (sigma * math.sqrt(d))  # sqrt(B / (1 - B)), B clipped to [clip, 1 - clip]
    lo, hi = math.sqrt(clip / (1 - clip)), math.sqrt((1 - clip) / clip)
    assert ratio.min() >= lo - 1e-9 and ratio.max() <= hi + 1e-9
    assert (ratio > hi - 1e-9).float().mean() > 0.5  # B ~ Beta(32, 4) sits mostly above 1 - clip


@pytest.mark.parametrize("key,value", [("training.aug_dim", 1e300), ("training.aug_dim", 1e13),
                                       ("sampling.sigma_max", 1e300), ("sampling.rho", 1e-9),
                                       ("sampling.N", 1)])  # was "sampling.ode_solver: sampling.N: ..." 
def test_values_that_overflow_the_kernel_or_the_schedule_are_refused_by_name(key, value):
    """Issue 18 case 9 and the tracebacks: D = 1e300 passed validation, then every training step was
    non-finite; sigma_max = 1e300 or rho = 1e-9 crashed at the first snapshot after the workdir was written."""
    from conftest import shipped_config
    from pfgm import config_checks
    c = shipped_config("pfgmpp/toy2d")
    config_checks.validate(c)
    section, leaf = key.split(".")
    c[section][leaf] = value
    with pytest.raises(config_checks.ConfigError, match=f"^{key}: "):
        config_checks.validate(c)
