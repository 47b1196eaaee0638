"""Image data sets: scikit-learn's 8x8 digits, CIFAR-10 (python pickles) and folders of images.

Every factory takes the config and returns an `ImageDataset`:

  shape                          (C, H, W) of one image
  num_train, num_eval            sizes of the two splits
  train_batches(batch_size, g)   endless iterator of float32 (B, C, H, W) batches in [0, 1]: the train
                                 split reshuffled every epoch with the torch generator `g` (a batch may
                                 straddle two epochs, so every batch is full even when B > num_train),
                                 randomly mirrored left-right when `data.random_flip`, uniformly
                                 dequantized, x <- (U + 255 x) / 256, when `data.uniform_dequantization`
  eval_data(n, g)                n held-out images, a random subset (drawn with `g`, cycling through the
                                 split when n > num_eval); never flipped, dequantized like the train split
                                 when `data.uniform_dequantization` (the likelihood's convention)
  eval_batches(batch_size)       the whole held-out split once, in order (last batch may be smaller)
  split_batches(split, batch_size)  'train' or 'test' once, in order, as stored (no flip, no dequantization)

Unlike the official pipeline, the eval split is never flipped, not even during training.
`g` must be a CPU generator: the data live on the CPU; move the batches where they are needed.
Any data problem (missing path, corrupt archive or image, wrong shapes) raises `DataError`
naming the path.
"""
import io
import os
import pickle
import tarfile
import threading
import zlib
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
import torch.nn.functional as F

from pfgm.datasets import DataError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp")

# Digits: a fixed split of the 1797 images, drawn once with this seed.
DIGITS_NUM_EVAL = 297
DIGITS_SPLIT_SEED = 0

# CIFAR-10 python version: 5 training batches and 1 test batch of 3x32x32 uint8 images.
CIFAR_TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR_TEST_BATCH = "test_batch"
CIFAR_ROW = 3 * 32 * 32
CIFAR_FOLDER = "cifar-10-batches-py"
CIFAR_ARCHIVE = "cifar-10-python.tar.gz"

# Image folders: held-out fraction when the folder has no split of its own (see _split_folder).
FOLDER_EVAL_FRACTION = 1 / 20
FOLDER_SPLIT_DIRS = ("test", "validation", "val", "valid")  # eval sub-folder names, in preference order
CELEBA_PARTITION_FILE = "list_eval_partition.txt"
CELEBA_CROP = 140


# ----------------------------------------------------------------------------------------------
# The dataset object


def _index_stream(n, batch_size, generator):
    """Endless batches of indices into range(n): one random permutation per epoch, concatenated."""
    perm, pos = torch.randperm(n, generator=generator), 0
    while True:
        parts, need = [], batch_size
        while need:
            if pos == n:
                perm, pos = torch.randperm(n, generator=generator), 0
            take = min(need, n - pos)
            parts.append(perm[pos:pos + take])
            pos += take
            need -= take
        yield torch.cat(parts)


def random_flip(x, generator):
    """Mirror each image of x (B, C, H, W) left-right with probability 1/2."""
    flip = torch.rand(x.shape[0], generator=generator) < 0.5
    return torch.where(flip[:, None, None, None], x.flip(-1), x)


def uniform_dequantize(x, generator):
    """(U + 255 x) / 256 with U ~ U[0, 1): stays in [0, 1) and within 1/256 of x for x in [0, 1]."""
    u = torch.rand(x.shape, generator=generator, dtype=x.dtype)
    return (u + 255.0 * x) / 256.0


