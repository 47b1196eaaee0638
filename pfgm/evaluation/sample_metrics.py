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


def _pair(x, y):
    x = torch.as_tensor(x, dtype=torch.float64).reshape(len(x), -1)
    y = torch.as_tensor(y, dtype=torch.float64).reshape(len(y), -1)
    if x.shape != y.shape or len(x) < 2:
        raise ValueError(f"need two sample sets of equal shape with n >= 2, got {tuple(x.shape)} and {tuple(y.shape)}")
    return x, y
