"""The physics of Poisson Flow Generative Models.

Data points y_j in R^N are unit charges on the z = 0 hyperplane of the augmented space R^{N+1};
an augmented point is x~ = (x, z) with z > 0. Equation numbers refer to Xu et al., "Poisson Flow
Generative Models" (NeurIPS 2022); "Alg." to its algorithms and "App." to its appendix.

Everything here is plain tensors in, tensors out: no models, no configs.
"""
import math

import numpy as np
import scipy.special
import torch

from pfgm import seeds

__all__ = [
    "empirical_field",
    "field_target",
    "class_field_target",
    "class_mask",
    "class_posterior",
    "perturb",
    "prior_radius_cdf",
    "sample_prior",
    "prior_logp",
    "substitute_vz",
    "hyperparameters",
]

# Nearest charges per row whose distance is recomputed coordinate by coordinate; see empirical_field.
_REFINE_NEAREST = 8


def _flat(t):
    return t.reshape(t.shape[0], -1)


def empirical_field(x, data, *, refine=_REFINE_NEAREST, mask=None):
    """Rescaled empirical Poisson field of the charges `data` at the augmented points `x` (Eq. 4).

    The field of unit charges is E(x~) ∝ sum_j (x~ - y~_j) / |x~ - y~_j|^{N+1}. Dividing each row by
    sum_j |x~ - y~_j|^{-(N+1)} keeps it finite in any dimension and leaves its direction unchanged:

        E(x~) = sum_j w_j (x~ - y~_j),   w = softmax_j(-(N+1) log |x~ - y~_j|).

    Args:
      x: (B, N+1) augmented points, last coordinate z > 0.
      data: (L, ...) charges on the z = 0 plane; flattened to (L, N).
      refine: how many nearest charges per row get their distance recomputed from the coordinates.
      mask: optional (B, L) bool, the charges each row counts (`class_mask`): row i is then the field of
        data[mask[i]] alone, with no host read (a row that counts none comes out NaN).

    Returns:
      (B, N+1) tensor of x's dtype: the rescaled field, pointing away from the charges.

    Cost is O(B·L·N) in two matrix products and O(B·L + B·refine·N) memory; no B×L×N tensor.
    Distances |a - b|^2 = |a|^2 + |b|^2 - 2ab cancel catastrophically close to a charge, so the
    `refine` nearest ones are recomputed exactly, and the weighted sum is taken relative to the
    nearest charge, so that near a charge the result keeps full relative precision.
    """
    if x.dim() != 2:
        raise ValueError(f"x must be (B, N+1), got shape {tuple(x.shape)}")
    y = _flat(data).to(dtype=x.dtype, device=x.device)
    n = y.shape[1]
    if x.shape[1] != n + 1:
        raise ValueError(f"x has {x.shape[1]} coordinates but the charges live in {n}+1 dimensions")
    xs, z = x[:, :n], x[:, n]

    # Squared distances in the x-coordinates, through one matrix product: (B, L).
    x_sq = torch.linalg.vector_norm(xs, dim=1, keepdim=True).square()
    y_sq = torch.linalg.vector_norm(y, dim=1).square()
    d2 = (xs @ y.t()).mul_(-2.0).add_(x_sq).add_(y_sq).clamp_min_(0.0)
    if mask is not None:  # a charge a row does not count is infinitely far: no weight, never the nearest
        d2.masked_fill_(~mask, math.inf)

    # Exact distances to the few nearest charges, where cancellation would hurt the most.
    k = min(refine, y.shape[0])
    near = d2.topk(k, dim=1, largest=False).indices  # (B, k)
    diff = xs.unsqueeze(1) - y[near]  # (B, k, N): small
    near_d2 = (diff * diff).sum(-1)
    if mask is not None:  # a row counting fewer than k charges keeps the others out
        near_d2.masked_fill_(~mask.gather(1, near), math.inf)
    d2.scatter_(1, near, near_d2)
    nearest = near.gather(1, near_d2.argmin(1, keepdim=True)).squeeze(1)

    d2 = d2 + (z * z).unsqueeze(1)
    tiny = torch.finfo(x.dtype).tiny
    w = torch.softmax(-0.5 * (n + 1) * torch.log(d2.clamp_min(tiny)), dim=1)  # (B, L)

    # sum_j w_j (x - y_j) = (x - c) - sum_{j != c} w_j (y_j - c), c the nearest charge: every term
    # is then as small as the contribution it carries.
    c = y[nearest]
    w_other = w.scatter(1, nearest.unsqueeze(1), 0.0)
    pull = w_other @ y - w_other.sum(1, keepdim=True) * c
    field_x = (xs - c) - pull
    field_z = z * w.sum(1)
    return torch.cat([field_x, field_z.unsqueeze(1)], dim=1)


