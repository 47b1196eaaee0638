"""The score-SDE diffusion baselines (VE, VP, sub-VP; Song et al., 2021) as methods.

Time runs over [0, T], T = 1. Every coefficient function takes t as a float or a (B,) tensor and
returns a (B,) tensor; `per_sample` lines it up with a batch x of shape (B, ...).

Score parameterization (continuous training only), the contract with the networks:
  * VP / sub-VP: the network gets cond = 999 t and predicts the noise eps; score = -eps_hat / std(t).
  * VE: the network gets cond = sigma(t) and returns the score. With `model.scale_by_sigma` the
    output is divided by sigma(t). NCSN++ does that division itself; the networks named in
    `SCALED_BY_METHOD` (the toy MLP) do not, so for them the method divides.

Config keys: model.{sigma_min, sigma_max, num_scales, beta_min, beta_max, scale_by_sigma},
training.{reduce_mean, likelihood_weighting, continuous},
sampling.{method ('ode'|'pc'), ode_solver, N, rtol, atol, eps, noise_removal, predictor, corrector, snr,
n_steps_each, probability_flow, max_nfe} and the label keys (`SDE.sampling_keys`; guidance on the score).
"""
import math

import torch

from pfgm import sampling, seeds
from pfgm.methods import conditioning, sde_samplers
from pfgm.methods.base import Method, ProbabilityFlow
from pfgm.sampling import per_sample

# Networks without their own `scale_by_sigma`: for VE the method divides their output by sigma(t).
SCALED_BY_METHOD = ("mlp",)


def _times(t, x, dtype=None):
    """t (float or tensor) as a (B,) tensor on x's device (a float is filled in there: no host-to-device
    copy per evaluation)."""
    if not torch.is_tensor(t):
        return torch.full((x.shape[0],), float(t), dtype=dtype or x.dtype, device=x.device)
    t = t.to(dtype=dtype or x.dtype, device=x.device)
    return t.expand(x.shape[0]) if t.dim() == 0 else t


