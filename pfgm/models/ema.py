"""Exponential moving average of the trainable parameters, in the original checkpoint layout."""
import contextlib

import torch


class ExponentialMovingAverage:
    """Shadow copy s <- s - (1 - d)(s - p) with d = min(decay, (1 + n) / (10 + n)), n = updates so far.

    The state dict is `{decay, num_updates, shadow_params}` with shadow_params an unnamed list in the
    order of `model.parameters()` restricted to trainable ones, exactly as the original code stores it,
    so published checkpoints load. `names` keeps the parameter names alongside to check that order.
    """

    def __init__(self, model, decay):
        if not 0.0 <= decay <= 1.0:
            raise ValueError(f"model.ema_rate must be in [0, 1], got {decay}")
        self.decay = decay
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

    @torch.no_grad()
    def update(self, model):
        self.num_updates += 1
        decay = min(self.decay, (1 + self.num_updates) / (10 + self.num_updates))
        for s, p in zip(self.shadow_params, self._trainable(model)):
            s.sub_((1.0 - decay) * (s - p))

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