def field_target(x, data, gamma, mask=None):
    """Training target of PFGM: the normalized field -sqrt(N) E / (|E| + gamma) (Eq. 8, App. B.1.1).

    Args:
      x: (B, N+1) perturbed augmented points.
      data: (L, ...) the large batch of charges (it must contain the points x was perturbed from).
      gamma: the norm offset; it shrinks the target close to the data where |E| is small.
      mask: optional (B, L) bool, the charges each row counts (`empirical_field`).

    Returns:
      (B, N+1) target; it points toward the data and its norm is below sqrt(N). Computed with autocast
      off, in x's dtype (float32 for a half-precision x): under a caller's autocast the catastrophic
      cancellations it guards against would come back, and its scatter would mix dtypes.
    """
    with torch.autocast(x.device.type, enabled=False):
        if x.dtype in (torch.float16, torch.bfloat16):
            x = x.float()
        return _normalized(empirical_field(x, data, mask=mask), x, gamma)


def _normalized(e, x, gamma):
    """Eq. 8's normalization of the rescaled field e at the augmented points x (B, N+1)."""
    n = x.shape[1] - 1
    norm = e.norm(dim=1, keepdim=True)
    return -math.sqrt(n) * e / (norm + gamma)


def class_field_target(x, data, gamma, labels, data_labels, check=True):
    """Training target of class-conditional PFGM: Eq. 8 with each point's own class as the charges.

    Row i is field_target(x_i, data[data_labels == labels_i], gamma): the normalized empirical field of
    the class-labels_i charges of the large batch; a row whose label is NULL (-1, dropped in training)
    gets the field of all the charges, the unconditional target.

    Args:
      x: (B, N+1) perturbed augmented points.
      data: (L, ...) the large batch of charges; data_labels: (L,) their classes.
      labels: (B,) the class of each row of x, or -1.
      check: raise for a row whose class has no charge (a read to the host: a sync on a GPU).

    Returns:
      (B, N+1) target, every class in one pass, no host read without check (`class_mask`). A row whose class has no
      charge comes out NaN unless `check` raises first (training passes check=False: its trained points
      are part of the batch, so their own class always has a charge).
    """
    mask = class_mask(labels, data_labels)
    if check:
        check_every_row_has_charges(mask, labels)
    return field_target(x, data, gamma, mask=mask)


def class_mask(labels, charge_labels):
    """(B, L) bool: the charges a row counts, those of its own class, every one for a NULL (-1) label.
    Shared by the conditional PFGM field and PFGM++'s conditional posterior mean."""
    labels = labels.reshape(-1, 1)
    return (charge_labels.to(labels.device).reshape(1, -1) == labels) | (labels < 0)


def check_every_row_has_charges(mask, labels):
    """ValueError naming the class of a row whose mask counts no charge (a read to the host)."""
    empty = ~mask.any(1)
    if empty.any():
        c = int(labels.reshape(-1)[empty][0])
        raise ValueError(f"no charge of class {c} in the batch for the {int(empty.sum())} points of that class")