class SDE(Method):
    """dx = f(x, t) dt + g(t) dw on [0, T] with a Gaussian perturbation kernel, and its sampler."""

    sampling_keys = ("method", "ode_solver", "N", "rtol", "atol", "eps", "noise_removal", "predictor", "corrector",
                     "snr", "n_steps_each", "probability_flow", "max_nfe", "class_label", "guidance", "guidance_tmin")
    T = 1.0
    train_eps = 1e-5       # t ~ U(train_eps, T) in the loss
    likelihood_eps = 1e-5  # where the likelihood's ODE starts (score_sde's default)

    def __init__(self, config):
        super().__init__(config)
        self.check_config(config)
        self.N = int(config.model.num_scales)

    @classmethod
    def check_config(cls, config):
        """Raise ValueError (naming the key) for settings this implementation cannot run."""
        super().check_config(config)
        if not config.training.continuous:
            raise ValueError("training.continuous: only the continuous-time DSM loss is implemented "
                             "(the original silently trained continuous models too)")
        n = config.model.get("num_scales")
        if not isinstance(n, int) or n < 1:
            raise ValueError(f"model.num_scales: expected a positive integer, got {n!r}")
        s = config.sampling
        if s["method"] not in ("ode", "pc"):
            raise ValueError(f"sampling.method: {s['method']!r} is not 'ode' or 'pc'")
        if s["method"] == "pc":
            if s["predictor"] not in sde_samplers.PREDICTORS:
                raise ValueError(f"sampling.predictor: unknown {s['predictor']!r}; "
                                 f"choose one of {sorted(sde_samplers.PREDICTORS)}")
            if s["corrector"] not in sde_samplers.CORRECTORS:
                raise ValueError(f"sampling.corrector: unknown {s['corrector']!r}; "
                                 f"choose one of {sorted(sde_samplers.CORRECTORS)}")

    # ---- the SDE ------------------------------------------------------------------------------
    def sde(self, x, t):
        """(drift f(x, t) shaped like x, diffusion g(t) of shape (B,))."""
        raise NotImplementedError

    def mean_coeff(self, t):
        """a(t): the perturbation kernel's mean is a(t) x0."""
        raise NotImplementedError

    def marginal_std(self, t):
        """std(t) of the perturbation kernel N(a(t) x0, std(t)^2 I)."""
        raise NotImplementedError

    def marginal_prob(self, x0, t):
        """(mean shaped like x0, std of shape (B,)) of p_t(x | x0)."""
        t = _times(t, x0)
        return per_sample(self.mean_coeff(t), x0) * x0, self.marginal_std(t)

    def prior_std(self):
        return 1.0

    def prior_sample(self, n, shape, device, generator=None, dtype=torch.float32):
        z = seeds.randn((n, *shape), generator=generator, device=device, dtype=dtype)
        return z * self.prior_std()

    def prior_logp(self, z):
        """log N(z; 0, prior_std^2 I), summed over all but the batch dimension."""
        s = self.prior_std()
        d = z[0].numel()
        return -0.5 * d * math.log(2 * math.pi * s * s) - z.flatten(1).pow(2).sum(1) / (2 * s * s)

    def discretize(self, x, t, N=None):
        """(f, G) of the N-step discretization x_{i+1} = x_i + f + G z. Default: Euler-Maruyama."""
        dt = self.T / (N or self.N)
        drift, g = self.sde(x, t)
        return drift * dt, g * math.sqrt(dt)

    def _index(self, t, x, N):
        """The step index floor(t (N - 1) / T) of the N-step discretizations, in float64 and with a
        1e-6 allowance so that t = i / (N - 1) gives i despite rounding."""
        t = _times(t, x, torch.float64)
        return torch.floor(t * (N - 1) / self.T + 1e-6).long().clamp(0, N - 1)

    def corrector_alpha(self, t, x, N):
        """alpha_i scaling the Langevin corrector's step: 1 here, the DDPM alpha_i for VP/sub-VP."""
        return torch.ones(x.shape[0], dtype=x.dtype, device=x.device)

    # ---- network <-> score ----------------------------------------------------------------------
    def network_cond(self, t):
        raise NotImplementedError

    def output_to_score(self, out, t):
        raise NotImplementedError

    def labelled_score(self, model, augment_labels=None):
        """score(x, t, labels) from the network, t a float or a (B,) tensor (labels None: the null label
        of a conditional model)."""
        p = next(model.parameters(), None)

        def score(x, t, labels):
            t = _times(t, x)
            dtype = p.dtype if p is not None else x.dtype
            out = self.net(model, x.to(dtype), self.network_cond(t).to(dtype), labels, augment_labels).to(x.dtype)
            return self.output_to_score(out, t)

        return score

    def score_fn(self, model, labels=None, guidance=1.0, tmin=0.0):
        """score(x, t) from the network, t a float or a (B,) tensor; a conditional model's for the classes
        `labels`, guided as s_u + w (s_c - s_u), w = guidance, at t >= tmin (`conditioning.guided`)."""
        return conditioning.guided(self.labelled_score(model), labels, guidance, tmin)

    # ---- Method ---------------------------------------------------------------------------------

    def loss(self, model, batch, generator=None, shard=None, labels=None, augment_labels=None):
        if augment_labels is not None:
            augment_labels = augment_labels[self.shard_slice(len(batch), shard)]
        score = self.labelled_score(model, augment_labels)
        if not self.label_dim or labels is None:
            return self.dsm_loss(lambda x, t: score(x, t, None), batch, generator, shard)
        return self.dsm_loss(score, batch, generator, shard, labels=labels)

    def dsm_loss(self, score_fn, x0, generator=None, shard=None, labels=None):
        """Continuous denoising score matching, t ~ U(train_eps, T).

        Unweighted: ||s std + z||^2. With training.likelihood_weighting: g(t)^2 ||s + z / std||^2.
        Reduced per sample by the mean (training.reduce_mean) or half the sum; averaged over the batch.
        With labels (B,) the score is score_fn(x, t, labels), the labels dropped to NULL with
        training.label_dropout after the draws of t and z; without, score_fn(x, t).
        """
        tr = self.config.training
        opts = dict(generator=generator, device=x0.device, dtype=x0.dtype)
        t = torch.rand(x0.shape[0], **opts) * (self.T - self.train_eps) + self.train_eps
        z = torch.randn(x0.shape, **opts)
        kept = self.train_labels(labels, len(x0), generator)
        mine = self.shard_slice(x0.shape[0], shard)
        x0, t, z = x0[mine], t[mine], z[mine]
        mean, std = self.marginal_prob(x0, t)
        std = per_sample(std, x0)
        score = score_fn(mean + std * z, t) if kept is None else score_fn(mean + std * z, t, kept[mine])
        if tr.likelihood_weighting:
            sq = (score + z / std) ** 2 * per_sample(self.sde(x0, t)[1] ** 2, x0)
        else:
            sq = (score * std + z) ** 2
        sq = sq.flatten(1)
        reduced = sq.mean(1) if tr.reduce_mean else 0.5 * sq.sum(1)
        return reduced.mean()

    def sample(self, model, n, shape, *, x=None, generator=None, device=None, labels=None, **overrides):
        """'ode': the probability-flow ODE from T to eps with `ode_solver`, then (noise_removal) one
        noiseless reverse-diffusion step; 'pc': the predictor-corrector sampler. Returns (x, nfe)."""
        s = self.sampling_options(overrides)
        if device is None:
            p = next(model.parameters(), None)
            device = x.device if x is not None else (p.device if p is not None else "cpu")
        if x is None:
            x = self.prior_sample(n, shape, device, generator)
        eps = s["eps"]
        score_fn = self.score_fn(model, self.sampler_labels(len(x), device, generator, s, labels), s["guidance"],
                                 s["guidance_tmin"])
        with torch.no_grad():
            if s["method"] == "pc":
                return sde_samplers.pc_sampler(
                    self, score_fn, x, predictor=s["predictor"], corrector=s["corrector"], snr=s["snr"],
                    n_steps_each=s["n_steps_each"], N=s["N"], eps=eps, noise_removal=s["noise_removal"],
                    probability_flow=s["probability_flow"], generator=generator)
            if s["method"] != "ode":
                raise ValueError(f"sampling.method: {s['method']!r} is not 'ode' or 'pc'")
            x, nfe = sampling.odeint(sde_samplers.probability_flow_drift(self, score_fn), x, self.T, eps,
                                     solver=s["ode_solver"], steps=s["N"], rtol=s["rtol"], atol=s["atol"],
                                     max_nfe=s["max_nfe"])
            if s["noise_removal"]:
                x = sde_samplers.denoise(self, score_fn, x, eps, N=self.N)
                nfe += 1
            return x, nfe

    def trajectory(self, model, x, steps=100, labels=None):
        """The probability-flow ODE from T to eps by Heun (no final denoising step)."""
        s = self.sampling_options({})
        eps = s["eps"]
        times, states, record = self._recorder()
        score_fn = self.score_fn(model, labels, s["guidance"], s["guidance_tmin"])
        sampling.odeint(sde_samplers.probability_flow_drift(self, score_fn), x, self.T, eps, solver="heun",
                        steps=steps, max_nfe=s["max_nfe"], callback=record)
        return torch.tensor(times, dtype=torch.float64), torch.stack(states)

    def prior_radius(self, dim):
        """sqrt(dim) times the prior's standard deviation."""
        return math.sqrt(dim) * float(self.prior_std())

    def probability_flow(self, model):
        """dx/dt = f - g^2 score / 2 from likelihood_eps to T, and the Gaussian prior."""
        return ProbabilityFlow(sde_samplers.probability_flow_drift(self, self.score_fn(model)),
                               self.likelihood_eps, self.T, self.prior_logp)


