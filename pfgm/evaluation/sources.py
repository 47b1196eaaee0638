"""Sources of images and statistics for FID / Inception Score: resolving a path to images, activations or
(mu, sigma), and the functions that run a source through `pfgm.evaluation.fid`.

A source is one of
- a folder of images (`pfgm.images.IMAGE_EXTENSIONS`, in `pfgm.images.list_images` order: recursive,
  hidden files skipped), converted to RGB;
- a samples `.npz`/`.npy`: key `samples` (else the first array), shaped (N,H,W,C) or (N,C,H,W) with
  C in {1, 3}, uint8 in [0, 255] or floats meant for [0, 1] (generated images, e.g. the `samples.npz`
  that `--mode eval` writes: clipped to [0, 1] with a note, as the eval's own FID does, then rounded);
- a statistics `.npz` with `mu` and `sigma` (the pytorch-fid/EDM layout), or with raw activations under
  `pool_3` (score_sde/PFGM files, optionally with `logits`);
- a config file (`.py` with `get_config()`, e.g. configs/poisson/cifar10_ddpmpp.py) whose `data.dataset` is an
  image data set: one split of it ('train' by default, the FID convention; or 'test'), read through
  `pfgm.datasets.get_dataset` in its fixed order, never flipped or dequantized, rounded to uint8 (x * 255,
  exact for 8-bit data). `data_root` overrides `data.root` (CIFAR-10's archive or folder, an image folder).

Errors name the source's path: FileNotFoundError when it is missing, ValueError (or the data layer's
`DataError`) when it cannot be read.
"""
import warnings
import zipfile
from pathlib import Path

import numpy as np
import torch

from pfgm.evaluation import fid
from pfgm.images import (HIGH_DEPTH_WHITE, IMAGE_EXTENSIONS, high_depth_to_unit, list_images, to_rgb_uint8,
                         to_uint8)

__all__ = [
    "SPLITS", "source_kind", "iter_image_folder", "clip_generated", "load_samples", "load_statistics", "save_statistics",
    "config_images", "LazyInception", "source_activations", "source_statistics", "fid_from_sources",
]

SPLITS = ("train", "test")


class _ImageFolder:
    """Lazy, sized iterable of uint8 HWC RGB images of one folder."""

    def __init__(self, folder):
        from PIL import Image  # noqa: F401 - fail early if Pillow is missing
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise FileNotFoundError(f"{self.folder}: no such folder")
        self.files = list_images(self.folder)
        if not self.files:
            raise ValueError(f"{self.folder}: no image files ({', '.join(IMAGE_EXTENSIONS)}) found")

    def __len__(self):
        return len(self.files)

    def __iter__(self):
        from PIL import Image
        shape = None
        for path in self.files:
            try:
                with Image.open(path) as im:
                    if im.mode in HIGH_DEPTH_WHITE:  # 16-bit or float: scaled by its range, not clipped
                        arr = np.repeat(to_uint8(high_depth_to_unit(im, path))[..., None], 3, axis=-1)
                    else:
                        arr = np.asarray(im.convert("RGB"), dtype=np.uint8)
            except Exception as e:  # noqa: BLE001 - PIL raises many types for a corrupt file
                raise ValueError(f"{path}: cannot read image ({type(e).__name__}: {e})") from e
            if shape is None:
                shape = arr.shape
            elif arr.shape != shape:
                raise ValueError(f"{path}: image size {arr.shape[:2]} differs from the folder's first "
                                 f"image {shape[:2]}; all images of a source must share one size")
            yield arr


def iter_image_folder(folder):
    """A sized iterable over the folder's images as uint8 (H, W, 3) arrays, decoded lazily."""
    return _ImageFolder(folder)


