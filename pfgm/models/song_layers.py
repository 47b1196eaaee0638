"""The layers of EDM's SongUNet (Karras et al. 2022, "Elucidating the Design Space of Diffusion-Based
Generative Models", github.com/NVlabs/edm, training/networks.py), written from its description.

Parameter and buffer names are the original's (weight, bias, resample_filter, freqs; a U-Net block's norm0,
conv0, affine, norm1, conv1, skip, norm2, qkv, proj), so a released state_dict loads one to one. Only the
settings SongUNet uses are built: blocks without adaptive scale, one attention head, projected resampling
skips, the fused resampling only on the way down.
"""
import math

import torch
from torch import nn
from torch.nn.functional import silu


def _init(weight, bias, fan_in, fan_out, gain):
    """EDM's 'xavier_uniform' init scaled by gain; biases start at zero (its init_bias = 0)."""
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
    with torch.no_grad():
        weight.uniform_(-bound, bound)
        if bias is not None:
            bias.zero_()


class Linear(nn.Module):
    """y = x W^T + b, W (out, in)."""

    def __init__(self, in_features, out_features, bias=True, gain=1.0):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        self.bias = nn.Parameter(torch.empty(out_features)) if bias else None
        _init(self.weight, self.bias, in_features, out_features, gain)

    def forward(self, x):
        x = x @ self.weight.to(x.dtype).t()
        return x + self.bias.to(x.dtype) if self.bias is not None else x


def resample_kernel(taps):
    """The separable 2-D low-pass filter f f^T / (sum f)^2, shape (1, 1, k, k)."""
    f = torch.as_tensor(taps, dtype=torch.float32)
    return (torch.outer(f, f) / f.sum() ** 2)[None, None]


class Conv2d(nn.Module):
    """A k x k convolution (kernel = 0: none, only the resampling), optionally preceded by a 2x up- or
    downsampling with the FIR filter `resample_filter` (applied per channel). fused (down only): convolve
    first, then filter and subsample, as the NCSN++ residual encoder does."""

    def __init__(self, in_channels, out_channels, kernel, bias=True, up=False, down=False,
                 resample_filter=(1, 1), fused=False, gain=1.0):
        super().__init__()
        if up and (down or fused):
            raise ValueError("Conv2d: up excludes down and fused")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.up, self.down, self.fused = up, down, fused
        if kernel:
            self.weight = nn.Parameter(torch.empty(out_channels, in_channels, kernel, kernel))
            self.bias = nn.Parameter(torch.empty(out_channels)) if bias else None
            _init(self.weight, self.bias, in_channels * kernel * kernel, out_channels * kernel * kernel, gain)
        else:
            self.weight = self.bias = None
        self.register_buffer("resample_filter", resample_kernel(resample_filter) if up or down else None)

    def _filter(self, x, channels, up, pad):
        f = self.resample_filter.to(x.dtype)
        if up:
            return nn.functional.conv_transpose2d(x, (4 * f).tile(channels, 1, 1, 1), groups=channels,
                                                  stride=2, padding=pad)
        return nn.functional.conv2d(x, f.tile(channels, 1, 1, 1), groups=channels, stride=2, padding=pad)

    def forward(self, x):
        w = self.weight.to(x.dtype) if self.weight is not None else None
        w_pad = w.shape[-1] // 2 if w is not None else 0
        f_pad = (self.resample_filter.shape[-1] - 1) // 2 if self.resample_filter is not None else 0
        if self.fused and self.down and w is not None:  # the filter's padding is folded into the convolution's
            x = self._filter(nn.functional.conv2d(x, w, padding=w_pad + f_pad), self.out_channels, False, 0)
        else:
            if self.up or self.down:
                x = self._filter(x, self.in_channels, self.up, f_pad)
            if w is not None:
                x = nn.functional.conv2d(x, w, padding=w_pad)
        if self.bias is not None:
            x = x + self.bias.to(x.dtype).reshape(1, -1, 1, 1)
        return x


