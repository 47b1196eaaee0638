"""Data sets. `get_dataset(config)` returns a `Dataset` named by `config.data.dataset`.

A Dataset has `shape` (one sample's shape), `train_batches(batch_size, generator)` (an endless
iterator of (batch_size, *shape) float tensors) and `eval_data(n, generator)` (held-out samples).
Images come in [0, 1]; `data_scaler(config)` maps them to model space ([-1, 1] when
`data.centered`), `inverse_scaler(config)` maps back. Toy 2-D sets come in model space already.
"""
import importlib

# data.dataset -> "module:factory"; factories take the config and return a Dataset.
_DATASETS = {
    "checkerboard": "pfgm.datasets.toy:make",
    "moons": "pfgm.datasets.toy:make",
    "heart": "pfgm.datasets.toy:make",
    "eight_gaussians": "pfgm.datasets.toy:make",
    "swiss_roll": "pfgm.datasets.toy:make",
    "points": "pfgm.datasets.toy:load_points",
    "digits": "pfgm.datasets.digits:make_digits",
    "CIFAR10": "pfgm.datasets.cifar10:make_cifar10",
    "CELEBA": "pfgm.datasets.image_folder:make_folder",
    "LSUN": "pfgm.datasets.image_folder:make_folder",
    "folder": "pfgm.datasets.image_folder:make_folder",
}
# The modules whose factories return an `ImageDataset` (pfgm.datasets.image_base).
_IMAGE_MODULES = ("pfgm.datasets.digits", "pfgm.datasets.cifar10", "pfgm.datasets.image_folder")


class DataError(ValueError):
    """A data set that cannot be read: missing, corrupt or of the wrong shape. Names the path."""


def dataset_names():
    return sorted(_DATASETS)


def is_image_dataset(name):
    """Whether data.dataset `name` is an image data set (an `ImageDataset`: digits, CIFAR10, folders)."""
    return _DATASETS.get(name, "").split(":")[0] in _IMAGE_MODULES


def get_dataset(config):
    name = config.data.dataset
    if name not in _DATASETS:
        raise ValueError(f"data.dataset: unknown data set {name!r}; known: {dataset_names()}")
    module, fn = _DATASETS[name].split(":")
    return getattr(importlib.import_module(module), fn)(config)


def data_scaler(config):
    if config.data.centered:
        return lambda x: 2.0 * x - 1.0
    return lambda x: x


def inverse_scaler(config):
    if config.data.centered:
        return lambda x: (x + 1.0) / 2.0
    return lambda x: x
