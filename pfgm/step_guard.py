"""A training step without host syncs: the non-finite skip decided and applied on the device.

The host learns what happened only when it asks (`read`, every training.log_freq steps): until then
the loss, the skip decision and the counters of skipped updates stay on the device, so a GPU step is
never stalled by a `.item()`. Every rank takes the same decision: the finiteness flag is all-reduced
(min) before the update, so one rank cannot skip while the others step (their replicas would diverge).

The update itself is skipped on the device: Adam runs its fused kernel with `found_inf` (the way
torch's GradScaler skips a step without a sync), and the EMA moves by a weight multiplied by the flag.
"""
import torch
import torch.distributed as dist


def use_fused(optimizer):
    """Switch an Adam to its fused kernel (which honours `found_inf`), also after `load_state_dict` put
    back a checkpoint's `fused: None`; its step counters go to the parameters' device as it requires."""
    for group in optimizer.param_groups:
        group["fused"], group["foreach"] = True, None
        for p in group["params"]:
            state = optimizer.state.get(p, {})
            step = state.get("step")
            if step is not None and (not torch.is_tensor(step) or step.device != p.device):
                state["step"] = torch.as_tensor(float(step), dtype=torch.float32, device=p.device)


def agreed_finite(loss, norm, world):
    """Device bool: loss and gradient norm finite on every rank (all-reduced, no host read)."""
    ok = (torch.isfinite(loss.detach()) & torch.isfinite(norm)).to(torch.int32)
    if world > 1:
        dist.all_reduce(ok, op=dist.ReduceOp.MIN)
    return ok.bool()


def optimizer_step(optimizer, ok):
    """optimizer.step(), skipped on the device where `ok` is False (parameters, moments, step count)."""
    optimizer.found_inf = (~ok).to(torch.float32)
    try:
        optimizer.step()
    finally:
        del optimizer.found_inf


class SkipCounter:
    """Skipped updates, counted on the device: the current streak, the longest streak since the last
    read, the skips since the last read, the total."""

    def __init__(self, device, total=0):
        self.in_row = torch.zeros((), dtype=torch.int64, device=device)
        self.longest = torch.zeros_like(self.in_row)
        self.window = torch.zeros_like(self.in_row)
        self.total = torch.full((), int(total), dtype=torch.int64, device=device)
        self._host = (0, 0, 0, int(total))

    def record(self, ok):
        bad = (~ok).to(torch.int64)
        self.in_row = (self.in_row + 1) * bad
        self.longest = torch.maximum(self.longest, self.in_row)
        self.window += bad
        self.total += bad

    def read(self, *extra):
        """One host read: (in_row, longest, window, total) and the float values of `extra` device
        scalars (the loss, a stop flag); resets the window's counts."""
        parts = [self.in_row, self.longest, self.window, self.total]
        parts += [e.detach().to(self.in_row.device).reshape(()) for e in extra]
        got = torch.stack([v.to(torch.float64) for v in parts]).tolist()
        self.longest = self.in_row.clone()
        self.window.zero_()
        self._host = tuple(int(v) for v in got[:4])
        return self._host, got[4:]

    @property
    def last_read(self):
        """(in_row, longest, window, total) as of the last read (no sync)."""
        return self._host
