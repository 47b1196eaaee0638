"""FID and Inception Score maths: activation statistics, the Fréchet distance, the Inception Score, and the
batched loop that turns images into features. Where images and statistics come from (folders, .npz files,
config data sets) is `pfgm.evaluation.sources`.

Conventions (pytorch-fid / TTUR): features are the 2048-d pool3 activations of the FID Inception network;
mu is their mean and sigma their covariance with the N-1 divisor, both in float64. Inception Score uses 10
splits taken in order, as OpenAI's and TTUR's code do; pass `splits=1` for the single-split number of
TF-GAN/score_sde.

Feature extractors are injectable: anything called as `model(uint8 (B,3,H,W) tensor)` that returns a
(B, D) feature tensor or a `(features, logits)` pair works where the Inception network does.

FID depends on N and is biased upwards for small N: compare only numbers computed with equal N
(usually 50k samples against the 50k CIFAR-10 training images).
"""
import warnings

import numpy as np
import scipy.linalg
import scipy.special
import torch
from tqdm.auto import tqdm

from pfgm.images import to_rgb_uint8

__all__ = ["frechet_distance", "activation_statistics", "check_statistics", "inception_score",
           "compute_activations", "default_device"]


def default_device():
    """CUDA when available, else the CPU."""
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


def _real_array(x, name, what):
    x = np.asarray(x)
    if np.iscomplexobj(x):
        raise ValueError(f"{name}: {what} is complex ({x.dtype}); statistics are real")
    if not (np.issubdtype(x.dtype, np.number) or x.dtype == bool):
        raise ValueError(f"{name}: {what} is not numeric (dtype {x.dtype})")
    return x.astype(np.float64)


def check_statistics(mu, sigma, name):
    """(mu, sigma) as float64 vector and matching square matrix, finite, real, sigma a covariance
    (symmetric positive semi-definite: otherwise the distance can come out negative); ValueError naming
    `name`."""
    mu = np.atleast_1d(_real_array(mu, name, "mu"))
    sigma = np.atleast_2d(_real_array(sigma, name, "sigma"))
    if mu.ndim != 1:
        raise ValueError(f"{name}: mu must be a vector, got shape {mu.shape}")
    if sigma.shape != (mu.shape[0], mu.shape[0]):
        raise ValueError(f"{name}: sigma must be ({mu.shape[0]}, {mu.shape[0]}) to match mu, got {sigma.shape}")
    if not (np.isfinite(mu).all() and np.isfinite(sigma).all()):
        raise ValueError(f"{name}: mu/sigma contain NaN or inf")
    scale = max(float(np.abs(sigma).max()), np.finfo(np.float64).tiny)
    if np.abs(sigma - sigma.T).max() > 1e-6 * scale:
        raise ValueError(f"{name}: sigma is not symmetric, so it is no covariance matrix")
    lowest = float(np.linalg.eigvalsh(sigma).min())
    if lowest < -1e-6 * scale:
        raise ValueError(f"{name}: sigma is not positive semi-definite (eigenvalue {lowest:.4g}), so it is no "
                         "covariance matrix")
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
    mu1, sigma1 = check_statistics(mu1, sigma1, "first statistics")
    mu2, sigma2 = check_statistics(mu2, sigma2, "second statistics")
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

def _batches(images, batch_size, name):
    """Yield uint8 NHWC batches of at most batch_size from an array or an iterable of images/batches."""
    if isinstance(images, (np.ndarray, torch.Tensor)):
        images = to_rgb_uint8(images, name)
        for start in range(0, images.shape[0], batch_size):
            yield images[start:start + batch_size]
        return
    pending, count = [], 0
    for item in images:
        item = to_rgb_uint8(item, name)
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
        images: a uint8/float array or tensor (N,H,W,C) or (N,C,H,W) (see `pfgm.images.to_rgb_uint8`), or
            an iterable of single images and/or batches (e.g. `sources.iter_image_folder(path)`).
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
