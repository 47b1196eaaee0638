"""FID and Inception Score: statistics, distances, batched feature extraction and data sources.

Conventions (pytorch-fid / TTUR): features are the 2048-d pool3 activations of the FID Inception network;
mu is their mean and sigma their covariance with the N-1 divisor, both in float64; statistics files are
`.npz` with keys `mu` and `sigma`. Inception Score uses 10 splits taken in order, as OpenAI's and TTUR's
code do; pass `splits=1` for the single-split number of TF-GAN/score_sde.

A DATA source is one of
- a folder of images (png/jpg/jpeg/bmp/webp/tif, searched recursively, sorted by path, converted to RGB);
- a samples `.npz`/`.npy`: key `samples` (else the first array), shaped (N,H,W,C) or (N,C,H,W) with
  C in {1, 3}, uint8 in [0, 255] or floats in [0, 1] (rounded to uint8);
- a statistics `.npz` with `mu` and `sigma`, or with raw activations under `pool_3` (score_sde/PFGM files,
  optionally with `logits`);
- a config file (`.py` with `get_config()`, e.g. configs/poisson/cifar10_ddpmpp.py) whose `data.dataset` is an
  image data set: one split of it ('train' by default, the FID convention; or 'test'), read through
  `pfgm.datasets.get_dataset` in its fixed order, never flipped or dequantized, rounded to uint8 (x * 255,
  exact for 8-bit data). `data_root` overrides `data.root` (CIFAR-10's archive or folder, an image folder).

Feature extractors are injectable: anything called as `model(uint8 (B,3,H,W) tensor)` that returns a
(B, D) feature tensor or a `(features, logits)` pair works where the Inception network does.

FID depends on N and is biased upwards for small N: compare only numbers computed with equal N
(usually 50k samples against the 50k CIFAR-10 training images).
"""
import warnings
import zipfile
from pathlib import Path

import numpy as np
import scipy.linalg
import scipy.special
import torch
from tqdm.auto import tqdm

__all__ = [
    "frechet_distance", "activation_statistics", "inception_score", "compute_activations", "to_uint8",
    "IMAGE_EXTENSIONS", "source_kind", "list_images", "iter_image_folder", "load_samples", "load_statistics",
    "save_statistics", "source_activations", "source_statistics", "fid_from_sources", "default_device",
    "SPLITS", "config_images", "LazyInception",
]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff", ".ppm", ".pgm")
SPLITS = ("train", "test")


def default_device():
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


# ----------------------------------------------------------------------------------------------------------
# Statistics and distances.

def activation_statistics(acts):
    """(N, D) activations -> (mu (D,), sigma (D, D)) in float64; sigma uses the N-1 divisor."""
    acts = np.asarray(acts)
    if acts.ndim != 2:
        raise ValueError(f"activations must be a 2-D array (N samples, D features), got shape {acts.shape}")
    n, d = acts.shape
    if n < 2:
        raise ValueError(f"need at least 2 samples to estimate a covariance, got {n}")
    if not np.isfinite(acts).all():
        raise ValueError("activations contain NaN or inf")
    mu = acts.mean(axis=0, dtype=np.float64)
    # Two passes in float64 chunks: exact centring, and no N x D float64 copy of the whole array.
    sigma = np.zeros((d, d), dtype=np.float64)
    for start in range(0, n, 4096):
        centred = acts[start:start + 4096].astype(np.float64) - mu
        sigma += centred.T @ centred
    return mu, sigma / (n - 1)


def _check_stats(mu, sigma, name):
    mu = np.atleast_1d(np.asarray(mu, dtype=np.float64))
    sigma = np.atleast_2d(np.asarray(sigma, dtype=np.float64))
    if mu.ndim != 1:
        raise ValueError(f"{name}: mu must be a vector, got shape {mu.shape}")
    if sigma.shape != (mu.shape[0], mu.shape[0]):
        raise ValueError(f"{name}: sigma must be ({mu.shape[0]}, {mu.shape[0]}) to match mu, got {sigma.shape}")
    if not (np.isfinite(mu).all() and np.isfinite(sigma).all()):
        raise ValueError(f"{name}: mu/sigma contain NaN or inf")
    return mu, sigma


