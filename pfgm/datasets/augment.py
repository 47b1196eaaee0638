"""EDM's non-leaking geometric augmentation (Karras et al. 2022, App. F.2; the pipe of "Training GANs with
Limited Data"; github.com/NVlabs/edm training/augment.py), written from its description.

Each image of a training batch is transformed with probability p per transform and the network is told what
was done (the augmentation labels, model.augment_dim = 9): it learns the clean distribution at label 0, which
is what sampling asks for (labels None / zero), so the augmentations do not leak into the samples.

`augment(images, p)` applies EDM's CIFAR-10 / FFHQ setting (train.py --augment: xflip 1e8, yflip, scale,
rotate_frac, aniso, translate_frac, each with multiplier 1) and returns (images, labels (N, 9)):
    [x-flip, y-flip, scale w, cos(theta) - 1, sin(theta), aniso w cos(phi), aniso w sin(phi), tx, ty]
Integer translation and quarter-turn rotation (`rotate_int`, `translate_int`: 2 labels each, before the others)
are there too, off in EDM's setting. The random draws are EDM's, in its order, so under the same torch seed
the images are the original's. One difference, on purpose: the axis phi of the anisotropic scaling is
drawn as EDM's and then folded into (-pi/2, pi/2] (the same axis, so the same transform), which makes the
labels a function of the transform: EDM's (w cos phi, w sin phi) with phi in (-pi, pi] gives the same label
to the stretches 2^(0.2 w) and 2^(-0.2 w) along one axis. The label law is unchanged (w is symmetric).
"""
import math

import torch
import torch.nn.functional as F

NUM_LABELS = 9
# Probability multipliers of EDM's train.py --augment (x-flips are always drawn, half of them flipped).
EDM_PIPE = dict(xflip=1e8, yflip=1, rotate_int=0, translate_int=0, scale=1, rotate_frac=1, aniso=1, translate_frac=1)
SCALE_STD, ANISO_STD, ROTATE_MAX, ANISO_ROTATE_PROB, TRANSLATE_FRAC_STD, TRANSLATE_INT_MAX = 0.2, 0.2, 1.0, 0.5, 0.125, 0.125
# Daubechies' symlet 6 low-pass taps: the anti-aliasing filter of the 2x up / down sampling around the warp.
SYM6 = (0.015404109327027373, 0.0034907120842174702, -0.11799011114819057, -0.048311742585633, 0.4910559419267466,
        0.787641141030194, 0.3379294217276218, -0.07263752278646252, -0.021060292512300564, 0.04472490177066578,
        0.0017677118642428036, -0.007800708325034148)


def _affine(a, b, c, d, tx, ty):
    """(N, 3, 3) matrices [[a, b, tx], [c, d, ty], [0, 0, 1]] from (N,) entries."""
    one, zero = torch.ones_like(a), torch.zeros_like(a)
    return torch.stack([a, b, tx, c, d, ty, zero, zero, one], dim=-1).reshape(-1, 3, 3)


def scale(sx, sy):
    zero = torch.zeros_like(sx)
    return _affine(sx, zero, zero, sy, zero, zero)


def rotate(theta):
    c, s, zero = theta.cos(), theta.sin(), torch.zeros_like(theta)
    return _affine(c, -s, s, c, zero, zero)


def translate(tx, ty):
    one, zero = torch.ones_like(tx), torch.zeros_like(tx)
    return _affine(one, zero, zero, one, tx, ty)


def _gated(value, prob, shape, device, generator):
    """value where a uniform draw falls below prob, else 0."""
    return torch.where(torch.rand(shape, device=device, generator=generator) < prob, value, torch.zeros_like(value))


