"""Generative methods behind one interface, chosen by `config.training.sde`.

A method knows its training loss and its sampler; the training and evaluation loops only ask it:

    method = get_method(config)
    loss = method.loss(model, batch)                    # batch: (B_L, *shape) in model space
    samples, nfe = method.sample(model, n, shape)       # model space, plus the NFE used
"""
import importlib

# training.sde -> "module:Class"; imported on demand so each method stays in its own module.
_METHODS = {
    "poisson": "pfgm.methods.poisson:Poisson",
    "vesde": "pfgm.methods.sde:VESDE",
    "vpsde": "pfgm.methods.sde:VPSDE",
    "subvpsde": "pfgm.methods.sde:subVPSDE",
    "pfgmpp": "pfgm.methods.pfgmpp:PFGMPP",
}


def method_names():
    return sorted(_METHODS)


def get_method_class(name):
    if name not in _METHODS:
        raise ValueError(f"training.sde: unknown method {name!r}; known: {method_names()}")
    module, cls = _METHODS[name].split(":")
    return getattr(importlib.import_module(module), cls)


def get_method(config):
    return get_method_class(config.training.sde)(config)
