"""The physics against float64 references and closed forms."""
import math

import numpy as np
import pytest
import scipy.special
import scipy.stats
import torch

from pfgm import poisson


def reference_field(x, data):
    """Direct float64 field: every difference formed explicitly, weights by log-sum-exp."""
    x = x.double()
    y = data.reshape(len(data), -1).double()
    n = y.shape[1]
    diff = x[:, None, :n] - y[None]  # (B, L, N): fine at test sizes
    d2 = (diff**2).sum(-1) + x[:, None, n] ** 2
    w = torch.softmax(-0.5 * (n + 1) * torch.log(d2), dim=1)
    ex = (w[..., None] * diff).sum(1)
    ez = w.sum(1) * x[:, n]
    return torch.cat([ex, ez[:, None]], 1)


def rel_err(a, b):
    return ((a.double() - b.double()).norm(dim=1) / b.double().norm(dim=1)).max().item()


def augmented(xs, z):
    return torch.cat([xs, z.reshape(-1, 1)], 1)


@pytest.mark.parametrize("n", [2, 64, 3072])
@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-10), (torch.float32, 2e-4)])
def test_field_matches_reference_far_and_mid(n, dtype, tol):
    g = torch.Generator().manual_seed(n)
    data = torch.rand(40, n, generator=g, dtype=torch.float64) * 2 - 1
    # points at the scale of the data spread and far outside it
    for scale, z in [(0.3, 0.5), (1.0, 3.0), (50.0, 40.0)]:
        xs = data[:8] + scale * torch.randn(8, n, generator=g, dtype=torch.float64)
        x = augmented(xs, torch.full((8,), z, dtype=torch.float64))
        ref = reference_field(x, data)
        got = poisson.empirical_field(x.to(dtype), data.to(dtype))
        assert got.dtype == dtype and got.shape == (8, n + 1)
        # the inherent conditioning: weights are d^{-(N+1)}, so a relative rounding eps in d becomes N eps
        assert rel_err(got, ref) < tol * (1 if dtype == torch.float64 else max(1.0, n / 300))


@pytest.mark.parametrize("n", [2, 3072])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_field_exact_close_to_a_charge(n, dtype):
    """Within 1e-6 of a charge, |x|^2+|y|^2-2xy cancels to noise; the result must not."""
    g = torch.Generator().manual_seed(1)
    data = torch.rand(64, n, generator=g, dtype=torch.float64) * 2 - 1
    offset = 1e-6 * torch.randn(5, n, generator=g, dtype=torch.float64) / math.sqrt(n)
    x = augmented(data[:5] + offset, torch.full((5,), 1e-6, dtype=torch.float64))
    ref = reference_field(x, data)
    # near a charge the field is x - y_nearest to within the tiny weights of the others
    assert rel_err(ref[:, :n], x[:, :n] - data[:5]) < 1e-9
    x_in = x.to(dtype)
    # compare with the reference at the rounded input, so only the algorithm's error is measured
    ref_rounded = reference_field(x_in.double(), data.to(dtype).double())
    got = poisson.empirical_field(x_in, data.to(dtype))
    eps = torch.finfo(dtype).eps
    # the answer is O(1e-6) while |x| ~ sqrt(N): a cancelling formula would be off by |x|^2 eps / 1e-12
    assert rel_err(got, ref_rounded) < 50 * eps


def test_field_on_a_charge_is_zero_not_nan():
    data = torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    x = torch.tensor([[0.0, 1.0, 0.0]])
    out = poisson.empirical_field(x, data)
    assert torch.isfinite(out).all() and out.abs().max() == 0


def test_field_is_the_physical_field_direction():
    """For a few charges in N=3, E ∝ sum (x - y)/|x - y|^{N+1} (Coulomb in 4-D), by direct sum."""
    g = torch.Generator().manual_seed(2)
    data = torch.randn(5, 3, generator=g, dtype=torch.float64)
    x = augmented(torch.randn(6, 3, generator=g, dtype=torch.float64), torch.rand(6, generator=g, dtype=torch.float64) + 0.1)
    diff = x[:, None, :] - torch.cat([data, torch.zeros(5, 1, dtype=torch.float64)], 1)[None]
    coulomb = (diff / diff.norm(dim=-1, keepdim=True) ** 4).sum(1)
    got = poisson.empirical_field(x, data)
    cos = torch.nn.functional.cosine_similarity(got, coulomb, dim=1)
    assert torch.allclose(cos, torch.ones(6, dtype=torch.float64), atol=1e-12)


