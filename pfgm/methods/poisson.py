"""PFGM as a method: the field-regression loss (Sec. 3.2) and the backward-ODE sampler (Sec. 3.3)."""
import math

import torch

from pfgm import poisson, sampling
from pfgm.methods.base import Method, ProbabilityFlow

# Original names of the solvers, kept as aliases so old configs run unchanged.
SOLVER_ALIASES = {"forward_euler": "euler", "improved_euler": "heun"}


class Poisson(Method):
    """Config keys: training.{small_batch_size, M, tau, gamma, restrict_M, reduce_mean},
    model.sigma_end, sampling.{ode_solver, N, z_max, z_min, upper_norm, z_exp, rtol, atol}."""

    name = "poisson"

    def loss(self, model, batch, generator=None, shard=None):
        t = self.config.training
        small = batch[: t.small_batch_size]
        x_aug = poisson.perturb(small, t.M, t.tau, self.config.model.sigma_end,
                                restrict_M=t.restrict_M, generator=generator)
        mine = self.shard_slice(len(small), shard)
        small, x_aug = small[mine], x_aug[mine]
        with torch.no_grad():
            # every charge of the (global) batch, the trained points' own among them
            target = poisson.field_target(x_aug, batch, t.gamma)
        x_in = x_aug[:, :-1].reshape(small.shape)
        # The target uses the true z; the network never sees z = 0 (log z embeddings).
        z_in = x_aug[:, -1].clamp_min(1e-10)
        v_x, v_z = model(x_in, z_in)
        pred = torch.cat([v_x.reshape(len(small), -1), v_z.reshape(-1, 1)], dim=1)
        sq = (pred - target) ** 2
        per_sample = sq.mean(1) if t.reduce_mean else 0.5 * sq.sum(1)
        return per_sample.mean()

    def prior_sample(self, n, shape, device, generator=None):
        s = self.config.sampling
        x = poisson.sample_prior(n, math.prod(shape), s.z_max, s.upper_norm, generator=generator, device=device)
        return x.reshape(n, *shape)

    def field_fn(self, model):
        """(x, z) -> (v_x, v_z) of the network, in x's dtype whatever the network's."""
        dtype = next(model.parameters()).dtype

        def field_fn(xt, z):
            v_x, v_z = model(xt.to(dtype), z.to(dtype))
            return v_x.to(xt.dtype), v_z.to(xt.dtype)

        return field_fn

    def sample(self, model, n, shape, *, x=None, generator=None, device=None, **overrides):
        s = self.sampling_options(overrides)
        device = device or next(model.parameters()).device
        if x is None:
            x = self.prior_sample(n, shape, device, generator)
        solver = SOLVER_ALIASES.get(s["ode_solver"], s["ode_solver"])
        with torch.no_grad():
            return sampling.backward_ode(
                self.field_fn(model), x, z_max=s["z_max"], z_min=s["z_min"], solver=solver, steps=s["N"],
                rtol=s["rtol"], atol=s["atol"], z_exp=s.get("z_exp"), gamma=self.config.training.gamma)

    def probability_flow(self, model):
        """The backward ODE in t = log z, from the samples' plane z_min up to z_max, where the data
        have the point-charge law (unclipped: upper_norm only shapes sampling). The z-substitution
        applies below sampling.z_exp, as in sampling (the original hard-codes z_exp = 5 here)."""
        s = self.config.sampling
        drift = sampling.pfgm_drift(self.field_fn(model), z_exp=s.get("z_exp"), gamma=self.config.training.gamma)
        return ProbabilityFlow(drift, math.log(s.z_min), math.log(s.z_max),
                               lambda x: poisson.prior_logp(x, s.z_max))
