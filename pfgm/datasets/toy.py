"""Two-dimensional toy distributions, drawn fresh in code (no file), and 2-D points from a file.

The densities with parts have class labels, computed from the same random draws as the points (so an
unconditional run draws exactly what it drew before labels existed): eight_gaussians (k: the component at
angle 2 pi k / 8), checkerboard (the dark square, 0-7, row-major from the bottom left), moons (0 upper,
1 lower). A points file (.npz) may hold a `labels` array beside the points."""
import math
import os
import warnings

import numpy as np
import torch

from pfgm.datasets import DataError


def checkerboard(n, g, labelled=False):
    """Uniform on the 8 dark squares of a 4×4 board on [-2, 2]^2; labelled: also the square's class,
    2 row + column // 2 counted from the bottom-left square (0, 1 on the bottom row, ..., 6, 7 on the top)."""
    x1 = torch.rand(n, generator=g) * 4 - 2
    u = torch.rand(n, generator=g)
    lower = torch.randint(0, 2, (n,), generator=g)
    odd = torch.floor(x1) % 2
    x2 = u - lower * 2.0 + odd
    pts = torch.stack([x1, x2], 1)
    if not labelled:
        return pts
    row = 2 - 2 * lower + odd.long()                      # floor(x2) + 2
    column = (torch.floor(x1).long() + 2).clamp(0, 3)     # floor(x1) + 2
    return pts, 2 * row + column // 2


def moons(n, g, labelled=False):
    """Two interleaved half circles with Gaussian noise 0.05, centred and scaled to about [-2, 2];
    labelled: also the class, 0 for the upper moon and 1 for the lower."""
    t = torch.rand(n, generator=g) * math.pi
    upper = torch.rand(n, generator=g) < 0.5
    x = torch.where(upper, torch.cos(t), 1 - torch.cos(t))
    y = torch.where(upper, torch.sin(t), 0.5 - torch.sin(t))
    pts = torch.stack([x, y], 1) + 0.05 * torch.randn(n, 2, generator=g)
    pts = (pts - torch.tensor([0.5, 0.25])) * 1.6
    return (pts, (~upper).long()) if labelled else pts


def heart(n, g):
    """The classic heart curve 16 sin^3 t, 13 cos t - 5 cos 2t - 2 cos 3t - cos 4t, scaled by 1/9,
    with Gaussian noise 0.04."""
    t = torch.rand(n, generator=g) * 2 * math.pi
    x = 16 * torch.sin(t) ** 3
    y = 13 * torch.cos(t) - 5 * torch.cos(2 * t) - 2 * torch.cos(3 * t) - torch.cos(4 * t)
    return torch.stack([x, y], 1) / 9 + 0.04 * torch.randn(n, 2, generator=g)


def eight_gaussians(n, g, labelled=False):
    """Eight Gaussians (std 0.1) evenly spaced on the circle of radius 1.5; labelled: also the component
    k of each point, the one centred at angle 2 pi k / 8."""
    k = torch.randint(0, 8, (n,), generator=g)
    angle = k.float() * (2 * math.pi / 8)
    centres = 1.5 * torch.stack([torch.cos(angle), torch.sin(angle)], 1)
    pts = centres + 0.1 * torch.randn(n, 2, generator=g)
    return (pts, k) if labelled else pts


def swiss_roll(n, g):
    """A 2-D swiss roll spiral with noise 0.05, scaled to about [-2, 2]."""
    t = 1.5 * math.pi * (1 + 2 * torch.rand(n, generator=g))
    pts = torch.stack([t * torch.cos(t), t * torch.sin(t)], 1) / 7.0
    return pts + 0.05 * torch.randn(n, 2, generator=g)


TOYS = dict(checkerboard=checkerboard, moons=moons, heart=heart, eight_gaussians=eight_gaussians,
            swiss_roll=swiss_roll)
# the classes of the densities that have parts (the others: none)
TOY_CLASSES = dict(checkerboard=8, moons=2, eight_gaussians=8)