def _sqrtm(a):
    """scipy's sqrtm, returning (root, ok); ok is False when it warns of singularity or is inaccurate."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", scipy.linalg.LinAlgWarning)
        root = scipy.linalg.sqrtm(a)
    if not np.isfinite(root).all():
        return root, False
    scale = max(np.linalg.norm(a), np.finfo(np.float64).tiny)
    return root, np.linalg.norm(root @ root - a) / scale < 1e-6


def frechet_distance(mu1, sigma1, mu2, sigma2, eps=1e-6, imag_tol=1e-3):
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2).

    d^2 = |mu1 - mu2|^2 + tr(sigma1) + tr(sigma2) - 2 tr(sqrtm(sigma1 sigma2)), in float64. When the
    square root fails (non-finite or inaccurate, as for a singular product, e.g. from fewer samples than
    dimensions), it is recomputed with eps*I added to both covariances. An imaginary part on the root's
    diagonal larger than `imag_tol` raises ValueError; smaller ones are numerical noise and dropped.
    """
    mu1, sigma1 = _check_stats(mu1, sigma1, "first statistics")
    mu2, sigma2 = _check_stats(mu2, sigma2, "second statistics")
    if mu1.shape != mu2.shape:
        raise ValueError(f"statistics have different dimensions: {mu1.shape[0]} vs {mu2.shape[0]}")
    diff = mu1 - mu2
    covmean, ok = _sqrtm(sigma1 @ sigma2)
    if not ok:
        warnings.warn(f"sqrtm(sigma1 @ sigma2) is singular or inaccurate; retrying with eps*I (eps={eps:g}) "
                      "added to both covariances (too few samples for the feature dimension?)")
        offset = eps * np.eye(mu1.shape[0])
        covmean, ok = _sqrtm((sigma1 + offset) @ (sigma2 + offset))
        if not np.isfinite(covmean).all():
            raise ValueError("matrix square root is not finite even after the eps offset")
    if np.iscomplexobj(covmean):
        imag = np.abs(np.diagonal(covmean).imag).max()
        if imag > imag_tol:
            raise ValueError(f"matrix square root has an imaginary component of {imag:.3g} (> {imag_tol:g}); "
                             "the covariances are probably degenerate")
        covmean = covmean.real
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * np.trace(covmean))


