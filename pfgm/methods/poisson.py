"""PFGM as a method: the field-regression loss (Sec. 3.2) and the backward-ODE sampler (Sec. 3.3)."""
import math

import torch

from pfgm import poisson, sampling
from pfgm.config_checks import number, ordered, trained_points
from pfgm.methods import conditioning
from pfgm.methods.base import Method, ProbabilityFlow


def check_sampler(s):
    """Raise ValueError naming the key for sampler settings PFGM cannot honour.

    sampling.method 'pc' is accepted only as the original runs it for PFGM: predictor
    'euler_maruyama' with zero diffusion and corrector 'none', i.e. the Euler step in z (NFE N).
    The original has no PFGM corrector (its Langevin correctors need a score), so a corrector is
    refused rather than silently skipped."""
    method = s["method"]
    if method == "pc":
        if s["predictor"] != "euler_maruyama":
            raise ValueError(f"sampling.predictor: PFGM's 'pc' sampler is the original's Euler step in z; "
                             f"only 'euler_maruyama' is defined for it, got {s['predictor']!r}")
        if s["corrector"] != "none":
            raise ValueError(f"sampling.corrector: PFGM has no corrector (the Langevin correctors need a "
                             f"score); use 'none', got {s['corrector']!r}")
    elif method == "ode":
        try:
            sampling.solver_name(s["ode_solver"])
        except ValueError as e:
            raise ValueError(f"sampling.ode_solver: {e}") from None
    else:
        raise ValueError(f"sampling.method: {method!r} is not 'ode' or 'pc'")


