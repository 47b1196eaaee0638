"""Sample-quality numbers that need no pretrained network: for low-dimensional data."""
import math

import torch


def sliced_wasserstein(x, y, num_projections=256, generator=None):
    """Sliced 2-Wasserstein distance between two equal-size sample sets (n, d).

    The mean over random unit directions of the 1-D W2 distance between the projected samples
    (sorted-order matching), square-rooted.
    """
    x, y = _pair(x, y)
    dirs = torch.randn(x.shape[1], num_projections, generator=generator, dtype=torch.float64)
    dirs = dirs / dirs.norm(dim=0, keepdim=True)
    px, _ = torch.sort(x @ dirs, dim=0)
    py, _ = torch.sort(y @ dirs, dim=0)
    return math.sqrt(((px - py) ** 2).mean().item())


def mmd_rbf(x, y, bandwidths=(0.05, 0.1, 0.2, 0.5, 1.0)):
    """Squared maximum mean discrepancy with a sum of Gaussian kernels (unbiased estimate)."""
    x, y = _pair(x, y)
    n = x.shape[0]
    xx, yy, xy = torch.cdist(x, x) ** 2, torch.cdist(y, y) ** 2, torch.cdist(x, y) ** 2
    k = lambda d: sum(torch.exp(-d / (2 * h * h)) for h in bandwidths)
    off = 1.0 - torch.eye(n, dtype=torch.float64)
    kxx = (k(xx) * off).sum() / (n * (n - 1))
    kyy = (k(yy) * off).sum() / (n * (n - 1))
    return (kxx + kyy - 2 * k(xy).mean()).item()


FAR_FACTOR = 2.0


def data_radius(reference):
    """(center, radius) of a point set (n, d): its mean and the largest distance of a point from it."""
    ref = torch.as_tensor(reference, dtype=torch.float64).reshape(len(reference), -1)
    center = ref.mean(0)
    return center, (ref - center).norm(dim=1).max().item()


def far_from_data(samples, reference, factor=FAR_FACTOR):
    """(n,) bool: the samples that end far outside the data, farther from the reference's mean than
    `factor` times its radius (`data_radius`). A few steps of a sampler can leave the heavy-tailed
    prior's farthest draws stranded there, and one such point can dominate SW and MMD."""
    center, radius = data_radius(reference)
    x = torch.as_tensor(samples, dtype=torch.float64).reshape(len(samples), -1)
    return (x - center).norm(dim=1) > factor * radius


def points_quality(samples, reference, generator=None):
    """Sliced W and MMD of low-dimensional samples against an equal-size reference, and how many
    samples are far from the data (`far_from_data`); when some are, both numbers again without them
    (against as many reference points), as `*_without_far`."""
    flat, ref = samples.reshape(len(samples), -1), reference.reshape(len(reference), -1)
    n = min(len(flat), 5000)  # MMD is quadratic in n (5000: ~1 GB, a few seconds)
    state = generator.get_state() if generator is not None else None
    out = dict(sliced_wasserstein=sliced_wasserstein(flat, ref, generator=generator),
               mmd=mmd_rbf(flat[:n], ref[:n]))
    far = far_from_data(flat, ref)
    out["far_samples"] = int(far.sum())
    near = flat[~far.numpy()]
    if out["far_samples"] and len(near) >= 2:
        if state is not None:  # the same projections as the number with them
            generator.set_state(state)
        m = min(len(near), 5000)
        out.update(sliced_wasserstein_without_far=sliced_wasserstein(near, ref[:len(near)], generator=generator),
                   mmd_without_far=mmd_rbf(near[:m], ref[:m]))
    return out


def _pair(x, y):
    x = torch.as_tensor(x, dtype=torch.float64).reshape(len(x), -1)
    y = torch.as_tensor(y, dtype=torch.float64).reshape(len(y), -1)
    if x.shape != y.shape or len(x) < 2:
        raise ValueError(f"need two sample sets of equal shape with n >= 2, got {tuple(x.shape)} and {tuple(y.shape)}")
    return x, y
