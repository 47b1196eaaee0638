"""Starting points on the prior for the two pictures of the original's eval loop (`run_lib.py`).

Both are carried to the data by the method's deterministic sampler (`method.sample(..., x=starts)`),
which is invertible, so neighbouring starting points give neighbouring samples:
  * interpolation: per row, two random directions joined by a spherical interpolation (slerp) at
    the prior's radius (PFGM: sampling.upper_norm, as the original);
  * rescale: per row, one random direction at radii from radius / 3 to 2 radius (the original's
    1000 to 6000 for CIFAR-10's upper_norm 3000): what the distance from the data does to a sample.
"""
import torch


def slerp(a, b, ts):
    """Spherical interpolation between unit vectors a, b (N,) at fractions ts (K,): (K, N) unit vectors."""
    omega = torch.arccos(torch.clamp((a * b).sum(), -1.0, 1.0))
    if omega.abs() < 1e-7:
        return a.expand(len(ts), -1).clone()
    ts = ts.to(a.dtype)[:, None]
    return (torch.sin((1 - ts) * omega) * a + torch.sin(ts * omega) * b) / torch.sin(omega)


def _unit(n, dim, generator):
    g = torch.randn(n, dim, generator=generator, dtype=torch.float64)
    return g / g.norm(dim=1, keepdim=True)


def interpolation_starts(rows, cols, dim, radius, generator=None):
    """(rows * cols, dim) float64: each row slerps between two random directions, at `radius`."""
    out = []
    for _ in range(rows):
        a, b = _unit(2, dim, generator)
        out.append(slerp(a, b, torch.linspace(0, 1, cols, dtype=torch.float64)) * radius)
    return torch.cat(out)


def rescale_starts(rows, cols, dim, radius, generator=None):
    """(rows * cols, dim) float64: each row is one random direction at radii radius/3 .. 2 radius."""
    radii = torch.linspace(radius / 3, 2 * radius, cols, dtype=torch.float64)[:, None]
    return torch.cat([_unit(1, dim, generator) * radii for _ in range(rows)])
