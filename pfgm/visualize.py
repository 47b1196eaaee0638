"""Pictures of samples: scatter plots for 2-D points, grids for images (Pillow; no torchvision)."""
import math
import os

import numpy as np

from pfgm.files import atomic_write
from pfgm.images import to_uint8  # rounds where the original code truncated


def image_grid(images, nrow=None, padding=2, pad_value=255):
    """Tile (n, H, W, C) or (n, C, H, W) uint8 images into one (H', W', C) uint8 array."""
    images = np.asarray(images)
    if images.ndim != 4:
        raise ValueError(f"expected a batch of images (n, H, W, C) or (n, C, H, W), got {images.shape}")
    if images.shape[1] in (1, 3) and images.shape[-1] not in (1, 3):
        images = images.transpose(0, 2, 3, 1)
    n, h, w, c = images.shape
    nrow = nrow or int(math.ceil(math.sqrt(n)))
    ncol = int(math.ceil(n / nrow))
    grid = np.full((padding + ncol * (h + padding), padding + nrow * (w + padding), c), pad_value, np.uint8)
    for i in range(n):
        r, q = divmod(i, nrow)
        top, left = padding + r * (h + padding), padding + q * (w + padding)
        grid[top:top + h, left:left + w] = images[i]
    return grid


def save_image_grid(images, path, nrow=None, padding=2, scale=1):
    """Save uint8 images as one PNG grid; `scale` enlarges small images (nearest neighbour)."""
    from PIL import Image

    grid = image_grid(images, nrow=nrow, padding=padding)
    img = Image.fromarray(grid[..., 0] if grid.shape[-1] == 1 else grid)
    if scale != 1:
        img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    atomic_write(path, lambda p: img.save(p, format="PNG"))


def save_scatter(points, path, reference=None, title=None, lim=None, labels=None, reference_labels=None):
    """Scatter plot of 2-D samples, with reference data beside them when given; labels / reference_labels
    (class per point) colour the points by class."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = np.asarray(points)
    panels = [("samples", points, labels)]
    if reference is not None:
        panels.insert(0, ("data", np.asarray(reference), reference_labels))
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 4), squeeze=False)
    lim = lim or max(3.0, float(np.percentile(np.abs(panels[0][1]), 99.5)) * 1.15)
    for ax, (name, pts, lab) in zip(axes[0], panels):
        if lab is None:
            ax.scatter(pts[:, 0], pts[:, 1], s=1, alpha=0.5)
        else:
            colors = plt.get_cmap("tab10")(np.asarray(lab) % 10)
            ax.scatter(pts[:, 0], pts[:, 1], s=1, alpha=0.5, c=colors)
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
        ax.set_aspect("equal")
        ax.set_title(name)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    atomic_write(path, lambda p: fig.savefig(p, dpi=100, format="png"))
    plt.close(fig)


def save_samples_figure(samples, path, reference=None, title=None):
    """A picture of samples of any kind: scatter for (n, 2) points, grid for (n, C, H, W) in [0, 1]."""
    samples = np.asarray(samples)
    if samples.ndim == 2 and samples.shape[1] == 2:
        save_scatter(samples, path, reference=reference, title=title)
    elif samples.ndim == 4:
        n = min(len(samples), 64)
        save_image_grid(to_uint8(samples[:n]), path, scale=max(1, 64 // samples.shape[-1]))
    else:
        return False
    return True


def class_rows(labels, per_class=10):
    """Indices laying out samples one row per class present in `labels` (ascending), up to per_class
    each, -1 where a row has fewer: a (rows, per_class) int array and the rows' classes."""
    labels = np.asarray(labels)
    classes = np.unique(labels)
    rows = np.full((len(classes), per_class), -1)
    for r, c in enumerate(classes):
        idx = np.flatnonzero(labels == c)[:per_class]
        rows[r, :len(idx)] = idx
    return rows, classes


