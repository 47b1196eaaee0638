"""Per-image seeds (pfgm.seeds.StackedGenerator and the draw helpers every sampler uses) and EDM's
stochastic sampler for PFGM++: the same seeds give the same images whatever the batch size."""
import math

import numpy as np
import pytest
import torch

from conftest import shipped_config
from pfgm import methods, models, pfgmpp, sampling, seeds
from pfgm.config_checks import ConfigError, validate


def test_stacked_draws_are_each_images_own_generator():
    gen = seeds.StackedGenerator([5, 0, 123456789012])
    x = seeds.randn((3, 2, 4), gen, dtype=torch.float64)
    u = seeds.rand((3,), gen)
    for i, s in enumerate([5, 0, 123456789012]):
        own = torch.Generator().manual_seed(s)
        assert torch.equal(x[i], torch.randn((2, 4), generator=own, dtype=torch.float64))
        assert torch.equal(u[i], torch.rand((), generator=own))
    labels = seeds.randint(10, (3,), seeds.StackedGenerator([1, 2, 3]))
    assert labels.shape == (3,) and labels.dtype == torch.int64 and ((0 <= labels) & (labels < 10)).all()
    with pytest.raises(ValueError, match="first dimension"):
        seeds.randn((2, 4), gen)


def test_a_plain_generator_draws_as_torch():
    a = seeds.randn((4, 3), torch.Generator().manual_seed(7))
    assert torch.equal(a, torch.randn(4, 3, generator=torch.Generator().manual_seed(7)))
    b = seeds.rand((5,), torch.Generator().manual_seed(7), dtype=torch.float64)
    assert torch.equal(b, torch.rand(5, generator=torch.Generator().manual_seed(7), dtype=torch.float64))


def _toy(name, sampling):
    config = shipped_config(name)
    config.sampling.update(**sampling)
    validate(config, mode="eval")
    torch.manual_seed(0)
    model = models.build(config, "cpu").eval()
    return methods.get_method(config), model


