"""Building blocks of the NCSN++ / DDPM++ networks (score_sde family), written from their published
description. Attribute names (GroupNorm_0, Conv_0, Dense_0, NIN_0.W, Conv2d_0, ...) and the order in
which parameters are registered follow the original so that its checkpoints and its unnamed EMA
parameter list load unchanged.
"""
import math

import torch
import torch.nn.functional as F
from torch import nn

from pfgm.models import up_or_down_sampling as ud


# --------------------------------------------------------------------------- activations / init

def get_act(name):
    """model.nonlinearity -> activation module."""
    name = str(name).lower()
    if name == "elu":
        return nn.ELU()
    if name == "relu":
        return nn.ReLU()
    if name == "lrelu":
        return nn.LeakyReLU(negative_slope=0.2)
    if name in ("swish", "silu"):
        return nn.SiLU()
    raise ValueError(f"model.nonlinearity: unknown activation {name!r} (elu, relu, lrelu, swish)")


def group_norm(channels):
    """GroupNorm with min(C // 4, 32) groups and eps 1e-6 (as in NCSN++)."""
    return nn.GroupNorm(num_groups=min(channels // 4, 32), num_channels=channels, eps=1e-6)


def _fans(shape, in_axis=1, out_axis=0):
    receptive = math.prod(shape) / shape[in_axis] / shape[out_axis]
    return shape[in_axis] * receptive, shape[out_axis] * receptive


@torch.no_grad()
def variance_scaling_(tensor, scale=1.0, mode="fan_avg", distribution="uniform", in_axis=1, out_axis=0):
    """In-place variance scaling init (JAX/TF convention: fans from axes in_axis / out_axis)."""
    fan_in, fan_out = _fans(tuple(tensor.shape), in_axis, out_axis)
    denom = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[mode]
    variance = scale / denom
    if distribution == "uniform":
        bound = math.sqrt(3.0 * variance)
        return tensor.uniform_(-bound, bound)
    if distribution == "normal":
        return tensor.normal_(0.0, math.sqrt(variance))
    raise ValueError(f"unknown distribution {distribution!r}")


def default_init_(tensor, scale=1.0):
    """DDPM default init: variance scaling, fan_avg, uniform; scale 0 means 1e-10 (near-zero layer)."""
    return variance_scaling_(tensor, 1e-10 if scale == 0 else scale)


def default_init(scale=1.0):
    """Initializer callable `f(tensor)` (in place) for modules that take a kernel_init."""
    return lambda t: default_init_(t, scale)


def _init_conv(conv, init_scale):
    default_init_(conv.weight, init_scale)
    if conv.bias is not None:
        nn.init.zeros_(conv.bias)
    return conv


def conv1x1(in_planes, out_planes, stride=1, bias=True, init_scale=1.0, padding=0):
    return _init_conv(nn.Conv2d(in_planes, out_planes, 1, stride=stride, padding=padding, bias=bias),
                      init_scale)


def conv3x3(in_planes, out_planes, stride=1, bias=True, dilation=1, init_scale=1.0, padding=1):
    return _init_conv(nn.Conv2d(in_planes, out_planes, 3, stride=stride, padding=padding,
                                dilation=dilation, bias=bias), init_scale)


def dense(in_features, out_features, init_scale=1.0):
    lin = nn.Linear(in_features, out_features)
    default_init_(lin.weight, init_scale)
    nn.init.zeros_(lin.bias)
    return lin


# --------------------------------------------------------------------------- embeddings

def get_positional_embedding(positions, embedding_dim, max_positions=10000):
    """Sinusoidal embedding [sin(p * w_k), cos(p * w_k)], w_k = exp(-k ln(max_positions) / (half - 1)).

    `positions` (B,) is used as is (raw z for PFGM, t*999 for VP); output (B, embedding_dim)."""
    if positions.dim() != 1:
        raise ValueError(f"positional embedding expects shape (B,), got {tuple(positions.shape)}")
    half = embedding_dim // 2
    freqs = torch.exp(torch.arange(half, dtype=torch.float32, device=positions.device)
                      * -(math.log(max_positions) / (half - 1)))
    args = positions.float()[:, None] * freqs[None, :]
    emb = torch.cat([torch.sin(args), torch.cos(args)], dim=1)
    if embedding_dim % 2 == 1:
        emb = F.pad(emb, (0, 1))
    return emb


get_timestep_embedding = get_positional_embedding


class GaussianFourierProjection(nn.Module):
    """[sin(2 pi x W), cos(2 pi x W)] with fixed W ~ scale * N(0, 1) (non-trainable Parameter `W`)."""

    def __init__(self, embedding_size=256, scale=1.0):
        super().__init__()
        self.W = nn.Parameter(torch.randn(embedding_size) * scale, requires_grad=False)

    def forward(self, x):
        proj = x[:, None] * self.W[None, :] * (2 * math.pi)
        return torch.cat([torch.sin(proj), torch.cos(proj)], dim=-1)


# --------------------------------------------------------------------------- basic layers

class NIN(nn.Module):
    """Per-pixel linear map (1x1 conv) with parameters `W` (in, out) and `b` (out,)."""

    def __init__(self, in_dim, num_units, init_scale=0.1):
        super().__init__()
        self.W = nn.Parameter(default_init_(torch.empty(in_dim, num_units), init_scale))
        self.b = nn.Parameter(torch.zeros(num_units))

    def forward(self, x):
        weight = self.W.t()[:, :, None, None]
        return F.conv2d(x, weight, self.b)


class Combine(nn.Module):
    """Combine a 1x1-projected pyramid input x with feature map y by 'cat' or 'sum'."""

    def __init__(self, dim1, dim2, method="cat"):
        super().__init__()
        if method not in ("cat", "sum"):
            raise ValueError(f"model.progressive_combine: unknown method {method!r} (cat, sum)")
        self.Conv_0 = conv1x1(dim1, dim2)
        self.method = method

    def forward(self, x, y):
        h = self.Conv_0(x)
        return torch.cat([h, y], dim=1) if self.method == "cat" else h + y


class AttnBlockpp(nn.Module):
    """Single-head self-attention over all pixels: q/k/v/out are NIN_0..NIN_3, logit scale C^-1/2."""

    def __init__(self, channels, skip_rescale=False, init_scale=0.0):
        super().__init__()
        self.GroupNorm_0 = group_norm(channels)
        self.NIN_0 = NIN(channels, channels)
        self.NIN_1 = NIN(channels, channels)
        self.NIN_2 = NIN(channels, channels)
        self.NIN_3 = NIN(channels, channels, init_scale=init_scale)
        self.skip_rescale = skip_rescale

    def forward(self, x):
        b, c, hh, ww = x.shape
        h = self.GroupNorm_0(x)
        q, k, v = (m(h).reshape(b, 1, c, hh * ww).transpose(-1, -2)
                   for m in (self.NIN_0, self.NIN_1, self.NIN_2))
        h = F.scaled_dot_product_attention(q, k, v)  # default scale is c ** -0.5
        h = self.NIN_3(h.transpose(-1, -2).reshape(b, c, hh, ww))
        return (x + h) / math.sqrt(2.0) if self.skip_rescale else x + h


class Upsample(nn.Module):
    """2x upsampling: nearest (+ conv3x3 `Conv_0`) without FIR, FIR (+ fused conv `Conv2d_0`) with FIR."""

    def __init__(self, in_ch=None, out_ch=None, with_conv=False, fir=False, fir_kernel=(1, 3, 3, 1)):
        super().__init__()
        out_ch = out_ch if out_ch else in_ch
        if with_conv:
            if fir:
                self.Conv2d_0 = ud.Conv2d(in_ch, out_ch, kernel=3, up=True, resample_kernel=fir_kernel,
                                          use_bias=True, kernel_init=default_init())
            else:
                self.Conv_0 = conv3x3(in_ch, out_ch)
        self.fir, self.with_conv, self.fir_kernel = fir, with_conv, tuple(fir_kernel)
        if fir and not with_conv:
            ud.register_fir(self, self.fir_kernel)

    def forward(self, x):
        if self.fir:
            return self.Conv2d_0(x) if self.with_conv else ud.upsample_2d(x, self.fir_filter, factor=2)
        h = F.interpolate(x, scale_factor=2, mode="nearest")
        return self.Conv_0(h) if self.with_conv else h


class Downsample(nn.Module):
    """2x downsampling: avg-pool or padded stride-2 conv3x3 `Conv_0`; FIR or fused FIR conv `Conv2d_0`."""

    def __init__(self, in_ch=None, out_ch=None, with_conv=False, fir=False, fir_kernel=(1, 3, 3, 1)):
        super().__init__()
        out_ch = out_ch if out_ch else in_ch
        if with_conv:
            if fir:
                self.Conv2d_0 = ud.Conv2d(in_ch, out_ch, kernel=3, down=True, resample_kernel=fir_kernel,
                                          use_bias=True, kernel_init=default_init())
            else:
                self.Conv_0 = conv3x3(in_ch, out_ch, stride=2, padding=0)
        self.fir, self.with_conv, self.fir_kernel = fir, with_conv, tuple(fir_kernel)
        if fir and not with_conv:
            ud.register_fir(self, self.fir_kernel)

    def forward(self, x):
        if self.fir:
            return self.Conv2d_0(x) if self.with_conv else ud.downsample_2d(x, self.fir_filter, factor=2)
        if self.with_conv:
            return self.Conv_0(F.pad(x, (0, 1, 0, 1)))
        return F.avg_pool2d(x, 2, stride=2)


# --------------------------------------------------------------------------- residual blocks

class ResnetBlockDDPMpp(nn.Module):
    """DDPM residual block: GN-act-conv (+Dense_0(act(temb))) GN-act-dropout-conv; skip via NIN_0
    (or Conv_2 with conv_shortcut) when the channel count changes."""

    def __init__(self, act, in_ch, out_ch=None, temb_dim=None, conv_shortcut=False, dropout=0.1,
                 skip_rescale=False, init_scale=0.0):
        super().__init__()
        out_ch = out_ch if out_ch else in_ch
        self.GroupNorm_0 = group_norm(in_ch)
        self.Conv_0 = conv3x3(in_ch, out_ch)
        if temb_dim is not None:
            self.Dense_0 = dense(temb_dim, out_ch)
        self.GroupNorm_1 = group_norm(out_ch)
        self.Dropout_0 = nn.Dropout(dropout)
        self.Conv_1 = conv3x3(out_ch, out_ch, init_scale=init_scale)
        if in_ch != out_ch:
            if conv_shortcut:
                self.Conv_2 = conv3x3(in_ch, out_ch)
            else:
                self.NIN_0 = NIN(in_ch, out_ch)
        self.act = act
        self.in_ch, self.out_ch = in_ch, out_ch
        self.conv_shortcut, self.skip_rescale = conv_shortcut, skip_rescale

    def forward(self, x, temb=None):
        h = self.Conv_0(self.act(self.GroupNorm_0(x)))
        if temb is not None:
            h = h + self.Dense_0(self.act(temb))[:, :, None, None]
        h = self.Conv_1(self.Dropout_0(self.act(self.GroupNorm_1(h))))
        if self.in_ch != self.out_ch:
            x = self.Conv_2(x) if self.conv_shortcut else self.NIN_0(x)
        return (x + h) / math.sqrt(2.0) if self.skip_rescale else x + h


class ResnetBlockBigGANpp(nn.Module):
    """BigGAN residual block with optional 2x up/down (naive or FIR) applied to both branches; the skip
    branch gets a 1x1 `Conv_2` when the channel count changes or when resampling."""

    def __init__(self, act, in_ch, out_ch=None, temb_dim=None, up=False, down=False, dropout=0.1,
                 fir=False, fir_kernel=(1, 3, 3, 1), skip_rescale=True, init_scale=0.0):
        super().__init__()
        if up and down:
            raise ValueError("ResnetBlockBigGANpp: up and down are exclusive")
        out_ch = out_ch if out_ch else in_ch
        self.GroupNorm_0 = group_norm(in_ch)
        self.up, self.down, self.fir, self.fir_kernel = up, down, fir, tuple(fir_kernel)
        if fir and (up or down):
            ud.register_fir(self, self.fir_kernel)
        self.Conv_0 = conv3x3(in_ch, out_ch)
        if temb_dim is not None:
            self.Dense_0 = dense(temb_dim, out_ch)
        self.GroupNorm_1 = group_norm(out_ch)
        self.Dropout_0 = nn.Dropout(dropout)
        self.Conv_1 = conv3x3(out_ch, out_ch, init_scale=init_scale)
        self.has_skip_conv = in_ch != out_ch or up or down
        if self.has_skip_conv:
            self.Conv_2 = conv1x1(in_ch, out_ch)
        self.act = act
        self.skip_rescale = skip_rescale

    def _resample(self, t):
        if self.up:
            return ud.upsample_2d(t, self.fir_filter, factor=2) if self.fir else ud.naive_upsample_2d(t, 2)
        if self.down:
            return ud.downsample_2d(t, self.fir_filter, factor=2) if self.fir else ud.naive_downsample_2d(t, 2)
        return t

    def forward(self, x, temb=None):
        h = self.act(self.GroupNorm_0(x))
        h, x = self._resample(h), self._resample(x)
        h = self.Conv_0(h)
        if temb is not None:
            h = h + self.Dense_0(self.act(temb))[:, :, None, None]
        h = self.Conv_1(self.Dropout_0(self.act(self.GroupNorm_1(h))))
        if self.has_skip_conv:
            x = self.Conv_2(x)
        return (x + h) / math.sqrt(2.0) if self.skip_rescale else x + h