def test_field_target_normalization():
    g = torch.Generator().manual_seed(3)
    n = 3072
    data = torch.rand(32, n, generator=g) * 2 - 1
    x = augmented(data[:4] + torch.randn(4, n, generator=g), torch.full((4,), 2.0))
    e = poisson.empirical_field(x, data)
    for gamma in (0.0, 5.0):
        t = poisson.field_target(x, data, gamma)
        expected = -math.sqrt(n) * e / (e.norm(dim=1, keepdim=True) + gamma)
        assert torch.allclose(t, expected, rtol=1e-6)
        assert (t.norm(dim=1) <= math.sqrt(n) * (1 + 1e-6)).all()
        assert (t[:, -1] < 0).all()  # always toward the z = 0 plane


def test_field_memory_is_lean():
    """No (B, L, N) intermediate: the bound allows inputs + O(B·L) + O(B·k·N)."""
    if not torch.cuda.is_available():
        pytest.skip("peak-memory accounting needs CUDA; tools/bench_field.py measures CPU memory")
    dev = torch.device("cuda")
    data = torch.rand(1024, 3072, device=dev)
    x = augmented(data[:128] + 0.1, torch.full((128,), 1.0, device=dev))
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    poisson.field_target(x, data, 5.0)
    extra = torch.cuda.max_memory_allocated() - base
    assert extra < 128 * 1024 * 3073 * 4 / 20


# -- perturbation (Alg. 2) -------------------------------------------------------------

def test_perturbation_ratio_law():
    """|dx| / z = |eps_x| / |eps_z| whatever m is, so (|dx|/z)^2 / N ~ F(N, 1)."""
    n = 50
    g = torch.Generator().manual_seed(4)
    y = torch.rand(4000, n, generator=g, dtype=torch.float64)
    x = poisson.perturb(y, M=291, tau=0.03, sigma_end=0.01, restrict_M=True, generator=g)
    assert x.shape == (4000, n + 1) and (x[:, -1] > 0).all()
    ratio2 = ((x[:, :n] - y).norm(dim=1) / x[:, -1]) ** 2 / n
    assert scipy.stats.kstest(ratio2.numpy(), scipy.stats.f(n, 1).cdf).pvalue > 1e-3


def test_perturbation_range_law():
    """In N=3072 |eps_x| ≈ sigma sqrt(N), so m ≈ log(|dx| / sigma sqrt N) / log(1+tau) ~ U[0, M)."""
    n, M, tau, sigma = 3072, 291, 0.03, 0.01
    g = torch.Generator().manual_seed(5)
    y = torch.zeros(3000, n, dtype=torch.float64)
    x = poisson.perturb(y, M, tau, sigma, restrict_M=False, generator=g)
    m = torch.log(x[:, :n].norm(dim=1) / (sigma * math.sqrt(n))) / math.log1p(tau)
    assert scipy.stats.kstest(m.numpy(), scipy.stats.uniform(0, M).cdf).pvalue > 1e-3
    # restrict_M: points that start below z0 = sigma/2 use m < int(0.7 M); about 38.3% of them
    x = poisson.perturb(y, M, tau, sigma, restrict_M=True, generator=g)
    m = torch.log(x[:, :n].norm(dim=1) / (sigma * math.sqrt(n))) / math.log1p(tau)
    z0 = x[:, -1] / (1 + tau) ** m
    low = z0 < 0.45 * sigma  # margin for the chi fluctuation in the recovered m
    assert (m[low] < int(0.7 * M) + 2).all()
    frac = (z0 < 0.5 * sigma).double().mean().item()
    assert abs(frac - (2 * scipy.stats.norm.cdf(0.5) - 1)) < 0.04


def test_perturbation_rejects_bad_M():
    with pytest.raises(ValueError, match="M"):
        poisson.perturb(torch.zeros(2, 3), M=-1, tau=0.03, sigma_end=0.01)


# -- prior on the z = z_max plane -------------------------------------------------------

