"""The classes of a folder of images (`data.dataset = 'folder'`, LSUN, CelebA):

  1. EDM's `dataset.json` in data.root, `{"labels": [[relative path, class], ...]}` (paths with '/'; a null
     `labels` means none), as NVlabs/edm's dataset_tool writes it; every image must be listed;
  2. otherwise one class per immediate sub-folder of the split's folder (root, or root/train and
     root/test when the folder is split that way), sorted by name, when every image lies in one;
  3. otherwise none.
"""
import json
import os

import torch

from pfgm.datasets import DataError

EDM_LABELS_FILE = "dataset.json"


def _split_root(root, path):
    """The folder whose sub-folders are the classes of `path`: root/<split> when the file lies in one of the
    split folders the data set was split by, else root."""
    from pfgm.datasets.image_folder import FOLDER_SPLIT_DIRS
    rel = os.path.relpath(path, root).split(os.sep)
    if len(rel) > 1 and rel[0] in ("train",) + FOLDER_SPLIT_DIRS and os.path.isdir(os.path.join(root, "train")):
        return os.path.join(root, rel[0])
    return root


def _from_json(root, files):
    path = os.path.join(root, EDM_LABELS_FILE)
    try:
        with open(path) as f:
            listed = json.load(f).get("labels")
    except (OSError, ValueError, AttributeError) as e:
        raise DataError(f"data.root: cannot read the labels of {path!r}: {e}") from e
    if listed is None:
        return None
    try:
        table = {str(name).replace("\\", "/"): int(c) for name, c in listed}
    except (TypeError, ValueError) as e:
        raise DataError(f"data.root: {path!r}: `labels` must be [file, class] pairs: {e}") from e
    out = []
    for p in files:
        rel = os.path.relpath(p, root).replace(os.sep, "/")
        if rel not in table:
            raise DataError(f"data.root: {path!r} gives no class for the image {rel!r}")
        out.append(table[rel])
    if min(out, default=0) < 0:
        raise DataError(f"data.root: {path!r}: classes must be 0, 1, ..., got {min(out)}")
    return out


def folder_labels(root, train_files, eval_files):
    """(num_classes, train labels, eval labels) as LongTensors, or (0, None, None) for unlabelled images."""
    files = list(train_files) + list(eval_files)
    if os.path.isfile(os.path.join(root, EDM_LABELS_FILE)):
        labels = _from_json(root, files)
        if labels is None:
            return 0, None, None
        num_classes = max(labels) + 1
    else:
        names = []
        for p in files:
            rel = os.path.relpath(p, _split_root(root, p)).split(os.sep)
            if len(rel) < 2:
                return 0, None, None   # an image outside every sub-folder: no classes
            names.append(rel[0])
        classes = sorted(set(names))
        index = {c: i for i, c in enumerate(classes)}
        labels, num_classes = [index[n] for n in names], len(classes)
    labels = torch.as_tensor(labels, dtype=torch.long)
    return num_classes, labels[:len(train_files)], labels[len(train_files):]
