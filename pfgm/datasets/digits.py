"""scikit-learn's 8x8 hand-written digits as an `ImageDataset`: embedded in scikit-learn, so no file is
read; the split is fixed by a seed (pfgm.evaluation.digits trains its classifier on the same split)."""
import torch

from pfgm.datasets.image_base import ArraySource, ImageDataset, resize

# A fixed split of the 1797 images, drawn once with this seed.
DIGITS_NUM_EVAL = 297
DIGITS_SPLIT_SEED = 0


def make_digits(config):
    """scikit-learn's 1797 8x8 hand-written digits (values 0..16 mapped to [0, 1]) and their classes
    0..9; no file needed.

    Split: a fixed random permutation (seed DIGITS_SPLIT_SEED) holds out 297 images; 1500 train.
    `data.image_size` != 8 resizes once, bilinearly (antialiased when shrinking); `data.num_channels`
    = 3 repeats the grey channel.
    """
    from sklearn.datasets import load_digits

    size = int(config.data.image_size)
    channels = int(config.data.num_channels)
    if size < 1:
        raise ValueError(f"data.image_size must be a positive integer, got {size}")
    if channels not in (1, 3):
        raise ValueError(f"data.num_channels must be 1 or 3 for digits, got {channels}")
    digits = load_digits()
    images = torch.as_tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0
    images = resize(images, size).repeat(1, channels, 1, 1).contiguous()
    labels = torch.as_tensor(digits.target, dtype=torch.long)
    perm = torch.randperm(images.shape[0], generator=torch.Generator().manual_seed(DIGITS_SPLIT_SEED))
    ev, tr = perm[:DIGITS_NUM_EVAL], perm[DIGITS_NUM_EVAL:]
    return ImageDataset("digits", (channels, size, size), ArraySource(images[tr], labels=labels[tr]),
                        ArraySource(images[ev], labels=labels[ev]), config.data.random_flip,
                        config.data.uniform_dequantization, num_classes=10)