def classify(name, points):
    """The class each 2-D point (n, 2) belongs to under the density `name` (numpy int array), the
    conditional samples' judge: eight_gaussians, the nearest component; checkerboard, the dark square it
    lies in (-1 on a light square or off the board); moons, the nearer of the two noiseless half circles.
    None for a density without classes."""
    pts = np.asarray(points, dtype=np.float64)
    if name == "eight_gaussians":
        angles = np.arange(8) * 2 * math.pi / 8
        centres = 1.5 * np.stack([np.cos(angles), np.sin(angles)], 1)
        return np.argmin(((pts[:, None, :] - centres[None]) ** 2).sum(-1), axis=1)
    if name == "checkerboard":
        column, row = np.floor(pts[:, 0]) + 2, np.floor(pts[:, 1]) + 2
        dark = (column + row) % 2 == 0
        inside = (column >= 0) & (column <= 3) & (row >= 0) & (row <= 3)
        return np.where(dark & inside, 2 * row + column // 2, -1).astype(np.int64)
    if name == "moons":
        t = np.linspace(0, math.pi, 400)
        curves = [np.stack([np.cos(t), np.sin(t)], 1), np.stack([1 - np.cos(t), 0.5 - np.sin(t)], 1)]
        dists = [np.min(((pts[:, None, :] - (c[None] - [0.5, 0.25]) * 1.6) ** 2).sum(-1), axis=1) for c in curves]
        return np.argmin(np.stack(dists, 1), axis=1)
    return None


class ToyDataset:
    """An endless stream of fresh samples; held-out data is drawn from its own generator.
    num_classes: the density's classes (0: none); labelled_sampler(n, g) -> (points, labels) then."""

    shape = (2,)

    def __init__(self, sampler, name):
        self.sampler, self.name = sampler, name
        self.num_classes = TOY_CLASSES.get(name, 0)

    def labelled_sampler(self, n, generator):
        """(n points, their LongTensor classes) from the same draws as sampler(n, generator)."""
        if not self.num_classes:
            return self.sampler(n, generator), None
        return self.sampler(n, generator, labelled=True)

    def train_batches(self, batch_size, generator, labels=False):
        """Endless fresh batches; labels: (points, their classes) instead, from the same draws."""
        while True:
            yield self.labelled_sampler(batch_size, generator) if labels else self.sampler(batch_size, generator)

    def eval_data(self, n, generator):
        return self.sampler(n, generator)

    def eval_labelled(self, n, generator):
        """(held-out points, their classes or None), drawn as eval_data(n, generator)."""
        return self.labelled_sampler(n, generator)


POINTS_SPLIT_SEED = 0


class PointsDataset:
    """A fixed set of points (n, d) read from .npy, .npz (first array) or .csv/.txt; a random 10% held out
    (a fixed permutation, each split in file order: a file sorted by class or along a curve still trains on
    every part of it). labels: optional (n,) LongTensor of classes 0..num_classes - 1 (num_classes = max + 1;
    0 without)."""

    def __init__(self, points, name, labels=None):
        self.name = name
        self.shape = tuple(points.shape[1:])
        split = max(1, len(points) // 10)
        perm = torch.randperm(len(points), generator=torch.Generator().manual_seed(POINTS_SPLIT_SEED))
        held, kept = perm[:split].sort().values, perm[split:].sort().values
        self.eval_points, self.train_points = points[held], points[kept]
        self.num_classes = 0 if labels is None else int(labels.max()) + 1
        self.eval_labels, self.train_labels = (None, None) if labels is None else (labels[held], labels[kept])
        if labels is not None:
            missing = sorted(set(range(self.num_classes)) - set(self.train_labels.tolist()))
            if missing:
                warnings.warn(f"{name}: no training point of class {missing} (labels run 0..{self.num_classes - 1}): "
                              "a conditional model never learns it")

    def train_batches(self, batch_size, generator, labels=False):
        """Endless batches drawn with replacement; labels: (points, their classes or None)."""
        n = len(self.train_points)
        while True:
            idx = torch.randint(0, n, (batch_size,), generator=generator)
            if labels:
                yield self.train_points[idx], None if self.train_labels is None else self.train_labels[idx]
            else:
                yield self.train_points[idx]

    def eval_data(self, n, generator):
        return self.eval_labelled(n, generator)[0]

    def eval_labelled(self, n, generator):
        """(n held-out points drawn with replacement, their classes or None)."""
        idx = torch.randint(0, len(self.eval_points), (n,), generator=generator)
        return self.eval_points[idx], None if self.eval_labels is None else self.eval_labels[idx]


def make(config):
    shape = tuple(config.data.get("shape", ToyDataset.shape))
    if shape != ToyDataset.shape:
        raise DataError(f"data.shape: the {config.data.dataset!r} density is 2-D, so data.shape must be (2,); "
                        f"got {shape}")
    return ToyDataset(TOYS[config.data.dataset], config.data.dataset)


def read_points(path, with_labels=False):
    """The (n, d) float32 points of a file; with_labels: (points, LongTensor labels or None), the labels
    being an .npz's `labels` array (the points: its first other array)."""
    if not path or not os.path.isfile(path):
        raise DataError(f"data.path: no such file {path!r}")
    labels = None
    try:
        if path.endswith(".npy"):
            arr = np.load(path, allow_pickle=False)
        elif path.endswith(".npz"):
            with np.load(path, allow_pickle=False) as f:
                names = [k for k in f.files if k != "labels"]
                arr = f[names[0]] if names else np.zeros(0)   # refused below as no (n, d) array
                labels = f["labels"] if "labels" in f.files else None
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
    points = torch.as_tensor(arr32)
    if not with_labels:
        return points
    return points, None if labels is None else _check_labels(labels, len(points), path)


def _check_labels(labels, n, path):
    """An .npz's `labels`: n integers >= 0, as a LongTensor; DataError naming the file otherwise."""
    if labels.shape != (n,) or not np.issubdtype(labels.dtype, np.integer):
        raise DataError(f"data.path: {path!r}: `labels` must be {n} integers (one per point), got "
                        f"{labels.dtype} of shape {labels.shape}")
    if n and labels.min() < 0:
        raise DataError(f"data.path: {path!r}: `labels` must be classes 0, 1, ..., got {int(labels.min())}")
    return torch.as_tensor(labels.astype(np.int64))


def load_points(config):
    pts, labels = read_points(config.data.path, with_labels=True)
    if tuple(pts.shape[1:]) != tuple(config.data.shape):
        raise DataError(f"data.path: {config.data.path!r} holds points of shape {tuple(pts.shape[1:])}, "
                        f"but data.shape is {tuple(config.data.shape)}")
    return PointsDataset(pts, "points", labels)
