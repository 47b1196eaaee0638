"""CIFAR-10 from its python-version pickles (the .tar.gz archive or the extracted folder) as an
`ImageDataset` held in memory; unpickling admits only what a batch holds. Raises `DataError` naming
data.root for any unreadable or malformed input."""
import io
import os
import pickle
import tarfile
import zlib

import numpy as np
import torch

from pfgm.datasets import DataError
from pfgm.datasets.image_base import ArraySource, ImageDataset, check_size

# 5 training batches and 1 test batch of 3x32x32 uint8 images.
CIFAR_TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR_TEST_BATCH = "test_batch"
CIFAR_ROW = 3 * 32 * 32
CIFAR_FOLDER = "cifar-10-batches-py"
CIFAR_ARCHIVE = "cifar-10-python.tar.gz"


class _BatchUnpickler(pickle.Unpickler):
    """Unpickles only what a CIFAR-10 batch holds (dicts, lists, bytes, numpy arrays): a crafted
    file cannot run code."""

    _ALLOWED = {
        ("numpy", "ndarray"), ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
        ("_codecs", "encode"),  # protocol-2 pickles written by Python 3 store bytes this way
    }

    def find_class(self, module, name):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"unexpected object {module}.{name} in a CIFAR-10 batch")
        if module.startswith("numpy.core.") and hasattr(np, "_core"):
            module = "numpy._core." + module[len("numpy.core."):]  # the official files predate numpy 2
        return super().find_class(module, name)


def _parse_cifar_batch(raw, where):
    """((k, 3, 32, 32) uint8 array, (k,) int64 labels or None) from one pickled batch's bytes; `where`
    names it in errors."""
    try:
        batch = _BatchUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except Exception as e:  # pickle raises many kinds for garbage
        raise DataError(f"data.root: cannot unpickle CIFAR-10 batch {where}: {e}") from e
    if not isinstance(batch, dict):
        raise DataError(f"data.root: CIFAR-10 batch {where} is a {type(batch).__name__}, not a dict")
    data = batch.get(b"data", batch.get("data"))
    labels = batch.get(b"labels", batch.get("labels"))
    if not isinstance(data, np.ndarray) or data.ndim != 2:
        raise DataError(f"data.root: CIFAR-10 batch {where} lacks a 2-D 'data' array")
    if data.shape[1] != CIFAR_ROW:
        raise DataError(f"data.root: CIFAR-10 batch {where} holds rows of length {data.shape[1]}, "
                        f"expected {CIFAR_ROW} (3x32x32)")
    if data.dtype != np.uint8:
        raise DataError(f"data.root: CIFAR-10 batch {where} has dtype {data.dtype}, expected uint8")
    if labels is not None and len(labels) != data.shape[0]:
        raise DataError(f"data.root: CIFAR-10 batch {where} has {data.shape[0]} images but "
                        f"{len(labels)} labels")
    if labels is not None:
        labels = np.asarray(labels)
        if not np.issubdtype(labels.dtype, np.integer) or (len(labels) and not 0 <= labels.min() <= labels.max() < 10):
            raise DataError(f"data.root: CIFAR-10 batch {where} has labels outside the classes 0..9")
        labels = labels.astype(np.int64)
    # Each row is the red, then green, then blue 32x32 plane, row-major: already channel-first.
    return data.reshape(-1, 3, 32, 32), labels


def _read_cifar_archive(path):
    wanted = set(CIFAR_TRAIN_BATCHES + (CIFAR_TEST_BATCH,))
    found = {}
    try:
        with tarfile.open(path, "r:*") as tar:
            for member in tar:
                name = os.path.basename(member.name)
                if member.isfile() and name in wanted and name not in found:
                    found[name] = (tar.extractfile(member).read(), f"{path}:{member.name}")
    except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
        raise DataError(f"data.root: cannot read CIFAR-10 archive {path!r}: {e}") from e
    missing = sorted(wanted - set(found))
    if missing:
        raise DataError(f"data.root: CIFAR-10 archive {path!r} lacks the batches {missing}")
    return {name: _parse_cifar_batch(raw, where) for name, (raw, where) in found.items()}