def class_posterior(x, data, data_labels, num_classes):
    """p(c | x~): the share of the (unscaled) field's z-component that the class-c charges carry,

        p(c | x~) = sum_{j in c} |x~ - y~_j|^{-(N+1)} / sum_j |x~ - y~_j|^{-(N+1)},

    the posterior of the class under the D = 1 kernel (class priors: the charges' shares). The slope of
    all the charges' field is the p(c | x~)-average of the class slopes: dx/dz = sum_c p(c | x~) dx/dz_c,
    since E = sum_c E_c and E_z,c / E_z = p(c | x~) (docs/conditional.md). x (B, N+1) -> (B, num_classes).
    """
    y = _flat(data).to(dtype=x.dtype, device=x.device)
    n = y.shape[1]
    d2 = torch.cdist(x[:, :n], y).square() + x[:, n:].square()
    logk = -0.5 * (n + 1) * torch.log(d2)
    onehot = torch.nn.functional.one_hot(data_labels.to(x.device), num_classes).to(x.dtype)
    w = torch.softmax(logk, dim=1)
    return w @ onehot


def perturb(data, M, tau, sigma_end, restrict_M=True, generator=None):
    """Training points around the data, Alg. 2 (perturbation kernel of App. B.1.2).

    For each y: z0 = |eps_z|, eps_z ~ N(0, sigma_end^2); m ~ U[0, M); the point is

        (y + |eps_x| (1+tau)^m u,  z0 (1+tau)^m),   eps_x ~ N(0, sigma_end^2 I_N), u uniform on S^{N-1}.

    With restrict_M, samples that start very close to the plane (z0 < sigma_end/2, i.e. 0.005 for
    the paper's sigma_end = 0.01) draw m from U[0, int(0.7 M)) instead, keeping them near the data.

    Args:
      data: (B, ...) clean data, flattened to (B, N).
      M, tau, sigma_end: the kernel's range, growth rate and base scale.
      generator: optional torch.Generator for reproducibility.

    Returns:
      (B, N+1) perturbed augmented points with z > 0.
    """
    if M <= 0:
        raise ValueError(f"M must be positive, got {M}")
    y = _flat(data)
    b, n = y.shape
    opts = dict(device=y.device, dtype=y.dtype, generator=generator)
    z0 = (sigma_end * torch.randn(b, **opts)).abs()
    m = torch.rand(b, **opts) * M
    if restrict_M:
        m_small = torch.rand(b, **opts) * int(0.7 * M)
        m = torch.where(z0 < 0.5 * sigma_end, m_small, m)
    mult = (1.0 + tau) ** m
    radius = sigma_end * torch.randn(b, n, **opts).norm(dim=1) * mult
    u = torch.randn(b, n, **opts)
    u = u / u.norm(dim=1, keepdim=True)
    xs = y + radius.unsqueeze(1) * u
    return torch.cat([xs, (z0 * mult).unsqueeze(1)], dim=1)


def prior_radius_cdf(r, data_dim, z_max):
    """CDF of the radius R = |x| of the prior on the plane z = z_max (App. B.2.1).

    The field of a point charge crosses the plane with density p(x) ∝ z_max / (|x|^2 + z_max^2)^{(N+1)/2},
    so R^2 / (R^2 + z_max^2) ~ Beta(N/2, 1/2) and P(R <= r) = I_{r^2/(r^2+z_max^2)}(N/2, 1/2).

    Args:
      r: array-like of radii >= 0.
    Returns:
      numpy float64 array of the same shape.
    """
    r = np.asarray(r, dtype=np.float64)
    return scipy.special.betainc(data_dim / 2.0, 0.5, r**2 / (r**2 + z_max**2))


def sample_prior(n, data_dim, z_max, upper_norm, generator=None, device=None, dtype=torch.float32):
    """Draw n points on the plane z = z_max from the point-charge prior (App. B.2.1).

    The radius is drawn by inverting `prior_radius_cdf` (regularized incomplete beta), the direction
    uniformly on S^{N-1}; radii above upper_norm are clipped to it as in the paper. One torch
    generator drives both, so one seed reproduces a run.

    Returns:
      (n, data_dim) tensor of x-coordinates (z = z_max is implied).
    """
    if device is None:
        device = generator.device if generator is not None else torch.device("cpu")
    u = seeds.rand((n,), generator=generator, dtype=torch.float64, device=device).cpu().numpy()
    # 1 - B ~ Beta(1/2, N/2) where B ~ Beta(N/2, 1/2); inverting the complement avoids 1 - B round-off.
    q = scipy.special.betaincinv(0.5, data_dim / 2.0, u)
    q = np.clip(q, np.finfo(np.float64).tiny, 1.0)
    radius = np.minimum(z_max * np.sqrt((1.0 - q) / q), upper_norm)
    radius = torch.as_tensor(radius, dtype=dtype, device=device)
    direction = seeds.randn((n, data_dim), generator=generator, dtype=dtype, device=device)
    direction = direction / direction.norm(dim=1, keepdim=True)
    return direction * radius.unsqueeze(1)


