"""FIR up/down-sampling (upfirdn2d) in plain PyTorch, plus naive (repeat / average) resampling.

`upfirdn2d(x, k, up, down, pad)` does, per channel:
  1. upsample by inserting `up - 1` zeros after every sample (both axes),
  2. pad with `pad[0]` zeros before and `pad[1]` zeros after (both axes; negative values crop),
  3. convolve (true convolution, i.e. with the flipped kernel) with the 2-D FIR kernel `k`, "valid" mode,
  4. keep every `down`-th sample.
The output size per axis is (n * up + pad[0] + pad[1] - len(k)) // down + 1.

The FIR helpers follow the StyleGAN2 / NCSN++ conventions: a 1-D kernel such as (1, 3, 3, 1) is turned
into its outer product and normalised to sum 1 (times `gain * factor**2` when upsampling, so the DC gain
is preserved), and the padding is chosen so that the output is exactly `factor` times larger or smaller.
Only conv2d / conv_transpose2d / pad are used: no custom CUDA extension.
"""
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def setup_kernel(k):
    """1-D taps -> normalised 2-D kernel (outer product), as a float64 numpy array summing to 1."""
    k = np.asarray(k, dtype=np.float64)
    if k.ndim == 1:
        k = np.outer(k, k)
    if k.ndim != 2 or k.shape[0] != k.shape[1]:
        raise ValueError(f"FIR kernel must be 1-D or square 2-D, got shape {k.shape}")
    return k / np.sum(k)


def _filter(k, factor):
    """The normalised 2-D filter: a prepared tensor (a module's `fir_filter` buffer, already on the
    device: no host-to-device copy per call) as it is, else built from the taps `k` (box when None)."""
    if isinstance(k, torch.Tensor) and k.dim() == 2:
        return k
    return setup_kernel([1] * factor if k is None else k)


def register_fir(module, taps):
    """Give `module` its normalised FIR filter as a non-persistent buffer `fir_filter` (moved with the
    module, absent from the state_dict, so checkpoint keys are unchanged)."""
    module.register_buffer("fir_filter", torch.as_tensor(setup_kernel(taps), dtype=torch.float32),
                           persistent=False)


def _kernel_tensor(k, like):
    if isinstance(k, torch.Tensor):
        return k.to(device=like.device, dtype=like.dtype)
    return torch.as_tensor(np.asarray(k), dtype=like.dtype, device=like.device)


def upfirdn2d(x, kernel, up=1, down=1, pad=(0, 0)):
    """Upsample (zero insertion), pad, FIR-filter and downsample `x` of shape (B, C, H, W)."""
    if x.dim() != 4:
        raise ValueError(f"upfirdn2d expects (B, C, H, W), got {tuple(x.shape)}")
    up, down = int(up), int(down)
    p0, p1 = int(pad[0]), int(pad[1])
    k = _kernel_tensor(kernel, x)
    if k.dim() != 2:
        raise ValueError("upfirdn2d expects a 2-D kernel")
    b, c, h, w = x.shape
    out = x.reshape(b * c, 1, h, w)
    if up > 1:
        out = out.reshape(b * c, h, 1, w, 1)
        out = F.pad(out, (0, up - 1, 0, 0, 0, up - 1))
        out = out.reshape(b * c, 1, h * up, w * up)
    # Pad (positive part) then crop (negative part).
    out = F.pad(out, (max(p0, 0), max(p1, 0), max(p0, 0), max(p1, 0)))
    hh, ww = out.shape[-2:]
    out = out[..., max(-p0, 0): hh - max(-p1, 0), max(-p0, 0): ww - max(-p1, 0)]
    # conv2d is a cross-correlation: flip the kernel for a true convolution.
    out = F.conv2d(out, torch.flip(k, (0, 1))[None, None])
    if down > 1:
        out = out[..., ::down, ::down]
    return out.reshape(b, c, out.shape[-2], out.shape[-1])