def _open_npz(path):
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        data = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise ValueError(f"{path}: cannot read as .npz/.npy ({type(e).__name__}: {e})") from e
    if isinstance(data, np.ndarray):  # .npy
        return {"samples": data}
    try:
        return {key: data[key] for key in data.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise ValueError(f"{path}: corrupt .npz ({type(e).__name__}: {e})") from e
    finally:
        data.close()


def source_kind(path):
    """'folder', 'stats' (mu/sigma .npz), 'activations' (pool_3 .npz), 'samples' (.npz/.npy of images) or
    'config' (a .py config file, whose data set is the source)."""
    path = Path(path)
    if path.is_dir():
        return "folder"
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or folder (expected an image folder, a samples "
                                ".npz, a statistics .npz or a config .py)")
    if path.suffix.lower() == ".py":
        return "config"
    if path.suffix.lower() not in (".npz", ".npy"):
        raise ValueError(f"{path}: not a folder, .npz, .npy or .py (config) file")
    if path.suffix.lower() == ".npy":
        return "samples"
    try:
        with zipfile.ZipFile(path) as zf:
            keys = {Path(n).stem for n in zf.namelist()}
    except (OSError, zipfile.BadZipFile) as e:
        raise ValueError(f"{path}: cannot read as .npz ({type(e).__name__}: {e})") from e
    if {"mu", "sigma"} <= keys:
        return "stats"
    if "pool_3" in keys:
        return "activations"
    return "samples"


def clip_generated(images, name="samples"):
    """Generated float images clipped to [0, 1], as every FID protocol (and the eval's own FID) does
    before rounding to uint8: a sampler overshoots the data's range a little. A warning says how many
    values were outside; a NaN or infinity is refused (ValueError naming `name`)."""
    x = np.asarray(images)
    bad = int(np.size(x) - np.count_nonzero(np.isfinite(x)))
    if bad:
        raise ValueError(f"{name}: {bad} of {x.size} values are not finite (NaN or infinity); such samples "
                         "have no image to score")
    outside = int(np.count_nonzero((x < 0) | (x > 1)))
    if outside:
        lo, hi = float(x.min()), float(x.max())
        hint = (" (if these are [-1, 1] images, map them with (x + 1) / 2 first)" if lo < -0.5 and hi <= 1 else
                " (if these are [0, 255] images, save them as uint8)" if lo >= 0 and hi > 2 else "")
        warnings.warn(f"{name}: {outside} of {x.size} values ({100 * outside / x.size:.2g}%) lie outside [0, 1] "
                      f"(range [{lo:.4g}, {hi:.4g}]): clipped to [0, 1] before uint8, as the eval's own FID "
                      f"does{hint}", stacklevel=2)
    return np.clip(x, 0.0, 1.0)


def load_samples(path, uint8="nearest"):
    """Images of a samples .npz/.npy (key `samples`, else the first array) as uint8 NHWC RGB; float
    images are clipped to [0, 1] first (`clip_generated`), then converted by `uint8` (`to_uint8`)."""
    data = _open_npz(path)
    if not data:
        raise ValueError(f"{path}: the .npz holds no arrays")
    key = "samples" if "samples" in data else next(iter(data))
    images = data[key]
    if np.issubdtype(images.dtype, np.floating):
        images = clip_generated(images, name=f"{path} [{key}]")
    return to_rgb_uint8(images, name=f"{path} [{key}]", mode=uint8)


def load_statistics(path):
    """(mu, sigma) of a statistics .npz: keys mu/sigma, or raw activations under pool_3."""
    data = _open_npz(path)
    if "mu" in data and "sigma" in data:
        return fid.check_statistics(data["mu"], data["sigma"], str(path))
    if "pool_3" in data:
        return fid.activation_statistics(_activations_array(data["pool_3"], path))
    raise ValueError(f"{path}: not a statistics file (needs keys 'mu' and 'sigma', or 'pool_3'); "
                     f"found keys {sorted(data)}")


def _activations_array(acts, path):
    acts = np.asarray(acts)
    if np.iscomplexobj(acts) or not (np.issubdtype(acts.dtype, np.number)):
        raise ValueError(f"{path}: pool_3 must hold real numbers, got dtype {acts.dtype}")
    if acts.ndim == 4 and acts.shape[1:3] == (1, 1):  # TF's (N, 1, 1, D) pool_3
        acts = acts[:, 0, 0]
    if acts.ndim != 2:
        raise ValueError(f"{path}: pool_3 must be (N, D), got shape {acts.shape}")
    return acts


def save_statistics(path, mu, sigma):
    """Write mu and sigma to a compressed .npz (the pytorch-fid/EDM layout)."""
    mu, sigma = fid.check_statistics(mu, sigma, str(path))
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, mu=mu, sigma=sigma)


class _DatasetImages:
    """Lazy, sized iterable of uint8 NHWC RGB batches of one split of an `ImageDataset`."""

    def __init__(self, dataset, split, batch_size, name):
        self.dataset, self.split, self.batch_size, self.name = dataset, split, batch_size, name

    def __len__(self):
        return self.dataset.num_train if self.split == "train" else self.dataset.num_eval

    def __iter__(self):
        for x in self.dataset.split_batches(self.split, self.batch_size):
            # NCHW float in [0, 1] -> NHWC; to_rgb_uint8 rounds x * 255 and repeats a grey channel to RGB.
            yield to_rgb_uint8(x.permute(0, 2, 3, 1), name=self.name)


