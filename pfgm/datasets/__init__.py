"""Data sets. `get_dataset(config)` returns a `Dataset` named by `config.data.dataset`.

A Dataset has `shape` (one sample's shape), `train_batches(batch_size, generator)` (an endless
iterator of (batch_size, *shape) float tensors), `eval_data(n, generator)` (held-out samples), and
`num_classes` (0: no labels; else its labels are LongTensors of classes 0..num_classes - 1, and
`eval_labelled(n, generator)` gives (eval_data(n, generator), their labels)).
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
    dataset = getattr(importlib.import_module(module), fn)(config)
    check_classes(config, dataset)
    return dataset


def check_classes(config, dataset):
    """A conditional config (model.label_dim > 0) needs a data set of exactly that many classes. (A
    config of data alone, as tools/fid.py builds, has no model to condition.)"""
    label_dim = config.model.label_dim if "model" in config else 0
    classes = getattr(dataset, "num_classes", 0)
    if label_dim and label_dim != classes:
        has = f"has {classes} classes" if classes else "has no labels"
        raise DataError(f"model.label_dim: {label_dim} classes, but the data set {config.data.dataset!r} {has}")


def held_out_with_labels(dataset, n, generator):
    """(n held-out points as numpy, their labels as numpy or None), drawn as dataset.eval_data(n, generator)."""
    if getattr(dataset, "num_classes", 0):
        x, labels = dataset.eval_labelled(n, generator)
        return x.numpy(), None if labels is None else labels.numpy()
    return dataset.eval_data(n, generator).numpy(), None


def data_scaler(config):
    if config.data.centered:
        return lambda x: 2.0 * x - 1.0
    return lambda x: x


def inverse_scaler(config):
    if config.data.centered:
        return lambda x: (x + 1.0) / 2.0
    return lambda x: x