class ImageDataset:
    """Two splits of images (sources with `len()` and `load(indices) -> float (k, C, H, W)`)."""

    def __init__(self, name, shape, train, held_out, random_flip=False, uniform_dequantization=False):
        self.name = name
        self.shape = tuple(shape)
        self.train, self.held_out = train, held_out
        self.random_flip = bool(random_flip)
        self.uniform_dequantization = bool(uniform_dequantization)

    @property
    def num_train(self):
        return len(self.train)

    @property
    def num_eval(self):
        return len(self.held_out)

    def train_batches(self, batch_size, generator):
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        for idx in _index_stream(self.num_train, batch_size, generator):
            x = self.train.load(idx)
            if self.random_flip:
                x = random_flip(x, generator)
            if self.uniform_dequantization:
                x = uniform_dequantize(x, generator)
            yield x

    def eval_data(self, n, generator):
        if n < 1:
            raise ValueError(f"n must be positive, got {n}")
        x = self.held_out.load(next(_index_stream(self.num_eval, n, generator)))
        if self.uniform_dequantization:
            x = uniform_dequantize(x, generator)
        return x

    def split_batches(self, split, batch_size):
        """One split ('train' or 'test') once, in its fixed order, as stored: never flipped or
        dequantized (the last batch may be smaller)."""
        if split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        source = self.train if split == "train" else self.held_out
        for start in range(0, len(source), batch_size):
            yield source.load(torch.arange(start, min(start + batch_size, len(source))))

    def eval_batches(self, batch_size, generator=None):
        """The whole held-out split once, in a fixed order; dequantized with `generator` if enabled."""
        for x in self.split_batches("test", batch_size):
            if self.uniform_dequantization:
                x = uniform_dequantize(x, generator)
            yield x

    def __repr__(self):
        return (f"ImageDataset({self.name!r}, shape={self.shape}, num_train={self.num_train}, "
                f"num_eval={self.num_eval})")


def _resize(x, size):
    """Bilinear resize of a float batch (k, C, h, w) to size x size, antialiased when shrinking."""
    if x.shape[-2:] == (size, size):
        return x
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False,
                         antialias=True).clamp_(0.0, 1.0)


class ArraySource:
    """Images held in memory as a (n, C, H, W) tensor; `scale` maps its values to [0, 1]."""

    def __init__(self, images, scale=1.0, image_size=None):
        self.images, self.scale, self.image_size = images, float(scale), image_size

    def __len__(self):
        return self.images.shape[0]

    def load(self, idx):
        x = self.images[idx].to(torch.float32) / self.scale
        return x if self.image_size is None else _resize(x, self.image_size)


def _check_size(config, what):
    size = int(config.data.get("image_size", 0))
    if size < 1:
        raise ValueError(f"data.image_size must be a positive integer for {what}, got {size}")
    return size


# ----------------------------------------------------------------------------------------------
# Digits


def make_digits(config):
    """scikit-learn's 1797 8x8 hand-written digits (values 0..16 mapped to [0, 1]); no file needed.

    Split: a fixed random permutation (seed DIGITS_SPLIT_SEED) holds out 297 images; 1500 train.
    `data.image_size` != 8 resizes once, bilinearly (antialiased when shrinking); `data.num_channels`
    = 3 repeats the grey channel.
    """
    from sklearn.datasets import load_digits

    size = int(config.data.get("image_size", 8))
    channels = int(config.data.get("num_channels", 1))
    if size < 1:
        raise ValueError(f"data.image_size must be a positive integer, got {size}")
    if channels not in (1, 3):
        raise ValueError(f"data.num_channels must be 1 or 3 for digits, got {channels}")
    images = torch.as_tensor(load_digits().images, dtype=torch.float32).unsqueeze(1) / 16.0
    images = _resize(images, size).repeat(1, channels, 1, 1).contiguous()
    perm = torch.randperm(images.shape[0], generator=torch.Generator().manual_seed(DIGITS_SPLIT_SEED))
    held_out, train = images[perm[:DIGITS_NUM_EVAL]], images[perm[DIGITS_NUM_EVAL:]]
    return ImageDataset("digits", (channels, size, size), ArraySource(train), ArraySource(held_out),
                        config.data.get("random_flip", False),
                        config.data.get("uniform_dequantization", False))


# ----------------------------------------------------------------------------------------------
# CIFAR-10


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
    """(k, 3, 32, 32) uint8 array from one pickled batch's bytes; `where` names it in errors."""
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
    # Each row is the red, then green, then blue 32x32 plane, row-major: already channel-first.
    return data.reshape(-1, 3, 32, 32)


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


