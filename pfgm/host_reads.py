"""Counting the host's reads of tensor values (each one a device sync on a GPU), on any device.

`HostReads()` is a context manager (a torch function mode) that counts, while active, the calls that
bring a tensor's value to the host: `.item()`, `.tolist()`, `.numpy()`, `.cpu()`, and `bool()`,
`float()`, `int()` of a tensor (an `if tensor:` included). On CPU nothing syncs, but the same code on
CUDA would stall at each of them, so the count on CPU is what a GPU run would wait for.
"""
import collections

import torch
from torch.overrides import TorchFunctionMode

_READS = {torch.Tensor.item: "item", torch.Tensor.tolist: "tolist", torch.Tensor.numpy: "numpy",
          torch.Tensor.cpu: "cpu", torch.Tensor.__bool__: "bool", torch.Tensor.__float__: "float",
          torch.Tensor.__int__: "int", torch.Tensor.__index__: "index"}


_UPLOADS = (torch.tensor, torch.as_tensor, torch.from_numpy)


class HostReads(TorchFunctionMode):
    """Counts host reads while active: `total`, and `by_kind` (name -> count); `uploads` counts the
    tensors made from host data (torch.tensor / as_tensor / from_numpy of non-tensors: on a GPU, a copy
    that waits for the host)."""

    def __init__(self):
        super().__init__()
        self.by_kind = collections.Counter()
        self.uploads = 0

    @property
    def total(self):
        return sum(self.by_kind.values())

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kind = _READS.get(func)
        if kind is not None:
            self.by_kind[kind] += 1
        elif func in _UPLOADS and args and not isinstance(args[0], torch.Tensor):
            self.uploads += 1
        return func(*args, **(kwargs or {}))
