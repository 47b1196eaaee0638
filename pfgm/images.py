"""Image basics shared by the data sets, the FID sources and the pictures: which files are images, how a
folder's images are listed, and how images become uint8. Depends only on numpy; raises ValueError only
for bad arrays, never for folders (callers raise their own error, e.g. `DataError` naming data.root).
"""
import os

import numpy as np

# Every extension either the data sets or the FID sources read (Pillow decodes them all).
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff", ".ppm", ".pgm")


def list_images(folder):
    """Paths (str) of the image files under `folder`, recursively: hidden files and folders skipped,
    symlinked folders followed, each real folder and each real file once (a symlink loop or a second
    link to a folder neither repeats images nor walks for ever); each folder's files sorted by name come
    before its sub-folders, taken in name order. [] when there are none or `folder` is not a folder."""
    found, seen_dirs, seen_files = [], set(), set()
    for parent, dirs, files in os.walk(folder, followlinks=True):
        real = os.path.realpath(parent)
        if real in seen_dirs:
            dirs[:] = []
            continue
        seen_dirs.add(real)
        # os.walk descends into `dirs` in list order: sorting it in place fixes the order of the result.
        dirs[:] = sorted(d for d in dirs if not d.startswith(".")
                         and os.path.realpath(os.path.join(parent, d)) not in seen_dirs)
        for f in sorted(files):
            path = os.path.join(parent, f)
            if f.startswith(".") or not f.lower().endswith(IMAGE_EXTENSIONS):
                continue
            real_file = os.path.realpath(path)
            if real_file not in seen_files:
                seen_files.add(real_file)
                found.append(path)
    return found


# How floats in [0, 1] become uint8 levels (`to_uint8`); each paper's FID protocol is one of them:
#   nearest   x * 255 rounded half to even: exact for 8-bit data (x = k / 255), used for data sets
#   truncate  floor(x * 255): score_sde and the PFGM code, np.clip(x * 255, 0, 255).astype(np.uint8)
#   round     floor(x * 255 + 0.5): EDM and PFGM++, (x' * 127.5 + 128).clip(0, 255).to(uint8) on x' in [-1, 1]
#             (the same levels, except for a float32 sample within rounding of a half level)
UINT8_MODES = ("nearest", "truncate", "round")

# Pillow modes whose pixels are not 8-bit, and the value that stands for white in each: 16-bit greys
# (Pillow may open a 16-bit PNG as 'I') and float images, taken as [0, 1]. convert('L') would clip the
# former at 255 (98% of a 16-bit picture white) and truncate the latter to 0 or 1/255.
HIGH_DEPTH_WHITE = {"I;16": 65535, "I;16B": 65535, "I;16L": 65535, "I;16N": 65535, "I": 65535, "F": 1.0}


def high_depth_to_unit(image, name):
    """A Pillow image of a mode in HIGH_DEPTH_WHITE as float32 (H, W) in [0, 1], scaled by the mode's white;
    ValueError naming `name` when its values leave the mode's range (e.g. a 32-bit image)."""
    white = HIGH_DEPTH_WHITE[image.mode]
    x = np.asarray(image, dtype=np.float64)
    lo, hi = (float(x.min()), float(x.max())) if x.size else (0.0, 0.0)
    if not (np.isfinite(lo) and np.isfinite(hi)) or lo < 0 or hi > white:
        raise ValueError(f"{name}: a {image.mode!r} image with values in [{lo:.4g}, {hi:.4g}]; only [0, {white}] "
                         f"is read for this mode (8- and 16-bit integer images, float images in [0, 1])")
    return (x / white).astype(np.float32)


def to_uint8(images, mode="nearest"):
    """Floats in [0, 1] -> uint8 of the same shape by `mode` (UINT8_MODES), clipped to [0, 255].

    The product is taken in the input's own float precision (float32 stays float32, as both original
    codes compute it), other input in float64, so that FID numbers of float32 samples match those
    computed before this was shared.
    """
    x = np.asarray(images)
    if not np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float64)
    if mode == "nearest":
        levels = np.rint(x * 255.0)
    elif mode == "truncate":
        levels = np.floor(x * 255.0)
    elif mode == "round":
        levels = np.floor(x * 255.0 + 0.5)
    else:
        raise ValueError(f"unknown uint8 conversion {mode!r}; choose one of {UINT8_MODES}")
    return np.clip(levels, 0, 255).astype(np.uint8)


def to_rgb_uint8(images, name="images", mode="nearest"):
    """A checked batch of uint8 RGB images (N, H, W, 3), as feature extractors take them.

    Takes uint8/integer [0, 255] or float [0, 1] images (a numpy array or a CPU torch tensor), shaped
    (N,H,W,C) or (N,C,H,W) with C in {1, 3}; a single image (3-D) is a batch of one; grey is repeated to
    RGB; floats go through `to_uint8` by `mode`. Raises ValueError naming `name` for bad shapes or value ranges.
    """
    if hasattr(images, "detach"):  # a torch tensor; duck-typed so that this module needs no torch
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
        x = to_uint8(x, mode)
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