def inception_score(logits, splits=10):
    """Inception Score from classifier logits (N, C): (mean, std) over `splits` consecutive splits.

    Each split scores exp(mean_x KL(p(y|x) || p(y))) with p(y) the split's mean prediction, in float64.
    """
    logits = np.asarray(logits, dtype=np.float64)
    if logits.ndim != 2:
        raise ValueError(f"logits must be a 2-D array (N samples, C classes), got shape {logits.shape}")
    n = logits.shape[0]
    if not isinstance(splits, (int, np.integer)) or splits < 1:
        raise ValueError(f"splits must be a positive integer, got {splits!r}")
    if n < splits:
        raise ValueError(f"need at least as many samples as splits: {n} samples, {splits} splits")
    if not np.isfinite(logits).all():
        raise ValueError("logits contain NaN or inf")
    log_p = logits - scipy.special.logsumexp(logits, axis=1, keepdims=True)
    scores = []
    for i in range(splits):
        part = log_p[i * n // splits:(i + 1) * n // splits]
        log_py = scipy.special.logsumexp(part, axis=0) - np.log(part.shape[0])
        kl = np.sum(np.exp(part) * (part - log_py), axis=1).mean()
        scores.append(np.exp(kl))
    return float(np.mean(scores)), float(np.std(scores))


# ----------------------------------------------------------------------------------------------------------
# Images -> features.

def to_uint8(images, name="images"):
    """Images as uint8 NHWC: from uint8/integer [0, 255] or float [0, 1], (N,H,W,C) or (N,C,H,W), C in {1, 3}.

    A single image (3-D) is treated as a batch of one; grayscale is repeated to RGB. Floats are rounded
    (x * 255, round half to even). Raises ValueError naming `name` for bad shapes or value ranges.
    """
    if torch.is_tensor(images):
        images = images.detach().cpu().numpy()
    x = np.asarray(images)
    if x.ndim == 3:
        x = x[None]
    if x.ndim != 4:
        raise ValueError(f"{name}: expected images shaped (N,H,W,C) or (N,C,H,W), got shape {x.shape}")
    if x.shape[-1] not in (1, 3):
        if x.shape[1] not in (1, 3):
            raise ValueError(f"{name}: expected 1 or 3 channels (NHWC or NCHW), got shape {x.shape}")
        x = x.transpose(0, 2, 3, 1)
    if x.shape[0] == 0:
        raise ValueError(f"{name}: contains no images")
    if x.dtype == np.uint8:
        pass
    elif np.issubdtype(x.dtype, np.floating):
        lo, hi = float(np.min(x)), float(np.max(x))
        if not (np.isfinite(lo) and np.isfinite(hi)) or lo < -1e-6 or hi > 1 + 1e-6:
            hint = " (looks like [-1, 1]: map it with (x + 1) / 2)" if lo < 0 and lo >= -1 and hi <= 1 else ""
            raise ValueError(f"{name}: float images must lie in [0, 1], got values in [{lo:.4g}, {hi:.4g}]{hint}")
        x = np.clip(np.rint(x * 255.0), 0, 255).astype(np.uint8)
    elif np.issubdtype(x.dtype, np.integer):
        lo, hi = int(np.min(x)), int(np.max(x))
        if lo < 0 or hi > 255:
            raise ValueError(f"{name}: integer images must lie in [0, 255], got values in [{lo}, {hi}]")
        x = x.astype(np.uint8)
    else:
        raise ValueError(f"{name}: unsupported image dtype {x.dtype}")
    if x.shape[-1] == 1:
        x = np.repeat(x, 3, axis=-1)
    return x


def _batches(images, batch_size, name):
    """Yield uint8 NHWC batches of at most batch_size from an array or an iterable of images/batches."""
    if isinstance(images, (np.ndarray, torch.Tensor)):
        images = to_uint8(images, name)
        for start in range(0, images.shape[0], batch_size):
            yield images[start:start + batch_size]
        return
    pending, count = [], 0
    for item in images:
        item = to_uint8(item, name)
        pending.append(item)
        count += item.shape[0]
        while count >= batch_size:
            merged = np.concatenate(pending) if len(pending) > 1 else pending[0]
            yield merged[:batch_size]
            pending, count = [merged[batch_size:]], count - batch_size
    if count:
        yield np.concatenate(pending)


@torch.no_grad()
def compute_activations(images, model, batch_size=50, device=None, *, num_samples=None, progress=True,
                        name="images"):
    """Run `model` over images in batches: returns (features (N, D) float32, logits (N, C) float32 or None).

    Args:
        images: a uint8/float array or tensor (N,H,W,C) or (N,C,H,W) (see `to_uint8`), or an iterable of
            single images and/or batches (e.g. `iter_image_folder(path)`).
        model: callable on uint8 (B,3,H,W) tensors on `device` returning features (B, D) or a
            (features, logits) pair, e.g. `load_inception()`.
        batch_size: images per forward pass.
        device: torch device; None picks CUDA when available, else CPU.
        num_samples: stop after this many images (None: all). Fewer available raises ValueError.
        progress: show a tqdm progress bar.
        name: how `images` is called in error messages (e.g. its path).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    if num_samples is not None and num_samples < 1:
        raise ValueError(f"num_samples must be positive, got {num_samples}")
    device = torch.device(device) if device is not None else default_device()
    total = num_samples
    if hasattr(images, "__len__"):
        available = len(images)
        if num_samples is not None and num_samples > available:
            raise ValueError(f"{name}: {num_samples} samples requested but only {available} available")
        total = available if total is None else total
    feats, logits, seen = [], [], 0
    with tqdm(total=total, unit="img", desc="Inception features", disable=not progress) as bar:
        for batch in _batches(images, batch_size, name):
            if num_samples is not None:
                batch = batch[:num_samples - seen]
            x = torch.from_numpy(np.ascontiguousarray(batch.transpose(0, 3, 1, 2))).to(device)
            out = model(x)
            f, lg = (out if isinstance(out, (tuple, list)) else (out, None))[:2]
            if f.ndim != 2 or f.shape[0] != x.shape[0]:
                raise ValueError(f"feature extractor returned shape {tuple(f.shape)} for a batch of {x.shape[0]}")
            feats.append(f.float().cpu().numpy())
            if lg is not None:
                logits.append(lg.float().cpu().numpy())
            seen += batch.shape[0]
            bar.update(batch.shape[0])
            if num_samples is not None and seen >= num_samples:
                break
    if seen == 0:
        raise ValueError(f"{name}: contains no images")
    if num_samples is not None and seen < num_samples:
        raise ValueError(f"{name}: {num_samples} samples requested but only {seen} available")
    return np.concatenate(feats), (np.concatenate(logits) if len(logits) == len(feats) else None)


# ----------------------------------------------------------------------------------------------------------
# Data sources.

def list_images(folder):
    """Image files under `folder` (recursive), sorted by path."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such folder")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
    if not files:
        raise ValueError(f"{folder}: no image files ({', '.join(IMAGE_EXTENSIONS)}) found")
    return files