class VESDE(SDE):
    """Variance exploding: sigma(t) = sigma_min (sigma_max / sigma_min)^t, f = 0,
    g = sigma(t) sqrt(2 log(sigma_max / sigma_min)). Kernel N(x0, sigma(t)^2 I); prior N(0, sigma_max^2 I)."""

    name = "vesde"

    def __init__(self, config):
        super().__init__(config)
        m = config.model
        self.sigma_min, self.sigma_max = float(m.sigma_min), float(m.sigma_max)
        self.divide_by_sigma = bool(m.scale_by_sigma) and m.name in SCALED_BY_METHOD

    @classmethod
    def check_config(cls, config):
        super().check_config(config)
        lo, hi = config.model.get("sigma_min"), config.model.get("sigma_max")
        if lo is None or hi is None or not 0 < lo < hi:
            raise ValueError(f"model.sigma_min: need 0 < sigma_min < sigma_max, got {lo!r}, {hi!r}")

    def sigma(self, t):
        return self.sigma_min * (self.sigma_max / self.sigma_min) ** t

    def sde(self, x, t):
        g = self.sigma(_times(t, x)) * math.sqrt(2 * math.log(self.sigma_max / self.sigma_min))
        return torch.zeros_like(x), g

    def mean_coeff(self, t):
        return torch.ones_like(t)

    def marginal_std(self, t):
        return self.sigma(t)

    def prior_std(self):
        return self.sigma_max

    def discrete_sigmas(self, N, x):
        return torch.exp(torch.linspace(math.log(self.sigma_min), math.log(self.sigma_max), N,
                                        dtype=x.dtype, device=x.device))

    def discretize(self, x, t, N=None):
        """SMLD: f = 0, G = sqrt(sigma_i^2 - sigma_{i-1}^2), sigma_{-1} = 0."""
        N = N or self.N
        sigmas, i = self.discrete_sigmas(N, x), self._index(t, x, N)
        prev = torch.where(i == 0, torch.zeros_like(sigmas[i]), sigmas[(i - 1).clamp_min(0)])
        return torch.zeros_like(x), torch.sqrt(sigmas[i] ** 2 - prev ** 2)

    def network_cond(self, t):
        return self.sigma(t)

    def output_to_score(self, out, t):
        return out / per_sample(self.sigma(t), out) if self.divide_by_sigma else out


