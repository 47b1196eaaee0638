"""PFGM++ as a method: EDM's preconditioned denoiser trained on the D-dimensional kernel, sampled from the
heavy-tailed prior along dx/dsigma = (x - D(x, sigma)) / sigma (pfgm.pfgmpp holds the physics).

Config keys: training.{aug_dim (D: an integer >= 1, or inf for the diffusion limit), P_mean, P_std, stf,
beta_clip, small_batch_size, reduce_mean}, model.sigma_data, sampling.{method ('ode'), ode_solver, N, sigma_min,
sigma_max, rho, rtol, atol, max_nfe, S_churn, S_min, S_max, S_noise}.

- Training, as the original (github.com/Newbeeer/pfgmpp, built on NVIDIA's EDM): ln sigma ~ N(P_mean,
  P_std^2), r = sigma sqrt(D), x = y + R u with R = r sqrt(B / (1 - B)), B ~ Beta(N/2, D/2) clipped to
  [beta_clip, 1 - beta_clip] (the original: 1e-3; 0 = no clip), loss lambda(sigma) |D(x, sigma) - y|^2.
  The clip is harmless where B stays away from 0 and 1 (CIFAR-10 with D >= 128); in low dimension it
  truncates the kernel (N = 2: 22.6% of the draws at D = 512, 40% at 1024, 64% at 2048, half from D = 1386;
  3.2% of D = 1's heavy tail; tools/beta_clip_share.py, docs/pfgmpp.md). With training.stf the target is the posterior
  mean of the whole batch's charges (the original's large-reference-batch target) instead of y; the
  first small_batch_size points of the batch are the ones trained.
- Class labels (model.label_dim > 0): the label goes into the network (NULL when dropped, with probability
  training.label_dropout); with stf the posterior is over the batch's charges of the point's class; sampling
  is guided on the denoiser, D_u + w (D_c - D_u) (pfgm.methods.conditioning).
- Sampling: `heun` on EDM's rho-schedule with the last step (to sigma = 0) plain Euler is EDM's sampler
  (N = 18: 35 NFE); `euler` steps the same schedule; `rk45` integrates in log sigma from sigma_max to
  sigma_min, then takes EDM's last Euler step to 0 (one more NFE: x <- D(x, sigma_min)). sampling.S_churn
  > 0 is EDM's stochastic sampler on the same schedule (`churned_solve`; S_min, S_max, S_noise as EDM's).
"""
import math

import torch

from pfgm import pfgmpp, sampling, seeds
from pfgm.config_checks import ConfigError, number, ordered, trained_points
from pfgm.methods import conditioning
from pfgm.methods.base import Method, ProbabilityFlow
from pfgm.sampling import per_sample


def aug_dim(config):
    """training.aug_dim as the method uses it: an int, or math.inf."""
    d = config.training.aug_dim
    return math.inf if math.isinf(d) else int(d)


# Bounds beyond which float arithmetic of the kernel and the prior breaks (D sqrt -> r^2 overflow; the
# prior's radius sigma_max sqrt(D) in float32); far beyond any run of the paper (D <= 3072000, sigma_max 80).
MAX_FINITE_D = 1e12
MAX_SIGMA = 1e6
CHURN_NEEDS_A_SCHEDULE = ("sampling.S_churn: EDM's stochastic sampler steps the EDM schedule ('heun' or 'euler'), "
                          "not 'rk45'")


