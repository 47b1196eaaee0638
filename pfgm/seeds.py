"""Every random stream of pfgm, named in one table.

Training draws step k's randomness from step_seed(config.seed, k, STREAM[, rank]), so a resumed run
repeats the interrupted one. Evaluation streams are config.seed + OFFSET (the original's habit) or,
for the likelihood and the pictures, a hashed key of their own, so no two streams coincide.
"""
import numpy as np

# step_seed streams of training step k
TRAIN_DATA = 0        # the step's data batch (per rank)
TRAIN_NOISE = 1       # the method's perturbation noise
TRAIN_TORCH = 2       # the global torch generator (dropout), per rank
TRAIN_AUGMENT = 3     # the augmentation pipe's draws (the global batch, the same on every rank)

# config.seed + offset
SAMPLES = 0           # eval samples (and the experiment driver's)
EVAL_LOSS = 3         # the eval loss's noise (training's periodic eval loss too)
SNAPSHOT = 4          # training's snapshot samples
HELD_OUT = 5          # reference points drawn from the toy densities

# hashed keys (seed(config.seed, KEY, ...))
LIKELIHOOD_PROBES = 1
LIKELIHOOD_DEQUANTIZE = 2   # with the pass number
INTERPOLATION = 3
RESCALE = 4
TRAJECTORIES = 5


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
