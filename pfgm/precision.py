"""The numerics of the network, set in one place: mixed precision, torch.compile, TF32 and cuDNN.

training.mixed_precision
  'no'    float32 throughout
  'bf16'  the network's forward (and so its backward) under torch.autocast(bfloat16); no loss scaling
  'fp16'  the same in float16, with a gradient scaler (torch.amp.GradScaler) against underflow
  Only the network runs under autocast (`Precision.network` wraps it; its outputs come back in
  float32): the physics around it (PFGM's field target, PFGM++'s kernel and radii, the losses) stays
  in float32 / float64, and `poisson.field_target` turns autocast off itself for callers who wrap
  more than the network.
training.compile
  torch.compile of the network (DistributedDataParallel's wrapper included under torchrun).

TF32 policy (CUDA): the networks' matrix products and cuDNN convolutions may use TF32 (float32 matmul
precision 'high'); PFGM's field target tolerates it (issue 21: 1.9e-5 relative with a simulated
10-bit mantissa, its nearest charges recomputed exactly). The FID Inception turns TF32 off around
its own forward (pfgm.evaluation.inception), as its features need full float32.
cudnn.benchmark: on for training, whose shapes do not change from step to step.
"""
import contextlib

import torch
from torch import nn

MODES = {"no": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def set_backend_policy(device, *, training):
    """Apply the TF32 and cuDNN policy above (no-op off CUDA)."""
    if torch.device(device).type != "cuda":
        return
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    torch.set_float32_matmul_precision("high")
    if training:
        torch.backends.cudnn.benchmark = True


def _to_float32(out):
    if torch.is_tensor(out):
        return out.float() if out.is_floating_point() and out.dtype != torch.float64 else out
    if isinstance(out, (tuple, list)):
        return type(out)(_to_float32(o) for o in out)
    return out


class AutocastNetwork(nn.Module):
    """The network run under torch.autocast(dtype); floating outputs returned in float32."""

    def __init__(self, net, dtype, device_type):
        super().__init__()
        self.net, self.dtype, self.device_type = net, dtype, device_type

    def forward(self, *args, **kwargs):
        with torch.autocast(self.device_type, dtype=self.dtype):
            out = self.net(*args, **kwargs)
        return _to_float32(out)


class Precision:
    """training.mixed_precision and training.compile of one run (see the module docstring)."""

    def __init__(self, config, device):
        t = config.training
        mode = t.mixed_precision
        if mode not in MODES:
            raise ValueError(f"training.mixed_precision: {mode!r} is not one of {sorted(MODES)}")
        self.mode, self.dtype, self.device = mode, MODES[mode], torch.device(device)
        self.compile = bool(t.compile)
        self.scaler = torch.amp.GradScaler(self.device.type) if mode == "fp16" else None

    def network(self, net):
        """The network as the loss should call it: compiled and under autocast as configured."""
        if self.compile:
            net = torch.compile(net)
        if self.dtype is not None:
            net = AutocastNetwork(net, self.dtype, self.device.type)
        return net

    def backward(self, loss):
        (self.scaler.scale(loss) if self.scaler is not None else loss).backward()

    def unscale(self, optimizer):
        """Gradients back to their true scale (fp16), before they are clipped or checked."""
        if self.scaler is not None:
            self.scaler.unscale_(optimizer)

    def update(self):
        """The fp16 scale for the next step: halved after a step with non-finite gradients, grown after a
        run of good ones (on the device: no host read)."""
        if self.scaler is not None:
            self.scaler.update()


@contextlib.contextmanager
def full_precision(device_type):
    """Autocast off within the block (the physics computed in the dtypes it was written for)."""
    with torch.autocast(device_type, enabled=False):
        yield
