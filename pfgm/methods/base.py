"""The interface every method implements."""
import abc


class Method(abc.ABC):
    """A generative method: its loss on a data batch and its sampler from the prior."""

    def __init__(self, config):
        self.config = config

    @abc.abstractmethod
    def loss(self, model, batch, generator=None):
        """Scalar training loss of `model` on `batch` ((B_L, *shape), model space)."""

    @abc.abstractmethod
    def prior_sample(self, n, shape, device, generator=None):
        """(n, *shape) starting points of the sampler."""

    @abc.abstractmethod
    def sample(self, model, n, shape, *, x=None, generator=None, **overrides):
        """Draw n samples (or carry the given starting points x); returns (samples, nfe).

        `overrides` replace `config.sampling` entries for this call (e.g. ode_solver='euler', N=20).
        """

    def sampling_options(self, overrides):
        opts = dict(self.config.sampling)
        unknown = set(overrides) - set(opts)
        if unknown:
            raise ValueError(f"unknown sampling options {sorted(unknown)}")
        opts.update(overrides)
        return opts
