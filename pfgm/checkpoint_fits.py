"""Does a read checkpoint fit the network, EMA and optimizer it is loaded into? Checked before anything
is copied: every tensor must be one the model, the EMA or the optimizer declares, with the declared
shape and dtype. Checkpoints are read memory-mapped, so a tensor refused here never costs memory
(issue 18, case 12: a 7 MB file holding a 4 GB tensor).
"""
import numbers

import torch


def _short(names):
    names = sorted(names)
    return f"{names[:3]}{'...' if len(names) > 3 else ''}"


def _strip_module(weights):
    if weights and all(isinstance(k, str) and k.startswith("module.") for k in weights):
        return {k[len("module."):]: v for k, v in weights.items()}
    return weights


def model_problems(weights, model):
    """What keeps `weights` (a state dict) from loading into `model` strictly: names, shapes, dtypes."""
    if not isinstance(weights, dict):
        return [f"'model' is a {type(weights).__name__}, not a state dict"]
    weights = _strip_module(weights)
    own = model.state_dict()
    parts = []
    missing, unexpected = set(own) - set(weights), set(weights) - set(own)
    if missing:
        parts.append(f"missing {_short(missing)}")
    if unexpected:
        parts.append(f"unexpected {_short(str(k) for k in unexpected)}")
    for k in own:
        v = weights.get(k)
        if k not in weights:
            continue
        if not isinstance(v, torch.Tensor):
            parts.append(f"{k} is a {type(v).__name__}, not a tensor")
        elif tuple(v.shape) != tuple(own[k].shape):
            parts.append(f"shape of {k}: {tuple(v.shape)} in file vs {tuple(own[k].shape)} in model")
        elif v.dtype != own[k].dtype:
            parts.append(f"dtype of {k}: {v.dtype} in file vs {own[k].dtype} in model")
        else:
            continue
        break  # the first bad tensor is enough to name
    return parts


def ema_problems(state, ema):
    """What keeps an EMA entry from loading: its shadow tensors must match the trainable parameters."""
    if not isinstance(state, dict) or "shadow_params" not in state:
        return ["'ema' has no shadow_params"]
    shadow = state["shadow_params"]
    if not isinstance(shadow, (list, tuple)) or len(shadow) != len(ema.shadow_params):
        n = len(shadow) if isinstance(shadow, (list, tuple)) else type(shadow).__name__
        return [f"EMA holds {n} tensors, the model has {len(ema.shadow_params)}"]
    for i, (a, b) in enumerate(zip(shadow, ema.shadow_params)):
        if not isinstance(a, torch.Tensor) or tuple(a.shape) != tuple(b.shape) or a.dtype != b.dtype:
            got = f"{tuple(a.shape)} {a.dtype}" if isinstance(a, torch.Tensor) else type(a).__name__
            return [f"EMA tensor {i} ({ema.names[i]}): {got} in file vs {tuple(b.shape)} {b.dtype} in model"]
    for key in ("decay", "num_updates"):
        if key in state and (isinstance(state[key], bool) or not isinstance(state[key], numbers.Real)):
            return [f"EMA {key} is {state[key]!r}, not a number"]
    return []


def optimizer_problems(state, optimizer):
    """What keeps an optimizer entry from loading: per-parameter state of the parameters' own shapes
    (scalars such as Adam's step excepted), one group layout as the optimizer's."""
    if not isinstance(state, dict) or not isinstance(state.get("state"), dict) \
            or not isinstance(state.get("param_groups"), list):
        return ["'optimizer' is not an optimizer state dict (state, param_groups)"]
    params = [p for g in optimizer.param_groups for p in g["params"]]
    ids = []
    for g in state["param_groups"]:
        if not isinstance(g, dict) or not isinstance(g.get("params"), list):
            return ["optimizer param_groups are malformed"]
        ids += g["params"]
    if len(ids) != len(params) or len(state["param_groups"]) != len(optimizer.param_groups):
        return [f"optimizer state is for {len(ids)} parameters in {len(state['param_groups'])} groups, "
                f"the model has {len(params)} in {len(optimizer.param_groups)}"]
    shape_of = dict(zip(ids, (p.shape for p in params)))
    for pid, entry in state["state"].items():
        if pid not in shape_of or not isinstance(entry, dict):
            return [f"optimizer state for parameter {pid!r}, which no group declares"]
        for name, value in entry.items():
            if isinstance(value, torch.Tensor):
                if value.numel() > 1 and tuple(value.shape) != tuple(shape_of[pid]):
                    return [f"optimizer {name} of parameter {pid}: shape {tuple(value.shape)} vs "
                            f"{tuple(shape_of[pid])} in model"]
                if value.numel() <= 1 and value.dim() > 1:
                    return [f"optimizer {name} of parameter {pid}: shape {tuple(value.shape)}"]
            elif isinstance(value, bool) or not isinstance(value, numbers.Real):
                return [f"optimizer {name} of parameter {pid} is a {type(value).__name__}"]
    return []


def problems(state, model, ema=None, optimizer=None):
    """Every reason (first few) `state` cannot load into model / ema / optimizer; [] when it fits."""
    found = model_problems(state["model"], model)
    if ema is not None and "ema" in state:
        found += ema_problems(state["ema"], ema)
    if optimizer is not None and state.get("optimizer"):
        found += optimizer_problems(state["optimizer"], optimizer)
    return found