def prior_logp(x, z_max):
    """Log-density of the point-charge prior on the plane z = z_max (App. B.2.1, the likelihood's prior).

    The flux of a unit charge at the origin of R^{N+1} through the plane z = z_max is, normalized over
    the plane (half the charge's flux crosses it),

        p(x) = 2 z_max / (S_N (|x|^2 + z_max^2)^{(N+1)/2}),   S_N = 2 pi^{(N+1)/2} / Gamma((N+1)/2),

    S_N being the area of the unit sphere S^N in R^{N+1} (the original code uses that of S^{N-1}).
    This is the unclipped law: `sample_prior`'s upper_norm clip is a sampling device, not part of it.

    Args:
      x: (B, ...) points on the plane; flattened to (B, N).
    Returns:
      (B,) log p(x) in x's dtype.
    """
    flat = _flat(x)
    n = flat.shape[1]
    log_area = math.log(2.0) + 0.5 * (n + 1) * math.log(math.pi) - math.lgamma(0.5 * (n + 1))
    r2 = flat.pow(2).sum(1)
    return math.log(2.0 * z_max) - log_area - 0.5 * (n + 1) * torch.log(r2 + z_max * z_max)


def substitute_vz(v_x, z, gamma, data_dim):
    """Rebuild v_z from v_x near the data (App. B.2.3), where the network's v_z is least reliable.

    Assuming one dominant charge at x-distance d, the target's x-part has norm sqrt(N) d / (r + gamma)
    with r = sqrt(d^2 + z^2) ≈ d; inverting a = |v_x|/sqrt(N) gives d = gamma a / (1 - a), and then
    v_z = -sqrt(N) z / (r + gamma).

    Args:
      v_x: (B, ...) predicted x-part; z: (B,) heights. Returns (B,) v_z.
    """
    a = _flat(v_x).norm(dim=1) / math.sqrt(data_dim)
    # a >= 1 has no solution (the original divides by zero there); cap just below it.
    a = a.clamp(max=1.0 - 1e-6)
    d = gamma * a / (1.0 - a)
    r = torch.sqrt(d * d + z * z)
    return -math.sqrt(data_dim) * z / (r + gamma)


def hyperparameters(data_norm, data_dim, sigma_end=0.01, tau=0.03):
    """The rule of App. B.1/B.2 for the perturbation range M, z_max and the prior's upper_norm.

    M makes the largest perturbation (1+tau)^M comparable to the data norm; z_max and upper_norm are
    E|N(0, sigma^2)| and sqrt(N) sigma times that largest multiplier.

    Returns:
      dict(M=int, z_max=float, upper_norm=float). CIFAR-10 (norm 30, dim 3072) gives M = 287.
    """
    values = dict(data_norm=data_norm, data_dim=data_dim, sigma_end=sigma_end, tau=tau)
    for name, value in values.items():
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
            raise ValueError(f"{name} must be a finite positive number, got {value!r}")
    # in logs: data_norm**2 overflows long before the rule's answer does
    log_ratio = 2.0 * math.log(data_norm) - math.log(2.0 * math.sqrt(data_dim)) - 2.0 * math.log(sigma_end)
    M = int(0.75 * log_ratio / math.log1p(tau)) + 1
    try:
        top = (1.0 + tau) ** M
        out = dict(M=M, z_max=math.sqrt(2.0 / math.pi) * sigma_end * top,
                   upper_norm=math.sqrt(data_dim) * sigma_end * top)
    except OverflowError:
        out = dict(z_max=math.inf)
    if not all(math.isfinite(v) for v in out.values()):
        raise ValueError(f"data_norm {data_norm:g} is too large for the rule: (1 + tau)^M overflows")
    return out