class PFGMPP(Method):
    name = "pfgmpp"
    time_name = "sigma"
    sampling_keys = ("method", "ode_solver", "N", "sigma_min", "sigma_max", "rho", "rtol", "atol", "max_nfe",
                     "S_churn", "S_min", "S_max", "S_noise", "class_label", "guidance", "guidance_tmin")

    def __init__(self, config):
        super().__init__(config)
        self.check_config(config)
        self.D = aug_dim(config)
        self.sigma_data = float(config.model.sigma_data)

    @classmethod
    def check_config(cls, config):
        super().check_config(config)
        d = number(config, "training.aug_dim", low=1, allow_inf=True)
        if not math.isinf(d) and d != int(d):
            raise ConfigError(f"training.aug_dim: D must be an integer >= 1 or inf, got {d!r}")
        if not math.isinf(d) and d > MAX_FINITE_D:
            raise ConfigError(f"training.aug_dim: D = {d:g} overflows the kernel's radius (sigma sqrt(D)); beyond "
                              f"{MAX_FINITE_D:g} use inf, the diffusion limit it approaches")
        number(config, "training.P_std", low=0, strict_low=True)
        number(config, "training.P_mean")
        number(config, "model.sigma_data", low=0, strict_low=True)
        if not 0 <= number(config, "training.beta_clip", low=0) < 0.5:
            raise ConfigError(f"training.beta_clip: must be in [0, 0.5), got {config.training.beta_clip!r}")
        trained_points(config)
        s = config.sampling
        ordered(config, "sampling.sigma_min", "sampling.sigma_max")
        number(config, "sampling.sigma_max", high=MAX_SIGMA)
        number(config, "sampling.rho", low=0, strict_low=True)
        try:  # the schedule itself: a tiny rho overflows sigma ** (1 / rho)
            sigmas = pfgmpp.edm_sigmas(max(int(s.N), 2), float(s.sigma_min), float(s.sigma_max), float(s.rho))
            ok = all(math.isfinite(a) and a > b for a, b in zip(sigmas[:-1], sigmas[1:]))
        except (OverflowError, ZeroDivisionError):
            ok = False
        if not ok:
            raise ConfigError(f"sampling.rho: {s.rho!r} gives no finite, decreasing EDM schedule from sampling."
                              f"sigma_max {s.sigma_max!r} to sigma_min {s.sigma_min!r} (EDM uses rho = 7)")
        if s.method != "ode":
            raise ConfigError(f"sampling.method: PFGM++ samples by its ODE only ('ode'), got {s.method!r}")
        try:
            if sampling.solver_name(s.ode_solver) != "rk45" and s.N < 2:
                raise ConfigError(f"sampling.N: the EDM schedule needs at least 2 steps, got {s.N}")
        except ConfigError:
            raise
        except ValueError as e:
            raise ConfigError(f"sampling.ode_solver: {e}") from None
        for key in ("S_churn", "S_min", "S_max", "S_noise"):
            number(config, f"sampling.{key}", low=0, allow_inf=key == "S_max")
        if s.S_churn > 0 and sampling.solver_name(s.ode_solver) == "rk45":
            raise ConfigError(CHURN_NEEDS_A_SCHEDULE)

    # ---- the network as EDM's denoiser ----------------------------------------------------------
    def labelled_denoiser(self, model, augment_labels=None):
        """D(x, sigma, labels) = c_skip x + c_out F(c_in x, sigma, labels) (the network embeds log(sigma) / 4;
        labels None: the null label of a conditional model), in x's dtype."""
        dtype = next(model.parameters()).dtype

        def denoise(x, sigma, labels):
            c_skip, c_out, c_in, _ = (per_sample(c, x) for c in pfgmpp.preconditioning(sigma, self.sigma_data))
            out = self.net(model, (c_in * x).to(dtype), sigma.to(dtype), labels, augment_labels).to(x.dtype)
            return c_skip * x + c_out * out

        return denoise

    def denoiser(self, model, labels=None, guidance=1.0, tmin=0.0):
        """D(x, sigma) towards the classes `labels` of a conditional model, guided as D_u + w (D_c - D_u),
        w = guidance, at sigma >= tmin (`conditioning.guided`); an unconditional model's plain denoiser."""
        return conditioning.guided(self.labelled_denoiser(model), labels, guidance, tmin)

    # ---- Method -----------------------------------------------------------------------------------
    def loss(self, model, batch, generator=None, shard=None, labels=None, augment_labels=None):
        """EDM's weighted denoising loss on the D-dimensional kernel; with labels, the network denoises
        towards the point's class (NULL when dropped) and the stf target is the posterior over the
        batch's charges of that class (`pfgmpp.class_posterior_mean`)."""
        t = self.config.training
        y = batch[: t.small_batch_size]
        opts = dict(generator=generator, device=y.device)
        sigma = torch.exp(t.P_mean + t.P_std * torch.randn(len(y), dtype=torch.float64, **opts))
        noise = pfgmpp.perturbation(y.shape, sigma, self.D, generator, beta_clip=t.beta_clip or None, dtype=y.dtype)
        kept = self.train_labels(labels, len(y), generator)
        mine = self.shard_slice(len(y), shard)
        y, sigma, x = y[mine], sigma[mine].to(y.dtype), (y + noise)[mine]
        kept = None if kept is None else kept[mine]
        if t.stf:
            with torch.no_grad():
                if kept is None:
                    target = pfgmpp.posterior_mean(x, batch, sigma, self.D)
                else:
                    target = pfgmpp.class_posterior_mean(x, batch, sigma, self.D, kept, labels, check=False)
        else:
            target = y
        aug = None if augment_labels is None else augment_labels[: t.small_batch_size][mine]
        sq = (self.labelled_denoiser(model, aug)(x, sigma, kept) - target).flatten(1) ** 2
        per_point = sq.mean(1) if t.reduce_mean else sq.sum(1)
        return (pfgmpp.loss_weight(sigma, self.sigma_data) * per_point).mean()

    def prior_sample(self, n, shape, device, generator=None):
        return pfgmpp.sample_prior(n, shape, self.D, self.config.sampling.sigma_max, generator, device)

    def sample(self, model, n, shape, *, x=None, generator=None, device=None, labels=None, **overrides):
        s = self.sampling_options(overrides)
        device = device or next(model.parameters()).device
        if x is None:
            x = pfgmpp.sample_prior(n, shape, self.D, s["sigma_max"], generator, device)
        labels = self.sampler_labels(len(x), device, generator, s, labels)
        return self.solve(self.denoiser(model, labels, s["guidance"], s["guidance_tmin"]), x, s, generator=generator)

    def solve(self, denoiser, x, s, callback=None, generator=None):
        """The backward ODE from sigma_max to 0 with the settings `s` (see the module docstring)."""
        drift = pfgmpp.ode_drift(denoiser)
        with torch.no_grad():
            if sampling.solver_name(s["ode_solver"]) == "rk45":
                if s["S_churn"] > 0:  # as check_config, for overrides of one call
                    raise ConfigError(CHURN_NEEDS_A_SCHEDULE)
                x, nfe = sampling.solve(drift, x, [s["sigma_max"], s["sigma_min"]], solver="rk45", rtol=s["rtol"],
                                        atol=s["atol"], max_nfe=s["max_nfe"], log_time=True)
                sigma = torch.full((len(x),), s["sigma_min"], dtype=x.dtype, device=x.device)
                return denoiser(x, sigma), nfe + 1
            ts = pfgmpp.edm_sigmas(s["N"], s["sigma_min"], s["sigma_max"], s["rho"])
            if s["S_churn"] > 0:
                return self.churned_solve(drift, x, ts, s, generator, callback)
            return sampling.solve(drift, x, ts, solver=s["ode_solver"], last_step_euler=True,
                                  max_nfe=s["max_nfe"], callback=callback)

    @staticmethod
    def churned_solve(drift, x, ts, s, generator=None, callback=None):
        """EDM's stochastic sampler (Karras et al. 2022, Algorithm 2; the original's generate.py): at each
        level sigma_i the state first gets Gaussian noise of std sqrt(sigma_hat^2 - sigma_i^2) S_noise, with
        sigma_hat = `pfgmpp.churned_sigma`, then one Heun (or Euler) step from sigma_hat to sigma_{i+1}, the
        last one Euler. One noise draw per level, as the original (per image with a StackedGenerator)."""
        steps, nfe = len(ts) - 1, 0
        if callback:
            callback(ts[0], x)
        for i, (t_cur, t_next) in enumerate(zip(ts[:-1], ts[1:])):
            t_hat = pfgmpp.churned_sigma(t_cur, steps, s["S_churn"], s["S_min"], s["S_max"])
            noise = seeds.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
            x = x + math.sqrt(t_hat ** 2 - t_cur ** 2) * s["S_noise"] * noise
            left = s["max_nfe"] - nfe if s["max_nfe"] else None
            if left is not None and left < 1:
                raise sampling.TooManySteps(f"the stochastic sampler passed {s['max_nfe']} network evaluations "
                                            f"(sampling.max_nfe) at sigma = {t_cur:.6g}")
            x, k = sampling.solve(drift, x, [t_hat, t_next], solver=s["ode_solver"], last_step_euler=i == steps - 1,
                                  max_nfe=left)
            nfe += k
            if callback:
                callback(t_next, x)
        return x, nfe

    def trajectory(self, model, x, steps=100, labels=None):
        """Heun on the EDM schedule with `steps` levels (times are sigma, ending at 0)."""
        s = dict(self.sampling_options({}), ode_solver="heun", N=steps, S_churn=0.0)
        times, states, record = self._recorder()
        self.solve(self.denoiser(model, labels, s["guidance"], s["guidance_tmin"]), x, s, callback=record)
        return torch.tensor(times, dtype=torch.float64), torch.stack(states)

    def prior_radius(self, dim):
        """sigma_max sqrt(dim): the prior's radius is sigma_max sqrt(D) sqrt(B / (1 - B)), about that."""
        return float(self.config.sampling.sigma_max) * math.sqrt(dim)

    def probability_flow(self, model):
        """dx/dsigma from sigma_min (the data, to within sigma_min) to sigma_max, in log sigma, and the
        prior's closed-form log-density."""
        s = self.config.sampling
        return ProbabilityFlow(sampling.in_log_time(pfgmpp.ode_drift(self.denoiser(model))), math.log(s.sigma_min),
                               math.log(s.sigma_max), lambda x: pfgmpp.prior_logp(x, s.sigma_max, self.D))