@pytest.mark.parametrize("n", [2, 10, 3072])
def test_prior_radius_law(n):
    z_max = 40.0
    g = torch.Generator().manual_seed(n)
    x = poisson.sample_prior(20000, n, z_max, upper_norm=float("inf"), generator=g, dtype=torch.float64)
    r = x.norm(dim=1).numpy()
    assert scipy.stats.kstest(r, lambda t: poisson.prior_radius_cdf(t, n, z_max)).pvalue > 1e-3
    # independent closed form: rays from a point charge through the upper hemisphere of S^N hit the plane
    # at R = z_max |u_x| / u_z
    u = torch.randn(20000, n + 1, generator=g, dtype=torch.float64)
    r_ray = (z_max * u[:, :n].norm(dim=1) / u[:, n].abs()).numpy()
    assert scipy.stats.ks_2samp(r, r_ray).pvalue > 1e-3


def test_prior_radius_density_is_the_poisson_kernel():
    n, z = 7, 3.0
    r = np.linspace(0.5, 30, 50)
    h = 1e-5
    numeric = (poisson.prior_radius_cdf(r + h, n, z) - poisson.prior_radius_cdf(r - h, n, z)) / (2 * h)
    log_area = math.log(2) + (n / 2) * math.log(math.pi) - scipy.special.gammaln(n / 2)
    log_kernel = scipy.special.gammaln((n + 1) / 2) - ((n + 1) / 2) * math.log(math.pi)
    analytic = np.exp(log_area + log_kernel + (n - 1) * np.log(r) + math.log(z) - (n + 1) / 2 * np.log(r**2 + z**2))
    np.testing.assert_allclose(numeric, analytic, rtol=1e-5)


def test_prior_clipping_and_cifar_fraction():
    # with the original's CIFAR-10 settings about 54% of the prior's radii sit at upper_norm
    assert abs((1 - poisson.prior_radius_cdf(3000.0, 3072, 40.0)) - 0.54) < 0.005
    g = torch.Generator().manual_seed(6)
    x = poisson.sample_prior(20000, 3072, 40.0, 3000.0, generator=g)
    r = x.norm(dim=1)
    assert r.max() <= 3000.0 * (1 + 1e-5)
    frac = (r > 3000.0 * (1 - 1e-5)).double().mean().item()
    assert abs(frac - 0.54) < 0.015
    # directions are uniform: the mean direction vanishes
    assert (x / r[:, None]).mean(0).norm() < 0.05


def test_prior_is_reproducible_from_one_generator():
    a = poisson.sample_prior(5, 10, 1.0, 100.0, generator=torch.Generator().manual_seed(7))
    b = poisson.sample_prior(5, 10, 1.0, 100.0, generator=torch.Generator().manual_seed(7))
    assert torch.equal(a, b)


# -- z-substitution and hyper-parameters ---------------------------------------------------

def test_z_substitution_recovers_vz_of_one_charge():
    """With one charge the rebuilt v_z equals the target's v_z up to the |u| ≈ |u_x| approximation."""
    n, gamma = 3072, 5.0
    y = torch.zeros(1, n, dtype=torch.float64)
    g = torch.Generator().manual_seed(8)
    d = torch.tensor([0.5, 2.0, 10.0], dtype=torch.float64)
    u = torch.randn(3, n, generator=g, dtype=torch.float64)
    xs = d[:, None] * u / u.norm(dim=1, keepdim=True)
    for z in (1e-3, 0.05):
        zt = torch.full((3,), z, dtype=torch.float64)
        t = poisson.field_target(augmented(xs, zt), y, gamma)
        vz = poisson.substitute_vz(t[:, :n], zt, gamma, n)
        np.testing.assert_allclose(vz.numpy(), t[:, n].numpy(), rtol=2e-3)
    # no NaN when |v_x| exceeds sqrt(N)
    assert torch.isfinite(poisson.substitute_vz(torch.full((1, 4), 3.0), torch.ones(1), gamma, 4)).all()


def test_hyperparameter_rule():
    hp = poisson.hyperparameters(30.0, 3072)
    assert hp["M"] == 287
    assert hp["z_max"] == pytest.approx(38.57, abs=0.01)
    assert hp["upper_norm"] == pytest.approx(2679.1, abs=0.1)
    # at M = 291 the same formulas give the shipped configs' neighbourhood (z_max 43.4 and upper_norm 3015)
    top = 1.03**291
    assert math.sqrt(2 / math.pi) * 0.01 * top == pytest.approx(43.4, abs=0.05)
    with pytest.raises(ValueError):
        poisson.hyperparameters(-1.0, 3072)
