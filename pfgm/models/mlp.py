"""A small MLP for low-dimensional data, conditioned on log of its scalar input (z, t or sigma)."""
import math

import torch
from torch import nn

from pfgm.models import register_model
from pfgm.models.conditioning import LabelEmbedding, class_labels_for, no_augment_labels


class LogFourierEmbedding(nn.Module):
    """[sin(2π f_k log c), cos(2π f_k log c)] with fixed log-spaced frequencies f_k.

    log c spans about 1e-3..1e2 for PFGM's z, where the field changes fastest at small z; a log
    embedding resolves that range evenly (the DDPM++ raw-z embedding does not).
    """

    def __init__(self, dim, max_freq=4.0):
        super().__init__()
        self.register_buffer("freqs", torch.logspace(-2, math.log10(max_freq), dim // 2), persistent=False)

    def forward(self, c):
        arg = 2 * math.pi * torch.log(c.clamp_min(1e-10)).unsqueeze(1) * self.freqs
        return torch.cat([torch.sin(arg), torch.cos(arg)], dim=1)


@register_model("mlp")
class MLP(nn.Module):
    """x (B, *shape) and cond (B,) -> PFGM field (v_x, v_z) or a score shaped like x.

    Config keys: model.nf (width), model.num_layers, model.embed_dim, model.scale_input, model.label_dim
    (class_labels (B, label_dim) one-hot embedded and added to the noise embedding; 0: none, no parameters).

    With scale_input the network sees x / rho and log rho, rho = sqrt(1 + |x|^2 + c^2), instead of x:
    bounded inputs however far out the point is (PFGM's prior reaches |x| ~ 100 z_max in 2-D), and
    the far field, which depends only on the direction, is a function of bounded features.
    """

    def __init__(self, config):
        super().__init__()
        m = config.model
        for key, low in (("nf", 1), ("num_layers", 1), ("embed_dim", 2)):
            if not isinstance(m[key], int) or m[key] < low:
                raise ValueError(f"model.{key} must be an integer >= {low}, got {m[key]!r}")
        self.shape = tuple(config.data.shape)
        self.dim = math.prod(self.shape)
        self.poisson = config.training.sde == "poisson"
        self.scale_input = bool(m.get("scale_input", True))
        self.embed = LogFourierEmbedding(m.embed_dim)
        self.label_dim = int(m.get("label_dim", 0))
        if self.label_dim < 0:
            raise ValueError(f"model.label_dim must be >= 0, got {self.label_dim}")
        self.map_label = LabelEmbedding(self.label_dim, m.embed_dim) if self.label_dim else None
        layers, width = [], self.dim + m.embed_dim + 1 + int(self.scale_input)
        for _ in range(m.num_layers):
            layers += [nn.Linear(width, m.nf), nn.SiLU()]
            width = m.nf
        layers.append(nn.Linear(width, self.dim + int(self.poisson)))
        self.net = nn.Sequential(*layers)

    def forward(self, x, cond, class_labels=None, augment_labels=None):
        no_augment_labels(augment_labels, "MLP")
        class_labels = class_labels_for(class_labels, self.label_dim, x)
        h = x.reshape(x.shape[0], -1)
        logc = torch.log(cond.clamp_min(1e-10)).unsqueeze(1)
        emb = self.embed(cond)
        if self.map_label is not None:
            emb = emb + self.map_label(class_labels)
        feats = [emb, logc]
        if self.scale_input:
            rho = torch.sqrt(1.0 + (h * h).sum(1, keepdim=True) + (cond * cond).unsqueeze(1))
            h = h / rho
            feats.append(torch.log(rho))
        out = self.net(torch.cat([h] + feats, dim=1))
        if self.poisson:
            return out[:, : self.dim].reshape(x.shape), out[:, self.dim]
        return out.reshape(x.shape)