def read_cifar10(root):
    """{batch name: (k, 3, 32, 32) uint8} from `root`: the .tar.gz archive, the extracted
    cifar-10-batches-py folder, or a folder holding either (the folder wins)."""
    if not root:
        raise DataError("data.root is empty: point it at cifar-10-python.tar.gz or cifar-10-batches-py")
    if not os.path.exists(root):
        raise DataError(f"data.root: no such file or folder {root!r}")
    if os.path.isfile(root):
        return _read_cifar_archive(root)
    if any(os.path.isfile(os.path.join(root, n)) for n in CIFAR_TRAIN_BATCHES + (CIFAR_TEST_BATCH,)):
        return _read_cifar_folder(root)
    if os.path.isdir(os.path.join(root, CIFAR_FOLDER)):
        return _read_cifar_folder(os.path.join(root, CIFAR_FOLDER))
    if os.path.isfile(os.path.join(root, CIFAR_ARCHIVE)):
        return _read_cifar_archive(os.path.join(root, CIFAR_ARCHIVE))
    raise DataError(f"data.root: {root!r} holds neither {CIFAR_FOLDER}/ nor {CIFAR_ARCHIVE}")


def make_cifar10(config):
    """CIFAR-10 from `data.root`. Train split: data_batch_1..5 (50k); eval split: test_batch (10k).

    Kept in memory as uint8; `data.image_size` != 32 resizes each batch bilinearly (antialiased),
    like the official pipeline's antialiased resize.
    """
    size = _check_size(config, "CIFAR10")
    if int(config.data.get("num_channels", 3)) != 3:
        raise ValueError("data.num_channels must be 3 for CIFAR10")
    batches = read_cifar10(config.data.get("root", ""))
    train = torch.from_numpy(np.concatenate([batches[n] for n in CIFAR_TRAIN_BATCHES]))
    test = torch.from_numpy(np.ascontiguousarray(batches[CIFAR_TEST_BATCH]))
    resize = None if size == 32 else size
    return ImageDataset("CIFAR10", (3, size, size), ArraySource(train, 255.0, resize),
                        ArraySource(test, 255.0, resize), config.data.get("random_flip", False),
                        config.data.get("uniform_dequantization", False))


# ----------------------------------------------------------------------------------------------
# Folders of images (CelebA, LSUN, anything)


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
    from PIL import Image

    try:
        with Image.open(path) as im:
            im = transform(im.convert("L" if channels == 1 else "RGB"))
            arr = np.array(im, dtype=np.uint8)
    except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError) as e:
        raise DataError(f"data.root: cannot read image {path!r}: {e}") from e
    t = torch.from_numpy(arr)
    t = t.unsqueeze(0) if t.dim() == 2 else t.permute(2, 0, 1)
    return t.to(torch.float32) / 255.0


class FolderSource:
    """Image files decoded lazily, a batch at a time (a few threads: Pillow decodes without the GIL)."""

    def __init__(self, files, transform, shape, workers=None):
        self.files, self.transform, self.shape = list(files), transform, tuple(shape)
        self.workers = workers or min(4, os.cpu_count() or 1)
        self._pool, self._lock = None, threading.Lock()

    def __len__(self):
        return len(self.files)

    def _read(self, i):
        x = read_image(self.files[i], self.transform, self.shape[0])
        if tuple(x.shape) != self.shape:
            raise DataError(f"data.root: image {self.files[i]!r} decodes to shape {tuple(x.shape)}, "
                            f"expected {self.shape}")
        return x

    def load(self, idx):
        idx = [int(i) for i in idx]
        if self.workers > 1 and len(idx) > 1:
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


def list_images(root):
    """Image files under root, recursively, sorted; hidden files and folders are skipped."""
    found = []
    for folder, dirs, files in os.walk(root, followlinks=True):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found.extend(os.path.join(folder, f) for f in sorted(files)
                     if not f.startswith(".") and f.lower().endswith(IMAGE_EXTENSIONS))
    return found


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
    """A folder of images (png/jpg/jpeg/webp, searched recursively) at `data.root`.

    data.dataset 'CELEBA': center crop 140 then bilinear resize to data.image_size (official CelebA
    transform); 'LSUN' and 'folder': center crop to a square then antialiased bicubic resize.
    Images are converted to RGB (grey when data.num_channels is 1) and decoded lazily per batch;
    an unreadable file raises DataError when a batch first reaches it. Splits: see _split_folder.
    """
    root = config.data.get("root", "")
    name = config.data.dataset
    size = _check_size(config, name)
    channels = int(config.data.get("num_channels", 3))
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
    return ImageDataset(name, shape, FolderSource(train, transform, shape),
                        FolderSource(held_out, transform, shape), config.data.get("random_flip", False),
                        config.data.get("uniform_dequantization", False))
