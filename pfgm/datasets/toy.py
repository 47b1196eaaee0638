"""Two-dimensional toy distributions, drawn fresh in code (no file), and 2-D points from a file."""
import math
import os

import numpy as np
import torch

from pfgm.datasets import DataError


def checkerboard(n, g):
    """Uniform on the 8 dark squares of a 4×4 board on [-2, 2]^2."""
    x1 = torch.rand(n, generator=g) * 4 - 2
    x2 = torch.rand(n, generator=g) - torch.randint(0, 2, (n,), generator=g) * 2.0
    x2 = x2 + torch.floor(x1) % 2
    return torch.stack([x1, x2], 1)


def moons(n, g):
    """Two interleaved half circles with Gaussian noise 0.05, centred and scaled to about [-2, 2]."""
    t = torch.rand(n, generator=g) * math.pi
    upper = torch.rand(n, generator=g) < 0.5
    x = torch.where(upper, torch.cos(t), 1 - torch.cos(t))
    y = torch.where(upper, torch.sin(t), 0.5 - torch.sin(t))
    pts = torch.stack([x, y], 1) + 0.05 * torch.randn(n, 2, generator=g)
    return (pts - torch.tensor([0.5, 0.25])) * 1.6


def heart(n, g):
    """The classic heart curve 16 sin^3 t, 13 cos t - 5 cos 2t - 2 cos 3t - cos 4t, scaled by 1/9,
    with Gaussian noise 0.04."""
    t = torch.rand(n, generator=g) * 2 * math.pi
    x = 16 * torch.sin(t) ** 3
    y = 13 * torch.cos(t) - 5 * torch.cos(2 * t) - 2 * torch.cos(3 * t) - torch.cos(4 * t)
    return torch.stack([x, y], 1) / 9 + 0.04 * torch.randn(n, 2, generator=g)


def eight_gaussians(n, g):
    """Eight Gaussians (std 0.1) evenly spaced on the circle of radius 1.5."""
    k = torch.randint(0, 8, (n,), generator=g).float() * (2 * math.pi / 8)
    centres = 1.5 * torch.stack([torch.cos(k), torch.sin(k)], 1)
    return centres + 0.1 * torch.randn(n, 2, generator=g)


def swiss_roll(n, g):
    """A 2-D swiss roll spiral with noise 0.05, scaled to about [-2, 2]."""
    t = 1.5 * math.pi * (1 + 2 * torch.rand(n, generator=g))
    pts = torch.stack([t * torch.cos(t), t * torch.sin(t)], 1) / 7.0
    return pts + 0.05 * torch.randn(n, 2, generator=g)


TOYS = dict(checkerboard=checkerboard, moons=moons, heart=heart, eight_gaussians=eight_gaussians,
            swiss_roll=swiss_roll)


class ToyDataset:
    """An endless stream of fresh samples; held-out data is drawn from its own generator."""

    shape = (2,)

    def __init__(self, sampler, name):
        self.sampler, self.name = sampler, name

    def train_batches(self, batch_size, generator):
        while True:
            yield self.sampler(batch_size, generator)

    def eval_data(self, n, generator):
        return self.sampler(n, generator)


class PointsDataset:
    """A fixed set of points (n, d) read from .npy, .npz (first array) or .csv/.txt; 10% held out."""

    def __init__(self, points, name):
        self.name = name
        self.shape = tuple(points.shape[1:])
        split = max(1, len(points) // 10)
        self.eval_points, self.train_points = points[:split], points[split:]

    def train_batches(self, batch_size, generator):
        n = len(self.train_points)
        while True:
            yield self.train_points[torch.randint(0, n, (batch_size,), generator=generator)]

    def eval_data(self, n, generator):
        idx = torch.randint(0, len(self.eval_points), (n,), generator=generator)
        return self.eval_points[idx]


def make(config):
    shape = tuple(config.data.get("shape", ToyDataset.shape))
    if shape != ToyDataset.shape:
        raise DataError(f"data.shape: the {config.data.dataset!r} density is 2-D, so data.shape must be (2,); "
                        f"got {shape}")
    return ToyDataset(TOYS[config.data.dataset], config.data.dataset)


def read_points(path):
    if not path or not os.path.isfile(path):
        raise DataError(f"data.path: no such file {path!r}")
    try:
        if path.endswith(".npy"):
            arr = np.load(path, allow_pickle=False)
        elif path.endswith(".npz"):
            with np.load(path, allow_pickle=False) as f:
                arr = f[f.files[0]]
        else:
            arr = np.loadtxt(path, delimiter="," if path.endswith(".csv") else None, ndmin=2)
    except Exception as e:  # numpy raises many kinds for a bad file
        raise DataError(f"data.path: cannot read points from {path!r}: {e}") from e
    if arr.ndim != 2 or len(arr) < 10 or not np.issubdtype(arr.dtype, np.number):
        raise DataError(f"data.path: {path!r} must hold a numeric (n >= 10, d) array, got shape {arr.shape}")
    if np.iscomplexobj(arr):
        raise DataError(f"data.path: {path!r} holds complex numbers ({arr.dtype}); points must be real")
    if not np.isfinite(arr).all():
        raise DataError(f"data.path: {path!r} contains NaN or infinite values")
    with np.errstate(over="ignore"):
        arr32 = arr.astype(np.float32)
    if not np.isfinite(arr32).all():
        raise DataError(f"data.path: {path!r} holds values beyond float32's range (|x| > 3.4e38)")
    return torch.as_tensor(arr32)


def load_points(config):
    pts = read_points(config.data.path)
    if tuple(pts.shape[1:]) != tuple(config.data.shape):
        raise DataError(f"data.path: {config.data.path!r} holds points of shape {tuple(pts.shape[1:])}, "
                        f"but data.shape is {tuple(config.data.shape)}")
    return PointsDataset(pts, "points")
