"""Networks. `build(config)` builds the one named by `config.model.name`.

Convention: a network is called as `model(x, cond, class_labels=None, augment_labels=None)` (labels:
pfgm.models.conditioning). For PFGM (`config.training.sde == 'poisson'`)
cond is z of shape (B,) and the network returns `(v_x shaped like x, v_z of shape (B,))`; for the
score SDEs cond is the time/noise level of shape (B,) and it returns a tensor shaped like x.
"""
import importlib

_MODELS = {}
# Modules that register networks; imported lazily so a missing optional one cannot break the rest.
_MODULES = ("pfgm.models.mlp", "pfgm.models.ncsnpp", "pfgm.models.songunet")


def register_model(name):
    def wrap(cls):
        if name in _MODELS:
            raise ValueError(f"model {name!r} registered twice")
        _MODELS[name] = cls
        return cls
    return wrap


def _load_all():
    for mod in _MODULES:
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as e:
            if e.name != mod:
                raise


def model_names():
    _load_all()
    return sorted(_MODELS)


def get_model_class(name):
    _load_all()
    if name not in _MODELS:
        raise ValueError(f"model.name: unknown model {name!r}; known: {sorted(_MODELS)}")
    return _MODELS[name]


def build(config, device=None):
    """`config.model.name` built from the config, on `device` (default config.device). A config the
    network cannot be built from is a ConfigError naming model.*."""
    from pfgm.config_checks import ConfigError

    try:
        model = get_model_class(config.model.name)(config)
    except ConfigError:
        raise
    except (ValueError, TypeError, RuntimeError, KeyError, AttributeError) as e:
        raise ConfigError(f"model ({config.model.name}): cannot build the network from "
                          f"this config: {type(e).__name__}: {e}") from e
    return model.to(device if device is not None else config.device)