def _read_cifar_folder(folder):
    wanted = CIFAR_TRAIN_BATCHES + (CIFAR_TEST_BATCH,)
    missing = [n for n in wanted if not os.path.isfile(os.path.join(folder, n))]
    if missing:
        raise DataError(f"data.root: CIFAR-10 folder {folder!r} lacks the batches {missing}")
    out = {}
    for name in wanted:
        path = os.path.join(folder, name)
        try:
            with open(path, "rb") as f:
                raw = f.read()
        except OSError as e:
            raise DataError(f"data.root: cannot read {path!r}: {e}") from e
        out[name] = _parse_cifar_batch(raw, path)
    return out


WHERE_FROM = (f" ({CIFAR_ARCHIVE}, 'CIFAR-10 python version', 163 MB, from "
              "https://www.cs.toronto.edu/~kriz/cifar.html; nothing is downloaded)")


def missing_root(root):
    """The error for a data.root that does not exist: what file is expected there, and where it comes from."""
    return (f"data.root: no such file or folder {root!r}; CIFAR-10 is read from {CIFAR_ARCHIVE}, its extracted "
            f"{CIFAR_FOLDER}/ or a folder holding either: put the archive at {os.path.join(root, CIFAR_ARCHIVE)!r} "
            f"or pass --config.data.root=PATH{WHERE_FROM}")


def read_cifar10(root):
    """{batch name: ((k, 3, 32, 32) uint8, (k,) labels or None)} from `root`: the .tar.gz archive, the extracted
    cifar-10-batches-py folder, or a folder holding either (the folder wins)."""
    if not root:
        raise DataError(f"data.root is empty: point it at {CIFAR_ARCHIVE} or {CIFAR_FOLDER}/{WHERE_FROM}")
    if not os.path.exists(root):
        raise DataError(missing_root(root))
    if os.path.isfile(root):
        return _read_cifar_archive(root)
    if any(os.path.isfile(os.path.join(root, n)) for n in CIFAR_TRAIN_BATCHES + (CIFAR_TEST_BATCH,)):
        return _read_cifar_folder(root)
    if os.path.isdir(os.path.join(root, CIFAR_FOLDER)):
        return _read_cifar_folder(os.path.join(root, CIFAR_FOLDER))
    if os.path.isfile(os.path.join(root, CIFAR_ARCHIVE)):
        return _read_cifar_archive(os.path.join(root, CIFAR_ARCHIVE))
    raise DataError(f"data.root: {root!r} holds neither {CIFAR_FOLDER}/ nor {CIFAR_ARCHIVE}{WHERE_FROM}")


def make_cifar10(config):
    """CIFAR-10 from `data.root`. Train split: data_batch_1..5 (50k); eval split: test_batch (10k).

    Kept in memory as uint8; `data.image_size` != 32 resizes each batch bilinearly (antialiased),
    like the official pipeline's antialiased resize.
    """
    size = check_size(config, "CIFAR10")
    if int(config.data.num_channels) != 3:
        raise ValueError("data.num_channels must be 3 for CIFAR10")
    batches = read_cifar10(config.data.root)
    train = torch.from_numpy(np.concatenate([batches[n][0] for n in CIFAR_TRAIN_BATCHES]))
    test = torch.from_numpy(np.ascontiguousarray(batches[CIFAR_TEST_BATCH][0]))
    # the 10 classes when every batch has its labels (a batch without them leaves the data unlabelled)
    labelled = all(b[1] is not None for b in batches.values())
    train_labels = torch.from_numpy(np.concatenate([batches[n][1] for n in CIFAR_TRAIN_BATCHES])) if labelled else None
    test_labels = torch.from_numpy(batches[CIFAR_TEST_BATCH][1]) if labelled else None
    resize = None if size == 32 else size
    return ImageDataset("CIFAR10", (3, size, size), ArraySource(train, 255.0, resize, train_labels),
                        ArraySource(test, 255.0, resize, test_labels), config.data.random_flip,
                        config.data.uniform_dequantization, num_classes=10 if labelled else 0)