def draw(n, p, size, device, generator=None, pipe=EDM_PIPE):
    """The random parameters of n transforms ({name: tensor}), drawn in EDM's order. size = (H, W)."""
    h, w = size
    kw = dict(device=device, generator=generator)
    par = {}
    for name in ("xflip", "yflip"):
        if pipe[name] > 0:
            par[name] = _gated(torch.randint(2, (n, 1, 1, 1), **kw), pipe[name] * p, (n, 1, 1, 1), device, generator)
    if pipe["rotate_int"] > 0:
        par["rotate_int"] = _gated(torch.randint(4, (n, 1, 1, 1), **kw), pipe["rotate_int"] * p, (n, 1, 1, 1),
                                   device, generator)
    if pipe["translate_int"] > 0:
        t = _gated(torch.rand((2, n, 1, 1, 1), **kw) * 2 - 1, pipe["translate_int"] * p, (1, n, 1, 1, 1), device,
                   generator)
        par["tx_int"] = t[0].mul(w * TRANSLATE_INT_MAX).round().long()
        par["ty_int"] = t[1].mul(h * TRANSLATE_INT_MAX).round().long()
    if pipe["scale"] > 0:
        par["scale"] = _gated(torch.randn(n, **kw), pipe["scale"] * p, n, device, generator)
    if pipe["rotate_frac"] > 0:
        theta = (torch.rand(n, **kw) * 2 - 1) * (math.pi * ROTATE_MAX)
        par["theta"] = _gated(theta, pipe["rotate_frac"] * p, n, device, generator)
    if pipe["aniso"] > 0:
        a = torch.randn(n, **kw)
        phi = (torch.rand(n, **kw) * 2 - 1) * math.pi
        a = _gated(a, pipe["aniso"] * p, n, device, generator)
        phi = _gated(phi, ANISO_ROTATE_PROB, n, device, generator)
        par["aniso"], par["phi"] = a, phi - math.pi * torch.round(phi / math.pi)   # the same axis, in [-pi/2, pi/2]
    if pipe["translate_frac"] > 0:
        par["t_frac"] = _gated(torch.randn((2, n), **kw), pipe["translate_frac"] * p, (1, n), device, generator)
    return par


def labels_of(par, n):
    """The (n, L) augmentation labels of the parameters, EDM's order."""
    cols = []
    for name in ("xflip", "yflip"):
        if name in par:
            cols.append(par[name].reshape(n, 1))
    if "rotate_int" in par:
        r = par["rotate_int"].reshape(n, 1)
        cols += [(r == 1) | (r == 2), (r == 2) | (r == 3)]
    if "tx_int" in par:
        cols += [par["tx_int"].reshape(n, 1) / par["size"][1] / TRANSLATE_INT_MAX,
                 par["ty_int"].reshape(n, 1) / par["size"][0] / TRANSLATE_INT_MAX]
    if "scale" in par:
        cols.append(par["scale"].reshape(n, 1))
    if "theta" in par:
        cols += [(par["theta"].cos() - 1).reshape(n, 1), par["theta"].sin().reshape(n, 1)]
    if "aniso" in par:
        cols += [(par["aniso"] * par["phi"].cos()).reshape(n, 1), (par["aniso"] * par["phi"].sin()).reshape(n, 1)]
    if "t_frac" in par:
        cols += [par["t_frac"][0].reshape(n, 1), par["t_frac"][1].reshape(n, 1)]
    return torch.cat([c.float() for c in cols], dim=1) if cols else torch.zeros((n, 0))


def params_of_labels(labels, size):
    """EDM_PIPE's parameters back from its 9 labels (the inverse of labels_of)."""
    col = labels.unbind(1)
    rows = lambda t: t.reshape(-1, 1, 1, 1).round().long()   # noqa: E731
    a = torch.hypot(col[5], col[6]) * torch.where(col[5] < 0, -1.0, 1.0)
    phi = torch.where(a == 0, torch.zeros_like(a), torch.atan(col[6] / torch.where(col[5] == 0, 1e-30, col[5])))
    return dict(xflip=rows(col[0]), yflip=rows(col[1]), scale=col[2], theta=torch.atan2(col[4], col[3] + 1),
                aniso=a, phi=phi, t_frac=torch.stack([col[7], col[8]]))


def apply(images, par):
    """The transforms of `par` applied to (N, C, H, W) images: the pixel flips and shifts exactly, then one
    warp for the geometric ones (reflect-padded, 2x upsampled with SYM6, bilinear, downsampled)."""
    n, c, h, w = images.shape
    if "xflip" in par:
        images = torch.where(par["xflip"] == 1, images.flip(3), images)
    if "yflip" in par:
        images = torch.where(par["yflip"] == 1, images.flip(2), images)
    if "rotate_int" in par:
        r = par["rotate_int"]
        images = torch.where((r == 1) | (r == 2), images.flip(3), images)
        images = torch.where((r == 2) | (r == 3), images.flip(2), images)
        images = torch.where((r == 1) | (r == 3), images.transpose(2, 3), images)
    if "tx_int" in par:   # mirrored at the borders
        b, ch, y, x = torch.meshgrid(*(torch.arange(s, device=images.device) for s in images.shape), indexing="ij")
        x = w - 1 - (w - 1 - (x - par["tx_int"]) % (2 * w - 2)).abs()
        y = h - 1 - (h - 1 - (y + par["ty_int"]) % (2 * h - 2)).abs()
        images = images.flatten()[((b * c + ch) * h + y) * w + x]
    g_inv = torch.eye(3, device=images.device).expand(n, 3, 3)
    geometric = False
    if "scale" in par:
        s = torch.exp2(par["scale"] * SCALE_STD)
        g_inv, geometric = g_inv @ scale(1 / s, 1 / s), True
    if "theta" in par:
        g_inv, geometric = g_inv @ rotate(par["theta"]), True
    if "aniso" in par:
        s, phi = torch.exp2(par["aniso"] * ANISO_STD), par["phi"]
        g_inv, geometric = g_inv @ rotate(-phi) @ scale(1 / s, s) @ rotate(phi), True
    if "t_frac" in par:
        t = par["t_frac"]
        g_inv, geometric = g_inv @ translate(-t[0] * w * TRANSLATE_FRAC_STD, -t[1] * h * TRANSLATE_FRAC_STD), True
    return warp(images, g_inv) if geometric else images


