"""What every image data set is: an `ImageDataset` of two splits (train, held out), each a source of
images with `len()` and `load(indices)`; the per-source factories (digits, cifar10, image_folder) build one.

Every image factory takes the config and returns an `ImageDataset`:

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
  num_classes                    the classes of the images' labels (0: unlabelled); the sources then
                                 hold `labels`, a (n,) LongTensor
  eval_labelled(n, g)            (eval_data(n, g), their labels or None)

Unlike the official pipeline, the eval split is never flipped, not even during training.
`g` must be a CPU generator: the data live on the CPU; move the batches where they are needed.
Any data problem (missing path, corrupt archive or image, wrong shapes) raises `DataError`
naming the path.
"""
import torch
import torch.nn.functional as F

from pfgm.datasets import DataError


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

    def __init__(self, name, shape, train, held_out, random_flip=False, uniform_dequantization=False,
                 num_classes=0):
        self.name = name
        self.shape = tuple(shape)
        if not len(train):  # an endless draw from nothing would never return
            raise DataError(f"{name}: the training split holds no image")
        self.train, self.held_out = train, held_out
        self.num_classes = int(num_classes)
        self.random_flip = bool(random_flip)
        self.uniform_dequantization = bool(uniform_dequantization)

    @property
    def num_train(self):
        return len(self.train)

    @property
    def num_eval(self):
        return len(self.held_out)

    def train_batches(self, batch_size, generator, labels=False):
        """Endless batches (see the module docstring); labels: (images, their classes or None)."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        known = getattr(self.train, "labels", None) if self.num_classes else None
        for idx in _index_stream(self.num_train, batch_size, generator):
            x = self.train.load(idx)
            if self.random_flip:
                x = random_flip(x, generator)
            if self.uniform_dequantization:
                x = uniform_dequantize(x, generator)
            yield (x, None if known is None else known[idx]) if labels else x

    def eval_data(self, n, generator):
        return self.eval_labelled(n, generator)[0]

    def eval_labelled(self, n, generator):
        if n < 1:
            raise ValueError(f"n must be positive, got {n}")
        idx = next(_index_stream(self.num_eval, n, generator))
        x = self.held_out.load(idx)
        if self.uniform_dequantization:
            x = uniform_dequantize(x, generator)
        labels = getattr(self.held_out, "labels", None)
        return x, None if labels is None or not self.num_classes else labels[idx]

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


def resize(x, size):
    """Bilinear resize of a float batch (k, C, h, w) to size x size, antialiased when shrinking."""
    if x.shape[-2:] == (size, size):
        return x
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False,
                         antialias=True).clamp_(0.0, 1.0)


class ArraySource:
    """Images held in memory as a (n, C, H, W) tensor; `scale` maps its values to [0, 1]; labels: their
    (n,) LongTensor classes, or None."""

    def __init__(self, images, scale=1.0, image_size=None, labels=None):
        self.images, self.scale, self.image_size, self.labels = images, float(scale), image_size, labels

    def __len__(self):
        return self.images.shape[0]

    def load(self, idx):
        x = self.images[idx].to(torch.float32) / self.scale
        return x if self.image_size is None else resize(x, self.image_size)


def check_size(config, what):
    """data.image_size as a positive int; ValueError naming `what` otherwise."""
    size = int(config.data.image_size)
    if size < 1:
        raise ValueError(f"data.image_size must be a positive integer for {what}, got {size}")
    return size