def config_images(path, split="train", data_root=None, batch_size=50):
    """One split ('train' or 'test') of the image data set of the config file at `path`, as a lazy, sized
    iterable of uint8 (B, H, W, 3) batches in the data set's fixed order (never flipped or dequantized).

    `data_root`, when given, replaces `data.root`. Raises ValueError naming the config when its data set
    is not made of images, and the data layer's `DataError` (a ValueError) when the data cannot be read.
    """
    from pfgm import datasets
    from pfgm.run_utils import load_config_file

    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    config = load_config_file(path)
    data = config.get("data")
    name = data.get("dataset") if data is not None else None
    if name is None:
        raise ValueError(f"{path}: the config has no data.dataset")
    if name in datasets.dataset_names() and not datasets.is_image_dataset(name):
        images = [n for n in datasets.dataset_names() if datasets.is_image_dataset(n)]
        raise ValueError(f"{path}: data.dataset {name!r} is not an image data set; FID needs images "
                         f"(one of {images})")
    if data_root is not None:
        with config.unlocked():
            config.data.root = str(data_root)
    try:
        dataset = datasets.get_dataset(config)
    except ValueError as e:  # DataError and bad data.* values: name the config, keep DataError's type
        raise (datasets.DataError if isinstance(e, datasets.DataError) else ValueError)(f"{path}: {e}") from e
    return _DatasetImages(dataset, split, batch_size, name=f"{path} [{name} {split}]")


class LazyInception:
    """The FID Inception network, loaded from `weights` on its first call (then kept): sources are opened,
    and their data errors reported, before a missing-weights error; one instance serves several sources."""

    def __init__(self, weights=None, device=None):
        self.weights, self.device, self.network = weights, device, None

    def __call__(self, x):
        if self.network is None:
            from pfgm.evaluation.inception import load_inception
            self.network = load_inception(self.weights, self.device)
        return self.network(x)


def _resolve_model(model, weights, device):
    if model is not None:
        return model
    from pfgm.evaluation.inception import load_inception
    return load_inception(weights, device)


def source_activations(path, model=None, *, weights=None, batch_size=50, device=None, num_samples=None,
                       progress=True, split="train", data_root=None, uint8="nearest"):
    """Features and logits of an image folder, samples .npz, pool_3 .npz or config's data set:
    (feats (N, D), logits or None).

    `model` defaults to the FID Inception network loaded from `weights` (see `load_inception`). `split` and
    `data_root` apply to config sources only (see `config_images`), `uint8` to float samples (`load_samples`).
    """
    kind = source_kind(path)
    if kind == "stats":
        raise ValueError(f"{path}: holds only mu/sigma statistics, not samples or activations")
    if kind == "activations":
        data = _open_npz(path)
        feats = _activations_array(data["pool_3"], path)
        logits = data.get("logits")
        if num_samples is not None:
            if feats.shape[0] < num_samples:
                raise ValueError(f"{path}: {num_samples} samples requested but only {feats.shape[0]} available")
            feats = feats[:num_samples]
            logits = None if logits is None else logits[:num_samples]
        return feats, logits
    if kind == "config":  # read the data before loading the network: data errors come first
        images = config_images(path, split, data_root, batch_size)
    else:
        images = iter_image_folder(path) if kind == "folder" else load_samples(path, uint8)
    device = torch.device(device) if device is not None else fid.default_device()
    model = _resolve_model(model, weights, device)
    feats, logits = fid.compute_activations(images, model, batch_size, device, num_samples=num_samples,
                                            progress=progress, name=str(path))
    if 2 <= feats.shape[0] <= feats.shape[1]:
        warnings.warn(f"{path}: {feats.shape[0]} samples for {feats.shape[1]}-d features give a singular "
                      "covariance; FID needs more samples than feature dimensions (50k to compare with papers)")
    return feats, logits


def source_statistics(path, model=None, *, weights=None, batch_size=50, device=None, num_samples=None,
                      progress=True, split="train", data_root=None, uint8="nearest"):
    """(mu, sigma) of any source; a mu/sigma .npz is read as is (no model or weights needed)."""
    if source_kind(path) == "stats":
        return load_statistics(path)
    feats, _ = source_activations(path, model, weights=weights, batch_size=batch_size, device=device,
                                  num_samples=num_samples, progress=progress, split=split,
                                  data_root=data_root, uint8=uint8)
    return fid.activation_statistics(feats)


def fid_from_sources(path1, path2, model=None, *, weights=None, batch_size=50, device=None, num_samples=None,
                     progress=True, split="train", data_root=None, uint8="nearest"):
    """FID between two sources (image folders, samples .npz, statistics .npz, config data sets, in any
    combination); `split` and `data_root` apply to config sources."""
    kwargs = dict(weights=weights, batch_size=batch_size, device=device, num_samples=num_samples,
                  progress=progress, split=split, data_root=data_root, uint8=uint8)
    needs_model = {"folder", "samples", "config"} & {source_kind(path1), source_kind(path2)}
    if model is None and needs_model:  # one network for both sources, loaded when first needed
        model = LazyInception(weights, device if device is not None else fid.default_device())
    mu1, sigma1 = source_statistics(path1, model, **kwargs)
    mu2, sigma2 = source_statistics(path2, model, **kwargs)
    return fid.frechet_distance(mu1, sigma1, mu2, sigma2)