class VPSDE(SDE):
    """Variance preserving: beta(t) = beta_min + t (beta_max - beta_min), f = -beta x / 2, g = sqrt(beta).
    Kernel N(a x0, (1 - a^2) I) with log a = -t^2 (beta_max - beta_min) / 4 - t beta_min / 2; prior N(0, I)."""

    name = "vpsde"

    def __init__(self, config):
        super().__init__(config)
        self.beta_min, self.beta_max = float(config.model.beta_min), float(config.model.beta_max)

    @classmethod
    def check_config(cls, config):
        super().check_config(config)
        lo, hi = config.model.get("beta_min"), config.model.get("beta_max")
        if lo is None or hi is None or not 0 < lo <= hi:
            raise ValueError(f"model.beta_min: need 0 < beta_min <= beta_max, got {lo!r}, {hi!r}")

    def beta(self, t):
        return self.beta_min + t * (self.beta_max - self.beta_min)

    def log_mean_coeff(self, t):
        return -0.25 * t ** 2 * (self.beta_max - self.beta_min) - 0.5 * t * self.beta_min

    def sde(self, x, t):
        beta = self.beta(_times(t, x))
        return -0.5 * per_sample(beta, x) * x, torch.sqrt(beta)

    def mean_coeff(self, t):
        return torch.exp(self.log_mean_coeff(t))

    def marginal_std(self, t):
        return torch.sqrt(-torch.expm1(2 * self.log_mean_coeff(t)))

    def discrete_alphas(self, N, x):
        if self.beta_max / N >= 1:
            raise ValueError(f"the DDPM discretization needs N > beta_max = {self.beta_max} steps, got N={N}")
        betas = torch.linspace(self.beta_min / N, self.beta_max / N, N, dtype=x.dtype, device=x.device)
        return 1.0 - betas

    def discretize(self, x, t, N=None):
        """DDPM: beta_i = linspace(beta_min / N, beta_max / N, N); f = (sqrt(alpha_i) - 1) x, G = sqrt(beta_i)."""
        N = N or self.N
        alpha = self.discrete_alphas(N, x)[self._index(t, x, N)]
        return (per_sample(torch.sqrt(alpha), x) - 1) * x, torch.sqrt(1 - alpha)

    def corrector_alpha(self, t, x, N):
        return self.discrete_alphas(N, x)[self._index(t, x, N)]

    def network_cond(self, t):
        return t * 999

    def output_to_score(self, out, t):
        return -out / per_sample(self.marginal_std(t), out)


class subVPSDE(VPSDE):
    """sub-VP: VP's drift, g = sqrt(beta(t) (1 - a(t)^4)); kernel N(a x0, (1 - a^2)^2 I); prior N(0, I).
    No closed-form discretization: the reverse-diffusion predictor uses Euler-Maruyama's (as the original)."""

    name = "subvpsde"

    def sde(self, x, t):
        t = _times(t, x)
        beta = self.beta(t)
        return -0.5 * per_sample(beta, x) * x, torch.sqrt(beta * -torch.expm1(4 * self.log_mean_coeff(t)))

    def marginal_std(self, t):
        return -torch.expm1(2 * self.log_mean_coeff(t))

    discretize = SDE.discretize
