"""A folder of images (CelebA, LSUN, anything) as an `ImageDataset`: files listed by
`pfgm.images.list_images`, split by sub-folders, CelebA's partition file or file names, decoded lazily per
batch. Raises `DataError` naming data.root for a missing folder or an unreadable image."""
import os
import threading
import zlib
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from pfgm.datasets import DataError
from pfgm.datasets.folder_labels import folder_labels
from pfgm.datasets.image_base import ImageDataset, check_size
from pfgm.images import HIGH_DEPTH_WHITE, IMAGE_EXTENSIONS, high_depth_to_unit, list_images, to_uint8

# Held-out fraction when the folder has no split of its own (see _split_folder).
FOLDER_EVAL_FRACTION = 1 / 20
FOLDER_SPLIT_DIRS = ("test", "validation", "val", "valid")  # eval sub-folder names, in preference order
CELEBA_PARTITION_FILE = "list_eval_partition.txt"
CELEBA_CROP = 140


def _center_crop(im, width, height):
    w, h = im.size
    width, height = min(width, w), min(height, h)
    left, top = int(round((w - width) / 2.0)), int(round((h - height) / 2.0))
    return im.crop((left, top, left + width, top + height))


def celeba_transform(size):
    """The official CelebA transform: center crop 140 (or the shorter side, if smaller), then a
    bilinear resize to size x size (Pillow filters are antialiased when shrinking)."""
    from PIL import Image

    def transform(im):
        im = _center_crop(im, CELEBA_CROP, CELEBA_CROP)
        side = min(im.size)
        im = _center_crop(im, side, side)
        return im if im.size == (size, size) else im.resize((size, size), Image.BILINEAR)
    return transform


def square_transform(size):
    """LSUN / generic: center crop to a square, then an antialiased bicubic resize to size x size."""
    from PIL import Image

    def transform(im):
        side = min(im.size)
        im = _center_crop(im, side, side)
        return im if im.size == (size, size) else im.resize((size, size), Image.BICUBIC)
    return transform


def read_image(path, transform, channels):
    """Decode one image to a float32 (channels, H, W) tensor in [0, 1]; DataError if unreadable."""
    return read_image_uint8(path, transform, channels).to(torch.float32) / 255.0


def read_image_uint8(path, transform, channels):
    """Decode one image to a uint8 (channels, H, W) tensor; DataError if unreadable. 16-bit and float images
    are scaled by their mode's own range (`pfgm.images.HIGH_DEPTH_WHITE`) to the 256 levels, not clipped."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            limit = Image.MAX_IMAGE_PIXELS
            if limit and im.width * im.height > limit:  # Pillow only warns up to twice its limit
                raise ValueError(f"{im.width}x{im.height} pixels, more than Pillow's limit of {limit} "
                                 "(a decompression bomb?); shrink the image")
            if im.mode in HIGH_DEPTH_WHITE:
                unit = transform(Image.fromarray(high_depth_to_unit(im, path), mode="F"))
                grey = torch.from_numpy(to_uint8(np.array(unit, dtype=np.float32).clip(0.0, 1.0)))[None]
                return grey.repeat(channels, 1, 1)
            im = transform(im.convert("L" if channels == 1 else "RGB"))
            arr = np.array(im, dtype=np.uint8)
    except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError) as e:
        raise DataError(f"data.root: cannot read image {path!r}: {e}") from e
    t = torch.from_numpy(arr)
    return t.unsqueeze(0) if t.dim() == 2 else t.permute(2, 0, 1).contiguous()


class FolderSource:
    """Image files decoded lazily, a batch at a time (a few threads: Pillow decodes without the GIL)."""

    def __init__(self, files, transform, shape, workers=None):
        self.files, self.transform, self.shape = list(files), transform, tuple(shape)
        self.workers = workers or min(4, os.cpu_count() or 1)
        self._pool, self._lock = None, threading.Lock()

    def __len__(self):
        return len(self.files)

    def _read(self, i):
        x = read_image_uint8(self.files[i], self.transform, self.shape[0])
        if tuple(x.shape) != self.shape:
            raise DataError(f"data.root: image {self.files[i]!r} decodes to shape {tuple(x.shape)}, "
                            f"expected {self.shape}")
        return x

    def load(self, idx):
        return self.load_uint8(idx).to(torch.float32) / 255.0

    def load_uint8(self, idx, threads=True):
        """The images `idx` as stored: uint8 (k, C, H, W); `threads=False` decodes them one by one (in
        DataLoader workers, which are the parallelism, and where a forked thread pool can deadlock)."""
        idx = [int(i) for i in idx]
        if threads and self.workers > 1 and len(idx) > 1:
            with self._lock:
                if self._pool is None:
                    self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="pfgm-images")
            images = list(self._pool.map(self._read, idx))
        else:
            images = [self._read(i) for i in idx]
        return torch.stack(images)

    def __getstate__(self):  # the thread pool does not travel (e.g. to DataLoader workers)
        state = dict(self.__dict__)
        state["_pool"], state["_lock"] = None, None
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._lock = threading.Lock()


def _celeba_partition(root, files):
    """CelebA's own split from list_eval_partition.txt (0 train, 1 valid, 2 test), or None."""
    path = os.path.join(root, CELEBA_PARTITION_FILE)
    if not os.path.isfile(path):
        return None
    part = {}
    try:
        with open(path) as f:
            for line in f:
                fields = line.split()
                if len(fields) == 2:
                    part[fields[0]] = fields[1]
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"data.root: cannot read {path!r}: {e}") from e
    train = [p for p in files if part.get(os.path.basename(p)) == "0"]
    held_out = [p for p in files if part.get(os.path.basename(p)) == "2"]
    return (train, held_out) if train and held_out else None