# every sampler that draws: PFGM's prior, the SDE prior with the PC sampler's noise, PFGM++'s prior
# with EDM's churn, and the deterministic PFGM++ Heun. (score_sde's Langevin corrector sets its step from
# norms averaged over the batch, so its images depend on the batch by definition.)
CASES = {
    "pfgm_euler": ("poisson/toy2d", dict(ode_solver="euler", N=6)),
    "vp_pc": ("vp/toy2d", dict(method="pc", N=6)),
    "ve_pc": ("ve/toy2d", dict(method="pc", N=4, corrector="none")),
    "pfgmpp_churn": ("pfgmpp/toy2d", dict(N=5, S_churn=20.0, S_min=0.05, S_max=30.0, S_noise=1.007)),
    "pfgmpp_heun": ("pfgmpp/toy2d", dict(N=5)),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_same_seeds_same_images_at_any_batch_size(case):
    method, model = _toy(*CASES[case])
    image_seeds = [3, 14, 15, 92, 65, 35, 89]
    runs = [method.sample_in_batches(model, 7, (2,), b, seeds=image_seeds, device="cpu")[0] for b in (1, 3, 7)]
    for other in runs[1:]:  # float32 products of a batch of 1 and of 7 may round differently: 1e-5
        np.testing.assert_allclose(other, runs[0], rtol=1e-5, atol=1e-6)
    assert np.abs(runs[0][1:] - runs[0][:1]).max() > 1e-3      # the images differ from one another
    shuffled = method.sample_in_batches(model, 7, (2,), 4, seeds=image_seeds[::-1], device="cpu")[0]
    np.testing.assert_allclose(shuffled[::-1], runs[0], rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="6 image seeds for 7"):
        method.sample_in_batches(model, 7, (2,), seeds=image_seeds[:6])


def test_churned_sampler_is_edms_algorithm_2():
    """The stochastic sampler against Algorithm 2 of Karras et al. (2022) written out here in float64,
    with Gaussian data's exact denoiser D(x, s) = x sd^2 / (sd^2 + s^2) and the same per-image noise."""
    sd, steps, churn, s_min, s_max, s_noise = 0.7, 6, 30.0, 0.1, 10.0, 1.05
    s = dict(ode_solver="heun", max_nfe=0, S_churn=churn, S_min=s_min, S_max=s_max, S_noise=s_noise)

    def denoiser(x, sigma):
        return x * sd**2 / (sd**2 + sigma.reshape(-1, 1) ** 2)

    ts = pfgmpp.edm_sigmas(steps, 0.002, 20.0)
    x0 = pfgmpp.sample_prior(4, (3,), math.inf, 20.0, seeds.StackedGenerator(range(4)), dtype=torch.float64)
    gen = seeds.StackedGenerator(range(4))
    pfgmpp.sample_prior(4, (3,), math.inf, 20.0, gen, dtype=torch.float64)  # the same state as x0's
    ours, nfe = methods.get_method_class("pfgmpp").churned_solve(pfgmpp.ode_drift(denoiser), x0, ts, s, gen)

    ref_gen = seeds.StackedGenerator(range(4))
    x = pfgmpp.sample_prior(4, (3,), math.inf, 20.0, ref_gen, dtype=torch.float64)
    for i in range(steps):
        t_cur, t_next = ts[i], ts[i + 1]
        gamma = min(churn / steps, 2**0.5 - 1) if s_min <= t_cur <= s_max else 0.0
        t_hat = t_cur + gamma * t_cur
        x_hat = x + (t_hat**2 - t_cur**2) ** 0.5 * s_noise * ref_gen.draw(torch.randn, x.shape, dtype=x.dtype)
        d_cur = (x_hat - x_hat * sd**2 / (sd**2 + t_hat**2)) / t_hat
        x = x_hat + (t_next - t_hat) * d_cur
        if i < steps - 1:
            d_prime = (x - x * sd**2 / (sd**2 + t_next**2)) / t_next
            x = x_hat + (t_next - t_hat) * (0.5 * d_cur + 0.5 * d_prime)
    torch.testing.assert_close(ours, x, rtol=1e-12, atol=1e-12)
    assert nfe == 2 * steps - 1


def test_churned_sampler_keeps_to_max_nfe():
    drift = pfgmpp.ode_drift(lambda x, sigma: 0.5 * x)
    s = dict(ode_solver="heun", max_nfe=6, S_churn=1.0, S_min=0.0, S_max=math.inf, S_noise=1.0)
    with pytest.raises(sampling.TooManySteps, match="max_nfe"):
        methods.get_method_class("pfgmpp").churned_solve(drift, torch.ones(2, 3), pfgmpp.edm_sigmas(6, 0.002, 80.0), s)


def test_churn_with_rk45_is_refused():
    config = shipped_config("pfgmpp/toy2d")
    config.sampling.update(ode_solver="rk45", S_churn=10.0)
    with pytest.raises(ConfigError, match="sampling.S_churn"):
        validate(config)
    # and as the overrides of one call, where no config check runs
    method = methods.get_method(shipped_config("pfgmpp/toy2d"))
    with pytest.raises(ConfigError, match="sampling.S_churn"):
        method.solve(lambda x, sigma: 0.5 * x, torch.ones(2, 2),
                     dict(method.sampling_options({}), ode_solver="rk45", S_churn=10.0))


@pytest.mark.e2e
def test_eval_with_first_seed_draws_the_same_samples_at_any_batch_size(tmp_path):
    from conftest import tiny_config
    from pfgm import evaluate, train

    config = tiny_config("pfgmpp/toy2d", 2, batch_size=16, small_batch_size=16)
    work = str(tmp_path / "run")
    train.train(config, work)
    got = []
    for batch in (2, 5):
        config.eval.update(first_seed=100, num_samples=5, batch_size=batch, enable_loss=False)
        evaluate.evaluate(config, work, eval_folder=f"eval_{batch}")
        got.append(np.load(tmp_path / "run" / f"eval_{batch}" / "ckpt_2" / "samples.npz")["samples"])
    np.testing.assert_allclose(got[0], got[1], rtol=1e-5, atol=1e-6)
