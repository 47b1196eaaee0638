"""Class labels for every method: the network's one-hot input, label dropout in training, the labels a
sampler is asked for, and classifier-free guidance.

Integer labels travel as LongTensor (B,) with values in [0, label_dim); NULL (-1) is the null label (a
dropped one), which the network sees as the all-zero one-hot row, as EDM's. Config keys: model.label_dim
(0: unconditional), training.label_dropout, sampling.class_label (-1: a random class per sample),
sampling.guidance (w).

Guidance mixes the conditional and unconditional predictions as u + w (c - u) (w = 1: plain conditional
sampling, w = 0: unconditional), at the sampler's times t >= sampling.guidance_tmin (PFGM: z, PFGM++: sigma,
the SDEs: t; below it the class prediction alone, as guidance limited to an interval, Kynkaanniemi et al.
2024), on the quantity each method's sampler is linear in:

  * VE / VP / sub-VP: the score, s_u + w (s_c - s_u);
  * PFGM++: the denoiser, D_u + w (D_c - D_u) (the ODE dx/dsigma = (x - D) / sigma is affine in D);
  * PFGM: the slope dx/dz = v_x / v_z of the backward ODE, taken for each branch (z-substitution
    included) before mixing. That is guidance on PFGM's denoiser D = x - z dx/dz, the posterior mean of
    the charges under the D = 1 kernel, i.e. exactly PFGM++'s guidance at D = 1: the unconditional
    slope of labelled charges is the class-posterior average of the class slopes (docs/conditional.md),
    as D_u = sum_c p(c | x) D_c for a denoiser. The normalized fields themselves cannot be mixed: their
    norms -sqrt(N)|E| / (|E| + gamma) saturate and no longer carry the flux each class contributes.
"""
import torch
import torch.nn.functional as F

from pfgm import seeds

NULL = -1


def one_hot(labels, label_dim, dtype=torch.float32):
    """(B, label_dim) float one-hot rows of LongTensor labels (B,); NULL rows are all zero."""
    keep = labels >= 0
    return F.one_hot(labels.clamp_min(0), label_dim).to(dtype) * keep.unsqueeze(1).to(dtype)


def drop(labels, p, generator=None):
    """labels with each entry replaced by NULL with probability p (EDM's label_dropout), drawn with
    `generator` on the labels' device; p = 0 draws nothing."""
    if not p:
        return labels
    u = torch.rand(labels.shape, generator=generator, device=labels.device)
    return torch.where(u < p, torch.full_like(labels, NULL), labels)


def asked_labels(n, label_dim, class_label, generator=None, device=None):
    """The n labels a sampler is asked for: class_label for all, or (class_label = -1) a uniformly random
    class per sample, drawn with `generator` (a torch.Generator or a seeds.StackedGenerator). None for an
    unconditional model (label_dim = 0)."""
    if not label_dim:
        return None
    if class_label >= 0:
        return torch.full((n,), int(class_label), dtype=torch.long, device=device)
    gen_device = generator.device if generator is not None else device
    # per image when the generator is a seeds.StackedGenerator, as every draw of a sampler
    return seeds.randint(label_dim, (n,), generator=generator, device=gen_device).to(device)


def guided(fn, labels, w, tmin=0.0):
    """fn(x, t, labels) -> tensor, guided: fn_u + w (fn_c - fn_u) with fn_u = fn(x, t, NULL labels), at the
    times t >= tmin (below: fn_c alone, plain conditional sampling; sampling.guidance_tmin).

    w = 1 (or labels None) evaluates fn once, with the labels as given. Otherwise both branches go
    through one call on the doubled batch; t may be a float or a (B,) tensor."""
    plain = lambda x, t: fn(x, t, labels)  # noqa: E731
    if labels is None or w == 1:
        return plain
    both = with_null(labels)
    return mixed(lambda x, t: fn(x, t, both), w, tmin, plain)


def with_null(labels):
    """The doubled batch's labels: the asked ones, then as many NULL ones."""
    return torch.cat([labels, torch.full_like(labels, NULL)])


def mixed(both, w, tmin=0.0, plain=None):
    """g(x, t) = u + w (c - u) where both(x2, t) evaluates the doubled batch x2 = [x; x] (labels
    `with_null`): c its first half, u its second; at times t < tmin, plain(x, t) (the class branch alone)
    instead. t: a float or a (B,) tensor (its rows below tmin take c). g.pointing_away() is that of the
    last function called, `both` or `plain` (sampling.pfgm_drift's diagnostics), None without one."""
    last = [both]

    def g(x, t):
        if tmin and plain is not None and not torch.is_tensor(t) and t < tmin:
            last[0] = plain
            return plain(x, t)
        last[0] = both
        b = len(x)
        tt = torch.cat([t, t]) if torch.is_tensor(t) and t.dim() > 0 else t
        out = both(torch.cat([x, x]), tt)
        c, u = out[:b], out[b:]
        mix = u + w * (c - u)
        if tmin and torch.is_tensor(t):
            below = (torch.as_tensor(t, device=x.device) < tmin).reshape((-1,) + (1,) * (x.dim() - 1))
            mix = torch.where(below, c, mix)
        return mix

    g.pointing_away = lambda: getattr(last[0], "pointing_away", lambda: None)()
    return g