def upsample_2d(x, k=None, factor=2, gain=1):
    """FIR upsampling by `factor`: (B, C, H, W) -> (B, C, H*factor, W*factor)."""
    k = _filter(k, factor) * (gain * factor ** 2)
    p = k.shape[0] - factor
    return upfirdn2d(x, k, up=factor, pad=((p + 1) // 2 + factor - 1, p // 2))


def downsample_2d(x, k=None, factor=2, gain=1):
    """FIR downsampling by `factor`: (B, C, H, W) -> (B, C, H/factor, W/factor)."""
    k = _filter(k, factor) * gain
    p = k.shape[0] - factor
    return upfirdn2d(x, k, down=factor, pad=((p + 1) // 2, p // 2))


def upsample_conv_2d(x, w, k=None, factor=2, gain=1):
    """Fused upsample + conv: zero-insertion upsampling, 'full' cross-correlation with `w`
    (shape (out, in, kh, kw), the layout of an ordinary conv weight), then the FIR filter.
    Output size is factor times the input size."""
    kh, kw = w.shape[-2:]
    if kh != kw:
        raise ValueError("upsample_conv_2d needs a square conv kernel")
    k = _filter(k, factor) * (gain * factor ** 2)
    p = (k.shape[0] - factor) - (kw - 1)
    # conv_transpose2d is the adjoint of a cross-correlation; with the flipped, in/out-swapped
    # kernel it equals zero-stuffing followed by a full cross-correlation with w.
    wt = torch.flip(w, (2, 3)).transpose(0, 1)
    x = F.conv_transpose2d(x, wt, stride=factor)
    return upfirdn2d(x, k, pad=((p + 1) // 2 + factor - 1, p // 2 + 1))


def conv_downsample_2d(x, w, k=None, factor=2, gain=1):
    """Fused FIR filter + strided conv with `w` (out, in, kh, kw): output is factor times smaller."""
    kh, kw = w.shape[-2:]
    if kh != kw:
        raise ValueError("conv_downsample_2d needs a square conv kernel")
    k = _filter(k, factor) * gain
    p = (k.shape[0] - factor) + (kw - 1)
    x = upfirdn2d(x, k, pad=((p + 1) // 2, p // 2))
    return F.conv2d(x, w, stride=factor)


def naive_upsample_2d(x, factor=2):
    """Nearest-neighbour upsampling (each pixel repeated factor x factor times)."""
    b, c, h, w = x.shape
    x = x.reshape(b, c, h, 1, w, 1).expand(b, c, h, factor, w, factor)
    return x.reshape(b, c, h * factor, w * factor)


def naive_downsample_2d(x, factor=2):
    """Average pooling over non-overlapping factor x factor blocks."""
    b, c, h, w = x.shape
    return x.reshape(b, c, h // factor, factor, w // factor, factor).mean(dim=(3, 5))


class Conv2d(nn.Module):
    """Conv layer with optional fused FIR up/downsampling. Parameters `weight` (out, in, k, k), `bias`."""

    def __init__(self, in_ch, out_ch, kernel, up=False, down=False, resample_kernel=(1, 3, 3, 1),
                 use_bias=True, kernel_init=None):
        super().__init__()
        if up and down:
            raise ValueError("Conv2d: up and down are exclusive")
        if kernel < 1 or kernel % 2 != 1:
            raise ValueError("Conv2d: kernel size must be odd and positive")
        self.weight = nn.Parameter(torch.zeros(out_ch, in_ch, kernel, kernel))
        if kernel_init is not None:
            with torch.no_grad():
                kernel_init(self.weight)
        self.bias = nn.Parameter(torch.zeros(out_ch)) if use_bias else None
        self.up, self.down = up, down
        self.resample_kernel = tuple(resample_kernel)
        self.kernel = kernel
        if up or down:
            register_fir(self, self.resample_kernel)

    def forward(self, x):
        if self.up:
            x = upsample_conv_2d(x, self.weight, k=self.fir_filter)
        elif self.down:
            x = conv_downsample_2d(x, self.weight, k=self.fir_filter)
        else:
            x = F.conv2d(x, self.weight, padding=self.kernel // 2)
        if self.bias is not None:
            x = x + self.bias.reshape(1, -1, 1, 1)
        return x