class _ImageFolder:
    """Lazy, sized iterable of uint8 HWC RGB images of one folder."""

    def __init__(self, folder):
        from PIL import Image  # noqa: F401 - fail early if Pillow is missing
        self.folder = Path(folder)
        self.files = list_images(folder)

    def __len__(self):
        return len(self.files)

    def __iter__(self):
        from PIL import Image
        shape = None
        for path in self.files:
            try:
                with Image.open(path) as im:
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


def load_samples(path):
    """Images of a samples .npz/.npy (key `samples`, else the first array) as uint8 NHWC RGB."""
    data = _open_npz(path)
    if not data:
        raise ValueError(f"{path}: the .npz holds no arrays")
    key = "samples" if "samples" in data else next(iter(data))
    return to_uint8(data[key], name=f"{path} [{key}]")


def load_statistics(path):
    """(mu, sigma) of a statistics .npz: keys mu/sigma, or raw activations under pool_3."""
    data = _open_npz(path)
    if "mu" in data and "sigma" in data:
        return _check_stats(data["mu"], data["sigma"], str(path))
    if "pool_3" in data:
        return activation_statistics(_activations_array(data["pool_3"], path))
    raise ValueError(f"{path}: not a statistics file (needs keys 'mu' and 'sigma', or 'pool_3'); "
                     f"found keys {sorted(data)}")


def _activations_array(acts, path):
    acts = np.asarray(acts)
    if acts.ndim == 4 and acts.shape[1:3] == (1, 1):  # TF's (N, 1, 1, D) pool_3
        acts = acts[:, 0, 0]
    if acts.ndim != 2:
        raise ValueError(f"{path}: pool_3 must be (N, D), got shape {acts.shape}")
    return acts


def save_statistics(path, mu, sigma):
    """Write mu and sigma to a compressed .npz (the pytorch-fid/EDM layout)."""
    mu, sigma = _check_stats(mu, sigma, str(path))
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
            # NCHW float in [0, 1] -> NHWC; to_uint8 rounds x * 255 and repeats a grey channel to RGB.
            yield to_uint8(x.permute(0, 2, 3, 1), name=self.name)


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
                       progress=True, split="train", data_root=None):
    """Features and logits of an image folder, samples .npz, pool_3 .npz or config's data set:
    (feats (N, D), logits or None).

    `model` defaults to the FID Inception network loaded from `weights` (see `load_inception`). `split` and
    `data_root` apply to config sources only (see `config_images`).
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
        images = iter_image_folder(path) if kind == "folder" else load_samples(path)
    device = torch.device(device) if device is not None else default_device()
    model = _resolve_model(model, weights, device)
    feats, logits = compute_activations(images, model, batch_size, device, num_samples=num_samples,
                                        progress=progress, name=str(path))
    if 2 <= feats.shape[0] <= feats.shape[1]:
        warnings.warn(f"{path}: {feats.shape[0]} samples for {feats.shape[1]}-d features give a singular "
                      "covariance; FID needs more samples than feature dimensions (50k to compare with papers)")
    return feats, logits


def source_statistics(path, model=None, *, weights=None, batch_size=50, device=None, num_samples=None,
                      progress=True, split="train", data_root=None):
    """(mu, sigma) of any source; a mu/sigma .npz is read as is (no model or weights needed)."""
    if source_kind(path) == "stats":
        return load_statistics(path)
    feats, _ = source_activations(path, model, weights=weights, batch_size=batch_size, device=device,
                                  num_samples=num_samples, progress=progress, split=split,
                                  data_root=data_root)
    return activation_statistics(feats)


def fid_from_sources(path1, path2, model=None, *, weights=None, batch_size=50, device=None, num_samples=None,
                     progress=True, split="train", data_root=None):
    """FID between two sources (image folders, samples .npz, statistics .npz, config data sets, in any
    combination); `split` and `data_root` apply to config sources."""
    kwargs = dict(weights=weights, batch_size=batch_size, device=device, num_samples=num_samples,
                  progress=progress, split=split, data_root=data_root)
    needs_model = {"folder", "samples", "config"} & {source_kind(path1), source_kind(path2)}
    if model is None and needs_model:  # one network for both sources, loaded when first needed
        model = LazyInception(weights, device if device is not None else default_device())
    mu1, sigma1 = source_statistics(path1, model, **kwargs)
    mu2, sigma2 = source_statistics(path2, model, **kwargs)
    return frechet_distance(mu1, sigma1, mu2, sigma2)