def save_class_figure(samples, labels, path, reference=None, reference_labels=None, title=None, per_class=10):
    """A conditional model's samples: 2-D points coloured by their class (beside the labelled data);
    images (n, C, H, W) in [0, 1] as a grid with one row per class, up to per_class each."""
    samples = np.asarray(samples)
    if samples.ndim == 2 and samples.shape[1] == 2:
        save_scatter(samples, path, reference=reference, title=title, labels=labels, reference_labels=reference_labels)
    elif samples.ndim == 4:
        rows, _ = class_rows(labels, per_class)
        images = to_uint8(samples)
        blank = np.full_like(images[:1], 255)
        grid = np.concatenate([images[i:i + 1] if i >= 0 else blank for i in rows.reshape(-1)])
        save_image_grid(grid, path, nrow=per_class, scale=max(1, 64 // samples.shape[-1]))
    else:
        return False
    return True


def save_images(images, folder, prefix="", uint8="nearest"):
    """Every image of (n, C, H, W) floats in [0, 1] as its own PNG, {prefix}{i:06d}.png: the folder
    tools like pytorch-fid or clean-fid read; `uint8` the conversion (`pfgm.images.to_uint8`). Returns
    the number written."""
    from PIL import Image

    images = to_uint8(images, uint8).transpose(0, 2, 3, 1)
    os.makedirs(folder, exist_ok=True)
    for i, img in enumerate(images):
        pil = Image.fromarray(img[..., 0] if img.shape[-1] == 1 else img)
        atomic_write(os.path.join(folder, f"{prefix}{i:06d}.png"), lambda p, pil=pil: pil.save(p, format="PNG"))
    return len(images)


def save_trajectories(times, states, path, reference=None, time_name="z", title=None, lim=None):
    """The sampler's paths from the prior down to 2-D samples, as the paper's first figure.

    times: (T,) from the prior to the data; states: (T, B, 2). Left: the paths in (x1, x2, time),
    time on a log axis (PFGM's z spans decades); right: seen from above, coloured by time, over the
    data, each path ending on its sample (a dot)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    times, states = np.asarray(times, np.float64), np.asarray(states, np.float64)
    ends = states[-1]
    lim = lim or max(2.5, float(np.percentile(np.abs(ends), 99)) * 1.3)
    fig = plt.figure(figsize=(11, 5))
    ax3 = fig.add_subplot(1, 2, 1, projection="3d")
    ax2 = fig.add_subplot(1, 2, 2)
    # a path ending at time 0 (PFGM++'s last step to sigma = 0) is drawn one decade below its last
    # positive time, not at an arbitrary floor that would squash the rest of the axis
    positive = times[times > 0]
    log_t = np.log10(np.maximum(times, positive.min() / 10 if len(positive) else 1e-12))
    cmap = plt.get_cmap("viridis")
    if reference is not None:
        ref = np.asarray(reference)[:2000]
        ax3.scatter(ref[:, 0], ref[:, 1], np.full(len(ref), log_t.min()), s=1, c="0.6", alpha=0.3)
        ax2.scatter(ref[:, 0], ref[:, 1], s=1, c="0.75", alpha=0.5, label="data")
    for b in range(states.shape[1]):
        xy = states[:, b]
        inside = (np.abs(xy) <= lim).all(1)  # far prior points leave the frame; draw the part inside
        ax3.plot(np.where(inside, xy[:, 0], np.nan), np.where(inside, xy[:, 1], np.nan), log_t, lw=0.6,
                 color=cmap(b / max(1, states.shape[1] - 1)), alpha=0.8)
        pts = np.where(inside[:, None], xy, np.nan)
        ax2.plot(pts[:, 0], pts[:, 1], lw=0.5, color="tab:blue", alpha=0.35)
    ax2.scatter(ends[:, 0], ends[:, 1], s=6, c="tab:red", zorder=3, label="samples")
    ax3.set_xlim(-lim, lim)
    ax3.set_ylim(-lim, lim)
    ax3.set_xlabel("x1")
    ax3.set_ylabel("x2")
    ax3.set_zlabel(f"log10 {time_name}")
    ax3.set_title(f"paths from the prior ({time_name} = {times[0]:.3g}) to the data ({time_name} = {times[-1]:.3g})")
    ax2.set_xlim(-lim, lim)
    ax2.set_ylim(-lim, lim)
    ax2.set_aspect("equal")
    ax2.legend(loc="upper right", fontsize=8)
    ax2.set_title("seen from above")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    atomic_write(path, lambda p: fig.savefig(p, dpi=100, format="png"))
    plt.close(fig)