class Poisson(Method):
    """Config keys: training.{small_batch_size, M, tau, gamma, restrict_M, reduce_mean},
    model.sigma_end, sampling.{method, ode_solver, N, z_max, z_min, upper_norm, z_exp, rtol, atol, max_nfe}
    (method 'pc': predictor, corrector; see `check_sampler`).

    training.gamma serves the sampler too: the z-substitution below sampling.z_exp rebuilds v_z from the
    field's norm offset gamma (App. B.2.3), so the two must agree, as in the original (one key).

    Class labels (model.label_dim > 0; training.label_dropout, sampling.class_label, sampling.guidance): the
    field of the point's class's charges is the target, and guidance mixes the slopes dx/dz (`drift`)."""

    name = "poisson"
    time_name = "z"
    sampling_keys = ("method", "ode_solver", "N", "rtol", "atol", "z_max", "z_min", "upper_norm", "z_exp", "max_nfe",
                     "predictor", "corrector", "class_label", "guidance", "guidance_tmin")

    @classmethod
    def check_config(cls, config):
        """Raise ConfigError / ValueError (naming the key) for settings this method cannot run."""
        super().check_config(config)
        trained_points(config)
        number(config, "training.M", low=0, strict_low=True)
        number(config, "training.tau", low=0, strict_low=True)
        number(config, "training.gamma", low=0)
        number(config, "model.sigma_end", low=0, strict_low=True)
        ordered(config, "sampling.z_min", "sampling.z_max")
        number(config, "sampling.upper_norm", low=0, strict_low=True, allow_inf=True)
        check_sampler(dict(config.sampling))

    def loss(self, model, batch, generator=None, shard=None, labels=None, augment_labels=None):
        """The field regression of Sec. 3.2. With labels (a conditional model), a trained point of class
        c regresses the field of the batch's class-c charges, one whose label was dropped that of all of
        them (`poisson.class_field_target`)."""
        t = self.config.training
        small = batch[: t.small_batch_size]
        x_aug = poisson.perturb(small, t.M, t.tau, self.config.model.sigma_end,
                                restrict_M=t.restrict_M, generator=generator)
        kept = self.train_labels(labels, len(small), generator)
        mine = self.shard_slice(len(small), shard)
        small, x_aug = small[mine], x_aug[mine]
        with torch.no_grad():
            # every charge of the (global) batch, the trained points' own among them
            if kept is None:
                target = poisson.field_target(x_aug, batch, t.gamma)
            else:
                kept = kept[mine]
                target = poisson.class_field_target(x_aug, batch, t.gamma, kept, labels, check=False)
        x_in = x_aug[:, :-1].reshape(small.shape)
        # The target uses the true z; the network never sees z = 0 (log z embeddings).
        z_in = x_aug[:, -1].clamp_min(1e-10)
        aug = None if augment_labels is None else augment_labels[: t.small_batch_size][mine]
        v_x, v_z = self.net(model, x_in, z_in, kept, aug)
        pred = torch.cat([v_x.reshape(len(small), -1), v_z.reshape(-1, 1)], dim=1)
        sq = (pred - target) ** 2
        per_sample = sq.mean(1) if t.reduce_mean else 0.5 * sq.sum(1)
        return per_sample.mean()

    def prior_sample(self, n, shape, device, generator=None):
        s = self.config.sampling
        x = poisson.sample_prior(n, math.prod(shape), s.z_max, s.upper_norm, generator=generator, device=device)
        return x.reshape(n, *shape)

    def field_fn(self, model, labels=None):
        """(x, z) -> (v_x, v_z) of the network (for the classes `labels` of a conditional model; None:
        the null label), in x's dtype whatever the network's."""
        dtype = next(model.parameters()).dtype

        def field_fn(xt, z):
            v_x, v_z = self.net(model, xt.to(dtype), z.to(dtype), labels)
            return v_x.to(xt.dtype), v_z.to(xt.dtype)

        return field_fn

    def drift(self, model, labels=None, s=None):
        """dx/dz of the backward ODE (z-substitution below sampling.z_exp), guided for a conditional
        model: the slopes of the class and null branches, each with its own substitution, mixed as
        slope_u + w (slope_c - slope_u), w = sampling.guidance (`conditioning`, docs/conditional.md)."""
        s = s or self.sampling_options({})
        opts = dict(z_exp=s["z_exp"], gamma=self.config.training.gamma)
        plain = sampling.pfgm_drift(self.field_fn(model, labels), **opts)
        if labels is None or s["guidance"] == 1:
            return plain
        both = sampling.pfgm_drift(self.field_fn(model, conditioning.with_null(labels)), **opts)
        return conditioning.mixed(both, s["guidance"], s["guidance_tmin"], plain)

    def sample(self, model, n, shape, *, x=None, generator=None, device=None, labels=None, **overrides):
        s = self.sampling_options(overrides)
        device = device or next(model.parameters()).device
        if x is None:
            x = self.prior_sample(n, shape, device, generator)
        labels = self.sampler_labels(len(x), device, generator, s, labels)
        check_sampler(s)
        solver = "euler" if s["method"] == "pc" else s["ode_solver"]
        with torch.no_grad():
            return sampling.integrate_z(self.drift(model, labels, s), x, z_max=s["z_max"], z_min=s["z_min"],
                                        solver=solver, steps=s["N"], rtol=s["rtol"], atol=s["atol"],
                                        max_nfe=s["max_nfe"])

    def trajectory(self, model, x, steps=100, labels=None):
        """The field lines: Heun in z from z_max down to z_min, as `sample` (times are z)."""
        s = self.sampling_options({})
        times, states, record = self._recorder()
        sampling.integrate_z(self.drift(model, labels, s), x, z_max=s["z_max"], z_min=s["z_min"], solver="heun",
                             steps=steps, max_nfe=s["max_nfe"], callback=record)
        return torch.tensor(times, dtype=torch.float64), torch.stack(states)

    def prior_radius(self, dim):
        """sampling.upper_norm, the radius the original's interpolation uses."""
        return float(self.config.sampling.upper_norm)

    def probability_flow(self, model):
        """The backward ODE in t = log z, from the samples' plane z_min up to z_max, where the data
        have the point-charge law (unclipped: upper_norm only shapes sampling). The z-substitution
        applies below sampling.z_exp, as in sampling (the original hard-codes z_exp = 5 here).

        Log z, not z (as the fixed-step samplers): the divergence of dx/dz grows like N / z near the
        data, and fixed steps in z integrate it ~10x worse (tests/test_likelihood.py)."""
        s = self.config.sampling
        return ProbabilityFlow(sampling.in_log_time(self.drift(model)), math.log(s.z_min), math.log(s.z_max),
                               lambda x: poisson.prior_logp(x, s.z_max))
