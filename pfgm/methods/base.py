"""The interface every method implements."""
import abc
from typing import Callable, NamedTuple

import numpy as np
import torch

from pfgm.config_checks import ConfigError, number
from pfgm.methods import conditioning
from pfgm.seeds import StackedGenerator


class ProbabilityFlow(NamedTuple):
    """A method's deterministic map between data and prior, for likelihoods.

    drift(x, t) is dx/dt; the data sit at t_data, the prior at t_prior, with log-density prior_logp
    ((B, ...) -> (B,)). The solver runs from t_data to t_prior.
    """
    drift: Callable
    t_data: float
    t_prior: float
    prior_logp: Callable


class Method(abc.ABC):
    """A generative method: its loss on a data batch and its sampler from the prior."""

    time_name = "t"          # what the sampler's ODE time is called (PFGM: z)
    sampling_keys = ()       # the config.sampling keys the method reads: all must be in the config

    def __init__(self, config):
        self.config = config
        self.label_dim = int(config.model.label_dim)

    @classmethod
    def check_config(cls, config):
        """Raise ValueError naming the key for a config this method cannot run. The base class checks
        that every key of `sampling_keys` is there (defaults live in the configs, not in the code)."""
        missing = [k for k in cls.sampling_keys if k not in config.sampling]
        if missing:
            raise ValueError(f"sampling.{missing[0]}: missing from the config; the {cls.__name__} sampler "
                             f"reads {', '.join(cls.sampling_keys)}")
        check_labels(config)

    @abc.abstractmethod
    def loss(self, model, batch, generator=None, shard=None, labels=None, augment_labels=None):
        """Scalar training loss of `model` on `batch` ((B_L, *shape), model space).

        shard=(rank, world): the batch is the global one, gathered from all ranks; the random draws
        are made for all of it (so they do not depend on how it is split) and the loss is the mean
        over this rank's equal share of the trained points. Averaging the ranks' gradients then gives
        exactly the single-process gradient.
        labels: LongTensor (B_L,) of the batch's classes (a conditional model: model.label_dim > 0);
        the method drops them to NULL with probability training.label_dropout, with `generator`, after
        its other draws. augment_labels: (B_L, augment_dim) handed to the network as they are.
        """

    # ---- labels ---------------------------------------------------------------------------------
    def net(self, model, x, cond, labels=None, augment_labels=None):
        """model(x, cond), with the one-hot labels (NULL rows: zeros; None: all NULL) when the model is
        conditional; an unconditional model is called exactly as before labels existed."""
        kwargs = {}
        if self.label_dim:
            if labels is None:
                labels = torch.full((len(x),), conditioning.NULL, dtype=torch.long, device=x.device)
            kwargs["class_labels"] = conditioning.one_hot(labels, self.label_dim, x.dtype)
        if augment_labels is not None:
            kwargs["augment_labels"] = augment_labels.to(x.dtype)
        return model(x, cond, **kwargs)

    def train_labels(self, labels, n, generator):
        """The first n labels (the trained points'), dropped to NULL with training.label_dropout; None
        for an unconditional model (nothing is drawn then, so its random streams are unchanged)."""
        if not self.label_dim or labels is None:
            return None
        return conditioning.drop(labels[:n], float(self.config.training.label_dropout), generator)

    def sampler_labels(self, n, device, generator, s, labels=None):
        """The labels of n samples: `labels` when given, else those sampling.class_label asks for
        (drawn with `generator` when random); None for an unconditional model."""
        if not self.label_dim:
            return None
        if labels is not None:
            return labels.to(device)
        return conditioning.asked_labels(n, self.label_dim, s["class_label"], generator, device)

    @abc.abstractmethod
    def prior_sample(self, n, shape, device, generator=None):
        """(n, *shape) starting points of the sampler."""

    @abc.abstractmethod
    def sample(self, model, n, shape, *, x=None, generator=None, labels=None, **overrides):
        """Draw n samples (or carry the given starting points x); returns (samples, nfe).

        `overrides` replace `config.sampling` entries for this call (e.g. ode_solver='euler', N=20).
        A conditional model samples the classes `labels` ((n,) LongTensor) or, without them, those of
        sampling.class_label, guided by sampling.guidance (`conditioning.guided`).
        """

    def sample_in_batches(self, model, n, shape, batch_size=None, *, generator=None, seeds=None, device=None,
                          convert=None, on_batch=None, labels=None, **overrides):
        """n samples drawn `batch_size` at a time (default all at once), the generator running on from
        batch to batch; or, given `seeds` (n of them), image i drawn from its own generator seeded with
        seeds[i] (pfgm.seeds.StackedGenerator): the same seeds then give the same images whatever the
        batch size. convert(x) maps each batch as it comes (default: float32 numpy on the CPU);
        on_batch(done, nfe) reports progress; labels (n,): the class of each sample (conditional models).
        Returns (the converted batches concatenated, [nfe per batch])."""
        convert = convert or (lambda x: x.float().cpu().numpy())
        if seeds is not None:
            seeds = [int(s) for s in seeds]
            if len(seeds) != n:
                raise ValueError(f"{len(seeds)} image seeds for {n} samples")
            device = device or next(model.parameters()).device
        batch_size = batch_size or n
        parts, nfes, done = [], [], 0
        while done < n:
            k = min(batch_size, n - done)
            if seeds is not None:
                generator = StackedGenerator(seeds[done:done + k], device)
            with torch.no_grad():
                part = None if labels is None else labels[done:done + k]
                x, nfe = self.sample(model, k, shape, generator=generator, device=device, labels=part, **overrides)
            parts.append(convert(x))
            nfes.append(nfe)
            done += k
            if on_batch is not None:
                on_batch(done, nfe)
        return np.concatenate(parts), nfes

    @abc.abstractmethod
    def trajectory(self, model, x, steps=100, labels=None):
        """The deterministic sampler's path from the prior points x, by Heun on `steps` intervals:
        (times (steps + 1,) float64, states (steps + 1, *x.shape) on the CPU). `time_name` names t;
        labels: the classes of a conditional model's paths (guided as `sample`)."""

    @abc.abstractmethod
    def prior_radius(self, dim):
        """A typical norm of the prior's starting points in `dim` dimensions (interpolation, rescaling)."""

    @abc.abstractmethod
    def probability_flow(self, model):
        """The `ProbabilityFlow` of `model` under this method (config.sampling's ODE settings)."""

    @staticmethod
    def shard_slice(n, shard):
        """This rank's contiguous share of n items."""
        if shard is None:
            return slice(0, n)
        rank, world = shard
        if n % world:
            raise ValueError(f"{n} trained points do not split evenly over {world} ranks")
        size = n // world
        return slice(rank * size, (rank + 1) * size)

    @staticmethod
    def _recorder():
        times, states = [], []

        def record(t, x):
            times.append(float(t))
            states.append(x.detach().cpu())

        return times, states, record

    def sampling_options(self, overrides):
        """The sampler's settings for one call: config.sampling, with `overrides` (keys of config.sampling,
        e.g. ode_solver='euler', N=20) replacing entries."""
        unknown = set(overrides) - set(self.config.sampling)
        if unknown:
            raise ValueError(f"unknown sampling options {sorted(unknown)}; known: {sorted(self.config.sampling)}")
        return {**self.config.sampling, **overrides}


def check_labels(config):
    """The label keys every method reads: model.label_dim, training.label_dropout, sampling.class_label
    and sampling.guidance (ConfigError naming the key)."""
    label_dim = number(config, "model.label_dim", low=0, integer=True)
    p = number(config, "training.label_dropout", low=0)
    if p >= 1:
        raise ConfigError(f"training.label_dropout: a probability below 1, got {p!r}")
    c = number(config, "sampling.class_label", low=-1, integer=True)
    if c >= 0 and c >= label_dim:
        raise ConfigError(f"sampling.class_label: class {c} of a model with model.label_dim = {label_dim} "
                          f"classes" + (" (an unconditional model: use -1)" if not label_dim else ""))
    w = number(config, "sampling.guidance", low=0)
    number(config, "sampling.guidance_tmin", low=0)
    if not label_dim and (w != 1 or p):
        key, value = ("sampling.guidance", w) if w != 1 else ("training.label_dropout", p)
        raise ConfigError(f"{key}: {value} needs a conditional model (model.label_dim > 0), but model.label_dim = 0")
