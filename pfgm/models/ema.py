"""Exponential moving average of the trainable parameters, in the original checkpoint layout.

Two rules for the per-update decay, chosen by the config:
- score_sde's (model.ema_halflife_kimg = 0): d = min(model.ema_rate, (1 + n) / (10 + n)), n = updates so far;
- EDM's (model.ema_halflife_kimg > 0, the PFGM++ recipe): a half-life counted in training images,
  ramped up with the images seen, `edm_beta` below.
Either way one fused update (`torch._foreach_*`) moves every shadow tensor, not a Python loop over them.
"""
import contextlib

import torch


def edm_beta(cur_nimg, batch_size, halflife_nimg, rampup_ratio=0.0):
    """EDM's decay for the update after `cur_nimg` training images (Karras et al. 2022, training_loop.py):
    the half-life is min(halflife_nimg, cur_nimg * rampup_ratio) images (rampup_ratio 0: no ramp-up) and
    beta = 0.5 ** (batch_size / half-life), so the first update (cur_nimg = 0) copies the weights."""
    if rampup_ratio:
        halflife_nimg = min(halflife_nimg, cur_nimg * rampup_ratio)
    return 0.5 ** (batch_size / max(halflife_nimg, 1e-8))


class ExponentialMovingAverage:
    """Shadow copy s <- s - (1 - d)(s - p), d the decay of the chosen rule (module docstring).

    The state dict is `{decay, num_updates, shadow_params}` with shadow_params an unnamed list in the
    order of `model.parameters()` restricted to trainable ones, exactly as the original code stores it,
    so published checkpoints load. `names` keeps the parameter names alongside to check that order.
    halflife_kimg > 0 selects EDM's rule: then `update` needs the images seen before the step and
    `batch_size`, the images per step.
    """

    def __init__(self, model, decay, halflife_kimg=0.0, rampup_ratio=0.0, batch_size=None):
        if not 0.0 <= decay <= 1.0:
            raise ValueError(f"model.ema_rate must be in [0, 1], got {decay}")
        if halflife_kimg < 0 or rampup_ratio < 0:
            raise ValueError("model.ema_halflife_kimg and model.ema_rampup_ratio must be >= 0, got "
                             f"{halflife_kimg} and {rampup_ratio}")
        if halflife_kimg > 0 and not (batch_size and batch_size > 0):
            raise ValueError("EDM's EMA (model.ema_halflife_kimg > 0) needs the images per step")
        self.decay = decay
        self.halflife_nimg = halflife_kimg * 1000.0
        self.rampup_ratio = rampup_ratio
        self.batch_size = batch_size
        self.num_updates = 0
        named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        self.names = [n for n, _ in named]
        self.shadow_params = [p.detach().clone() for _, p in named]
        self.backup = None

    @torch.no_grad()
    def reset(self, model):
        """Shadow = the model's current weights, no updates counted (a checkpoint without EMA)."""
        self.num_updates = 0
        self.shadow_params = [p.detach().clone() for p in self._trainable(model)]

    def _trainable(self, model):
        return [p for p in model.parameters() if p.requires_grad]

    def current_decay(self, cur_nimg=None):
        """The decay the next update uses (num_updates already counts it under score_sde's rule)."""
        if self.halflife_nimg > 0:
            if cur_nimg is None:
                raise ValueError("EDM's EMA rule needs cur_nimg, the training images seen before this step")
            return edm_beta(cur_nimg, self.batch_size, self.halflife_nimg, self.rampup_ratio)
        return min(self.decay, (1 + self.num_updates) / (10 + self.num_updates))

    @torch.no_grad()
    def update(self, model, cur_nimg=None, apply=None):
        """One EMA step toward the model's weights; cur_nimg: images trained on before this step.
        apply: None, or a bool tensor on the device, False leaving the shadow as it is (a step skipped
        on the device, pfgm.step_guard; num_updates counts it all the same)."""
        self.num_updates += 1
        decay = self.current_decay(cur_nimg)
        params = [p.detach() for p in self._trainable(model)]
        if self.halflife_nimg > 0:
            if apply is None:
                torch._foreach_lerp_(self.shadow_params, params, 1.0 - decay)
                return
            # s + w (p - s), lerp's formula for w < 1/2, with w a device tensor: _foreach_lerp_ has no overload
            # for one tensor weight and would read it to the host (a sync per step on CUDA)
            diff = torch._foreach_sub(params, self.shadow_params)
            torch._foreach_mul_(diff, apply.to(diff[0].dtype) * (1.0 - decay))
            torch._foreach_add_(self.shadow_params, diff)
            return
        # s - (1 - d)(s - p) in this order, as the per-tensor loop computed it: bit for bit the same
        diff = torch._foreach_sub(self.shadow_params, params)
        torch._foreach_mul_(diff, 1.0 - decay)
        if apply is not None:
            torch._foreach_mul_(diff, apply.to(diff[0].dtype))
        torch._foreach_sub_(self.shadow_params, diff)

    @torch.no_grad()
    def copy_to(self, model):
        params = self._trainable(model)
        if len(params) != len(self.shadow_params):
            raise ValueError(f"EMA holds {len(self.shadow_params)} tensors, the model has {len(params)}")
        for s, p in zip(self.shadow_params, params):
            p.copy_(s)

    def store(self, model):
        self.backup = [p.detach().clone() for p in self._trainable(model)]

    @torch.no_grad()
    def restore(self, model):
        for b, p in zip(self.backup, self._trainable(model)):
            p.copy_(b)
        self.backup = None

    @contextlib.contextmanager
    def swapped_in(self, model):
        """Within the block the model holds the EMA weights, in eval mode; its own come back after."""
        self.store(model)
        self.copy_to(model)
        model.eval()
        try:
            yield model
        finally:
            self.restore(model)

    def state_dict(self):
        return dict(decay=self.decay, num_updates=self.num_updates, shadow_params=self.shadow_params)

    def load_state_dict(self, state):
        shadow = list(state["shadow_params"])
        if len(shadow) != len(self.shadow_params):
            raise ValueError(f"EMA state has {len(shadow)} tensors, the model has {len(self.shadow_params)}")
        for i, (a, b) in enumerate(zip(shadow, self.shadow_params)):
            if a.shape != b.shape:
                raise ValueError(f"EMA tensor {i} ({self.names[i]}): shape {tuple(a.shape)} != {tuple(b.shape)}")
        self.decay = float(state["decay"])
        self.num_updates = int(state["num_updates"])
        self.shadow_params = [a.detach().clone().to(b.device, b.dtype) for a, b in zip(shadow, self.shadow_params)]
