"""Every random stream of pfgm, named in one table.

Training draws step k's randomness from step_seed(config.seed, k, STREAM[, rank]), so a resumed run
repeats the interrupted one. Evaluation streams are config.seed + OFFSET (the original's habit) or,
for the likelihood and the pictures, a hashed key of their own, so no two streams coincide.

Per-image seeds (EDM's generate.py --seeds): `StackedGenerator(seeds)` holds one torch.Generator per
image, and every sampler draws its random numbers through `randn` / `rand` / `randint` below, which
take either kind of generator. With a stacked one, image i's numbers come from its own generator only,
so the same seeds give the same images whatever the batch size or the number of processes (for the
fixed-step samplers, up to the rounding of batched float products; RK45 shares its step size over a
batch, and score_sde's Langevin corrector its step's norms).
"""
import numpy as np
import torch

# step_seed streams of training step k
TRAIN_DATA = 0        # the step's data draw (global: rank 0's key; each rank takes its slice)
TRAIN_NOISE = 1       # the method's perturbation noise
TRAIN_TORCH = 2       # the global torch generator (dropout), per rank
TRAIN_AUGMENT = 3     # the augmentation pipe's draws (the global batch, the same on every rank)
TRAIN_EPOCH = 4       # the permutation of the training images in epoch e (step_seed(seed, e, TRAIN_EPOCH))
TRAIN_DEQUANTIZE = 5  # the step's uniform dequantization noise (drawn on the device)

# config.seed + offset
SAMPLES = 0           # eval samples (and the experiment driver's)
EVAL_LOSS = 3         # the eval loss's noise (training's periodic eval loss too)
HELD_OUT = 5          # reference points drawn from the toy densities

# hashed keys (seed(config.seed, KEY, ...))
LIKELIHOOD_PROBES = 1
LIKELIHOOD_DEQUANTIZE = 2   # with the pass number
INTERPOLATION = 3
RESCALE = 4
TRAJECTORIES = 5
SNAPSHOT_IMAGES = 6         # the first per-image seed of training's snapshot samples
SAMPLE_LABELS = 7           # the classes asked of a conditional model's samples (sampling.class_label = -1)


def step_seed(*keys):
    """A 63-bit seed determined by the keys (seed, step, stream, rank...): the random draws of a step
    depend on nothing but these, so a resumed run repeats the interrupted one exactly."""
    return int(np.random.SeedSequence([int(k) for k in keys]).generate_state(2, np.uint64)[0] >> np.uint64(1))


def offset(seed, stream):
    """config.seed + stream, the seed of a plain evaluation stream."""
    return seed + stream


def hashed(seed, *key):
    """A seed of its own for (config.seed, KEY, ...), apart from every offset stream."""
    return int(np.random.SeedSequence([7919, seed, *key]).generate_state(1)[0])


class StackedGenerator:
    """One torch.Generator per image, seeded with that image's seed (EDM's StackedRandomGenerator): the
    draws of `randn` / `rand` / `randint` for a batch are the stacked draws of each image's generator."""

    def __init__(self, image_seeds, device="cpu"):
        self.seeds = [int(s) for s in image_seeds]
        if any(s < 0 for s in self.seeds):
            raise ValueError(f"image seeds must be >= 0, got {min(self.seeds)}")
        self.device = torch.device(device)
        self.generators = [torch.Generator(self.device).manual_seed(s) for s in self.seeds]

    def __len__(self):
        return len(self.generators)

    def draw(self, fn, shape, **kwargs):
        shape = tuple(shape)
        if not shape or shape[0] != len(self.generators):
            raise ValueError(f"a draw of shape {shape} from {len(self.generators)} image generators: the first "
                             "dimension must be the images")
        return torch.stack([fn(shape[1:], generator=g, **kwargs) for g in self.generators])


def _draw(fn, shape, generator, kwargs):
    if isinstance(generator, StackedGenerator):
        return generator.draw(fn, shape, **kwargs)
    return fn(tuple(shape), generator=generator, **kwargs)


def randn(shape, generator=None, **kwargs):
    """torch.randn(shape, generator=generator, **kwargs), per image when generator is a StackedGenerator."""
    return _draw(torch.randn, shape, generator, kwargs)


def rand(shape, generator=None, **kwargs):
    """torch.rand, as `randn`."""
    return _draw(torch.rand, shape, generator, kwargs)


def randint(high, shape, generator=None, **kwargs):
    """torch.randint(high, shape, ...), as `randn`."""
    return _draw(lambda size, **kw: torch.randint(high, size, **kw), shape, generator, kwargs)


def image_seeds(first, n):
    """The per-image seeds first, ..., first + n - 1 (EDM's --seeds=first-(first+n-1))."""
    return list(range(int(first), int(first) + int(n)))