def _split_folder(root, files):
    """(train files, eval files). In order of preference:
      1. sub-folders root/train and root/{test, validation, val, valid} (the first that has images);
      2. CelebA's list_eval_partition.txt in root: partition 0 trains, partition 2 (test) evaluates,
         the official CelebA eval split;
      3. otherwise a fixed held-out fraction: the ceil(n/20) files whose relative path has the
         smallest CRC-32. The split depends only on the file names, so adding files moves few.
    """
    train_dir = os.path.join(root, "train")
    if os.path.isdir(train_dir):
        for name in FOLDER_SPLIT_DIRS:
            eval_dir = os.path.join(root, name)
            if os.path.isdir(eval_dir):
                train, held_out = list_images(train_dir), list_images(eval_dir)
                if train and held_out:
                    return train, held_out
    split = _celeba_partition(root, files)
    if split is not None:
        return split
    if len(files) < 2:
        raise DataError(f"data.root: {root!r} holds {len(files)} image; at least 2 are needed "
                        "(one is held out)")
    n_eval = int(np.ceil(len(files) * FOLDER_EVAL_FRACTION))
    key = {p: zlib.crc32(os.path.relpath(p, root).replace(os.sep, "/").encode()) for p in files}
    held = set(sorted(files, key=lambda p: (key[p], p))[:n_eval])
    return [p for p in files if p not in held], [p for p in files if p in held]


def make_folder(config):
    """A folder of images (any of `IMAGE_EXTENSIONS`, in `list_images` order) at `data.root`.

    data.dataset 'CELEBA': center crop 140 then bilinear resize to data.image_size (official CelebA
    transform); 'LSUN' and 'folder': center crop to a square then antialiased bicubic resize.
    Images are converted to RGB (grey when data.num_channels is 1) and decoded lazily per batch;
    an unreadable file raises DataError when a batch first reaches it. Splits: see _split_folder; classes
    (one per sub-folder, or EDM's dataset.json): pfgm.datasets.folder_labels.
    """
    root = config.data.root
    name = config.data.dataset
    size = check_size(config, name)
    channels = int(config.data.num_channels)
    if channels not in (1, 3):
        raise ValueError(f"data.num_channels must be 1 or 3, got {channels}")
    if not root:
        raise DataError(f"data.root is empty: point it at a folder of images for {name}")
    if not os.path.isdir(root):
        what = "is not a folder" if os.path.exists(root) else "no such folder"
        raise DataError(f"data.root: {what} {root!r}")
    files = list_images(root)
    if not files:
        raise DataError(f"data.root: no images ({', '.join(IMAGE_EXTENSIONS)}) under {root!r}")
    train, held_out = _split_folder(root, files)
    transform = celeba_transform(size) if name == "CELEBA" else square_transform(size)
    shape = (channels, size, size)
    train_src, eval_src = FolderSource(train, transform, shape), FolderSource(held_out, transform, shape)
    num_classes, train_src.labels, eval_src.labels = folder_labels(root, train, held_out)
    return ImageDataset(name, shape, train_src, eval_src, config.data.random_flip,
                        config.data.uniform_dequantization, num_classes=num_classes)