class GroupNorm(nn.Module):
    """Group normalization with min(32, C / 4) groups."""

    def __init__(self, num_channels, eps=1e-5, num_groups=32, min_channels_per_group=4):
        super().__init__()
        self.num_groups = min(num_groups, num_channels // min_channels_per_group)
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(num_channels))
        self.bias = nn.Parameter(torch.zeros(num_channels))

    def forward(self, x):
        return nn.functional.group_norm(x, self.num_groups, self.weight.to(x.dtype), self.bias.to(x.dtype), self.eps)


class UNetBlock(nn.Module):
    """SongUNet's residual block: x + conv(dropout(silu(norm(conv(silu(norm(x))) + affine(emb))))), scaled by
    skip_scale, then (attention) x + proj(softmax(q^T k / sqrt(C)) v), one head, scaled again. A 1 x 1 `skip`
    convolution carries the input where the channels or the resolution change."""

    def __init__(self, in_channels, out_channels, emb_channels, up=False, down=False, attention=False, dropout=0.0,
                 skip_scale=1.0, eps=1e-6, resample_filter=(1, 1)):
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.dropout, self.skip_scale, self.attention = dropout, skip_scale, attention
        zero, attn = 1e-5, math.sqrt(0.2)   # EDM's init_zero and init_attn gains
        self.norm0 = GroupNorm(in_channels, eps=eps)
        self.conv0 = Conv2d(in_channels, out_channels, 3, up=up, down=down, resample_filter=resample_filter)
        self.affine = Linear(emb_channels, out_channels)
        self.norm1 = GroupNorm(out_channels, eps=eps)
        self.conv1 = Conv2d(out_channels, out_channels, 3, gain=zero)
        self.skip = None
        if out_channels != in_channels or up or down:
            self.skip = Conv2d(in_channels, out_channels, 1, up=up, down=down, resample_filter=resample_filter)
        if attention:
            self.norm2 = GroupNorm(out_channels, eps=eps)
            self.qkv = Conv2d(out_channels, out_channels * 3, 1, gain=attn)
            self.proj = Conv2d(out_channels, out_channels, 1, gain=zero)

    def forward(self, x, emb):
        orig = x
        x = self.conv0(silu(self.norm0(x)))
        x = silu(self.norm1(x + self.affine(emb).to(x.dtype)[:, :, None, None]))
        x = self.conv1(nn.functional.dropout(x, p=self.dropout, training=self.training))
        x = (x + (self.skip(orig) if self.skip is not None else orig)) * self.skip_scale
        if self.attention:
            b, c = x.shape[:2]
            q, k, v = self.qkv(self.norm2(x)).reshape(b, c, 3, -1).unbind(2)
            with torch.autocast(x.device.type, enabled=False):  # EDM's weights in float32, also under mixed precision
                w = torch.einsum("ncq,nck->nqk", q.float(), k.float() / math.sqrt(c)).softmax(dim=2).to(q.dtype)
            a = torch.einsum("nqk,nck->ncq", w, v)
            x = (self.proj(a.reshape(x.shape)) + x) * self.skip_scale
        return x


class PositionalEmbedding(nn.Module):
    """DDPM++'s noise embedding: [sin(c w_k), cos(c w_k)], w_k = 10000^(-k / (C/2 - 1)), k < C/2."""

    def __init__(self, num_channels, max_positions=10000):
        super().__init__()
        self.num_channels, self.max_positions = num_channels, max_positions

    def forward(self, c):
        half = self.num_channels // 2
        freqs = (1.0 / self.max_positions) ** (torch.arange(half, dtype=torch.float32, device=c.device) / (half - 1))
        arg = torch.outer(c, freqs.to(c.dtype))
        return torch.cat([arg.sin(), arg.cos()], dim=1)


class FourierEmbedding(nn.Module):
    """NCSN++'s noise embedding: [sin(2 pi f_k c), cos(2 pi f_k c)], f_k ~ N(0, scale^2) fixed (buffer freqs)."""

    def __init__(self, num_channels, scale=16):
        super().__init__()
        self.register_buffer("freqs", torch.randn(num_channels // 2) * scale)

    def forward(self, c):
        arg = torch.outer(c, (2 * math.pi * self.freqs).to(c.dtype))
        return torch.cat([arg.sin(), arg.cos()], dim=1)