def warp(images, g_inv):
    """images(G^-1 p) for the (N, 3, 3) inverse maps g_inv in pixel coordinates centred on the image."""
    n, c, h, w = images.shape
    dev, dt = images.device, images.dtype
    taps = torch.tensor(SYM6, dtype=dt, device=dev)
    pad = len(SYM6) // 4
    cx, cy = (w - 1) / 2, (h - 1) / 2
    corners = torch.tensor([[-cx, -cy, 1], [cx, -cy, 1], [cx, cy, 1], [-cx, cy, 1]], dtype=g_inv.dtype, device=dev)
    reach = (g_inv @ corners.t())[:, :2, :].permute(1, 0, 2).flatten(1)     # where the corners come from
    margin = torch.cat([-reach, reach]).max(dim=1).values                  # x0, y0, x1, y1
    margin = margin + torch.tensor([2 * pad - cx, 2 * pad - cy] * 2, dtype=margin.dtype, device=dev)
    low = torch.zeros(4, dtype=margin.dtype, device=dev)
    high = torch.tensor([w - 1, h - 1] * 2, dtype=margin.dtype, device=dev)
    # the padding's size is data-dependent (as EDM's): one read to the host for the four numbers, not four
    mx0, my0, mx1, my1 = margin.clamp(low, high).ceil().int().tolist()
    images = F.pad(images, [mx0, mx1, my0, my1], mode="reflect")
    one = torch.ones(n, dtype=g_inv.dtype, device=dev)
    g_inv = translate((mx0 - mx1) / 2 * one, (my0 - my1) / 2 * one) @ g_inv
    # 2x upsampling: zeros between the pixels, then the flipped filter along each axis.
    k = taps.flip(0)[None, None].expand(c, 1, -1)
    up = torch.stack([images, torch.zeros_like(images)], dim=4).reshape(n, c, images.shape[2], -1)[..., :-1]
    up = F.conv2d(up, k.unsqueeze(2), groups=c, padding=[0, (len(SYM6) + 1) // 2])
    up = torch.stack([up, torch.zeros_like(up)], dim=3).reshape(n, c, -1, up.shape[3])[:, :, :-1, :]
    up = F.conv2d(up, k.unsqueeze(3), groups=c, padding=[(len(SYM6) + 1) // 2, 0])
    g_inv = scale(2 * one, 2 * one) @ g_inv @ scale(one / 2, one / 2)
    g_inv = translate(-one / 2, -one / 2) @ g_inv @ translate(one / 2, one / 2)
    out = [n, c, (h + 2 * pad) * 2, (w + 2 * pad) * 2]
    g_inv = scale(2 / up.shape[3] * one, 2 / up.shape[2] * one) @ g_inv @ scale(out[3] / 2 * one, out[2] / 2 * one)
    grid = F.affine_grid(g_inv[:, :2, :].to(dt), out, align_corners=False)
    big = F.grid_sample(up, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    # 2x downsampling with the filter, then the crop back to H x W.
    k = taps[None, None].expand(c, 1, -1)
    big = F.conv2d(big, k.unsqueeze(2), groups=c, stride=[1, 2], padding=[0, (len(SYM6) - 1) // 2])[..., pad:-pad]
    return F.conv2d(big, k.unsqueeze(3), groups=c, stride=[2, 1], padding=[(len(SYM6) - 1) // 2, 0])[:, :, pad:-pad, :]


def augment(images, p, generator=None, pipe=EDM_PIPE):
    """(augmented images, labels (N, 9) float32) with EDM's pipe at probability p (p = 0: the images as
    given and zero labels, no random draw)."""
    n = images.shape[0]
    if p == 0:
        return images, torch.zeros((n, NUM_LABELS), device=images.device)
    par = draw(n, p, images.shape[2:], images.device, generator, pipe)
    par["size"] = images.shape[2:]
    return apply(images, par), labels_of(par, n).to(images.device)
