"""The training feed: step k's batch for this rank, prepared on the training device.

One global batch is drawn per step (its indices and flips depend on (config.seed, k) only, never on the
rank or the number of processes); each rank takes its disjoint slice (`rank_positions`), and the trainer
all-gathers the slices into the global batch again (the PFGM field needs every charge).

  in-memory images (digits, CIFAR-10)  kept on the device in their own dtype (uint8 for CIFAR-10);
                                       indexed, flipped, scaled and dequantized there
  points                               kept on the device; indices drawn on the host as before
  toy densities                        drawn fresh on the host (two numbers per point) and copied
  file-backed images (folder, LSUN, CelebA)  decoded by a torch DataLoader with data.num_workers worker
                                       processes, a step ahead, into pinned memory; copied non-blocking

Image indices walk through one random permutation per epoch (epoch e's is drawn from (config.seed, e)
and computed once), so no step rebuilds a permutation of the whole data set; a batch may straddle two
epochs. Everything is a function of the step, so a resumed run draws what the interrupted one would.
"""
import os

import torch

from pfgm import seeds
from pfgm.datasets import DataError
from pfgm.datasets.image_base import ArraySource, ImageDataset, resize


def rank_positions(batch_size, n_trained, rank, world):
    """Positions in the global batch of this rank's slice: its share of the trained points (the batch's
    first n_trained), then its share of the rest. `train.arrange_global` undoes it."""
    b, r = n_trained // world, (batch_size - n_trained) // world
    return torch.cat([torch.arange(rank * b, (rank + 1) * b),
                      torch.arange(n_trained + rank * r, n_trained + (rank + 1) * r)])


class EpochIndices:
    """Indices of step k's global batch: positions [kB, (k+1)B) of the endless concatenation of the epochs'
    permutations of range(n). Keeps the two most recent epochs' permutations."""

    def __init__(self, n, batch_size, seed):
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self._perms = {}

    def _perm(self, epoch):
        if epoch not in self._perms:
            gen = torch.Generator().manual_seed(seeds.step_seed(self.seed, epoch, seeds.TRAIN_EPOCH))
            self._perms = {e: p for e, p in self._perms.items() if e == epoch - 1}
            self._perms[epoch] = torch.randperm(self.n, generator=gen)
        return self._perms[epoch]

    def __call__(self, step):
        start, stop = step * self.batch_size, (step + 1) * self.batch_size
        parts = []
        for epoch in range(start // self.n, (stop - 1) // self.n + 1):
            lo, hi = max(start - epoch * self.n, 0), min(stop - epoch * self.n, self.n)
            parts.append(self._perm(epoch)[lo:hi])
        return torch.cat(parts)


def to_device(x, device):
    """Host tensor -> device without blocking the host (through pinned memory on CUDA)."""
    if device.type != "cuda":
        return x.to(device)
    return x.pin_memory().to(device, non_blocking=True)


def _step_generator(config, step):
    # the stream and rank 0 of the former per-rank draw: one process draws what it drew before
    return torch.Generator().manual_seed(seeds.step_seed(config.seed, step, seeds.TRAIN_DATA, 0))


class StepDraw:
    """(this rank's image indices, its flip decisions) of a step, on the host; small enough to travel
    to DataLoader workers."""

    def __init__(self, indices, seed, batch_size, positions):
        self.indices, self.seed, self.batch_size, self.positions = indices, seed, batch_size, positions

    def __call__(self, step):
        gen = torch.Generator().manual_seed(seeds.step_seed(self.seed, step, seeds.TRAIN_DATA, 0))
        flips = torch.rand(self.batch_size, generator=gen) < 0.5
        idx = self.indices(step)
        if self.positions is None:
            return idx, flips
        return idx[self.positions], flips[self.positions]


class _Feed:
    def __init__(self, dataset, config, device, rank, world):
        t = config.training
        self.dataset, self.config, self.device = dataset, config, device
        self.batch_size = t.batch_size
        n_trained = t.small_batch_size if "small_batch_size" in t else t.batch_size
        self.positions = None if world == 1 else rank_positions(self.batch_size, n_trained, rank, world)
        self._positions_here = None if self.positions is None else self.positions.to(device)

    def _mine(self, x):
        """This rank's slice of a global (host or device) tensor."""
        if self.positions is None:
            return x
        return x[self._positions_here if x.device == self.device else self.positions]

    def labels(self, step):
        """This rank's class labels of step `step`'s draw (the one `shard(step)` returns), a LongTensor on
        the device: the same indices (or toy draws) again, so nothing is kept between the two calls."""
        labels = self._labels(step)
        if labels is None:
            raise DataError(f"data.dataset: {self.config.data.dataset!r} has no labels to train a conditional model on")
        return to_device(labels, self.device)

    def close(self):
        pass


class DrawnFeed(_Feed):
    """Toy densities (fresh draws) and point sets (indices drawn with replacement), as before."""

    def __init__(self, dataset, config, device, rank, world):
        super().__init__(dataset, config, device, rank, world)
        points = getattr(dataset, "train_points", None)
        self.points = None if points is None else points.to(device)

    def shard(self, step):
        gen = _step_generator(self.config, step)
        if self.points is None:
            return to_device(self._mine(self.dataset.sampler(self.batch_size, gen)), self.device)
        idx = torch.randint(0, len(self.points), (self.batch_size,), generator=gen)
        return self.points[to_device(self._mine(idx), self.device)]

    def _labels(self, step):
        gen = _step_generator(self.config, step)
        if self.points is None:
            labels = getattr(self.dataset, "labelled_sampler", lambda n, g: (None, None))(self.batch_size, gen)[1]
            return None if labels is None else self._mine(labels)
        idx = torch.randint(0, len(self.points), (self.batch_size,), generator=gen)
        known = self.dataset.train_labels
        return None if known is None else known[self._mine(idx)]


class _ImageFeed(_Feed):
    def __init__(self, dataset, config, device, rank, world):
        super().__init__(dataset, config, device, rank, world)
        self.draw = StepDraw(EpochIndices(dataset.num_train, self.batch_size, config.seed), config.seed,
                             self.batch_size, self.positions)

    def _finish(self, x, step, flips):
        """float32 [0, 1] images on the device -> flipped and dequantized as the data set says."""
        if self.dataset.random_flip:
            x = torch.where(to_device(flips, self.device)[:, None, None, None], x.flip(-1), x)
        if self.dataset.uniform_dequantization:
            gen = torch.Generator(device=self.device)
            gen.manual_seed(seeds.step_seed(self.config.seed, step, seeds.TRAIN_DEQUANTIZE))
            u = torch.rand((self.batch_size, *x.shape[1:]), generator=gen, device=self.device)
            x = (self._mine(u) + 255.0 * x) / 256.0
        return x

    def _draw(self, step):
        return self.draw(step)

    def _labels(self, step):
        known = getattr(self.dataset.train, "labels", None)
        return None if known is None else known[self._draw(step)[0]]


class MemoryFeed(_ImageFeed):
    """Images held in memory (`ArraySource`): moved to the device once, in their own dtype."""

    def __init__(self, dataset, config, device, rank, world):
        super().__init__(dataset, config, device, rank, world)
        src = dataset.train
        self.images, self.scale, self.size = src.images.to(device), src.scale, src.image_size

    def shard(self, step):
        idx, flips = self._draw(step)
        x = self.images[to_device(idx, self.device)].to(torch.float32) / self.scale
        if self.size is not None:
            x = resize(x, self.size)
        return self._finish(x, step, flips)


class _StepBatches(torch.utils.data.Dataset):
    """Item k: this rank's uint8 images of step k (decoded in a DataLoader worker), or the one-line message
    of the DataError that stopped it (re-raised in the trainer as it is)."""

    def __init__(self, source, draw, first_step, last_step):
        self.source, self.draw, self.first = source, draw, first_step
        self.count = max(last_step - first_step, 0)

    def __len__(self):
        return self.count

    def __getitem__(self, i):
        idx, _ = self.draw(self.first + i)
        try:
            return self.source.load_uint8(idx, threads=torch.utils.data.get_worker_info() is None)
        except DataError as e:
            return str(e)


class LoaderFeed(_ImageFeed):
    """Images decoded from files by a DataLoader (data.num_workers processes, prefetching the next steps)."""

    def __init__(self, dataset, config, device, rank, world):
        super().__init__(dataset, config, device, rank, world)
        # more workers than cores only adds contention (and torch warns about it)
        self.workers = min(int(config.data.num_workers), os.cpu_count() or 1)
        self.last_step = int(config.training.n_iters)
        self._iter, self._next = None, None

    def _start(self, step):
        # a step past the run's end (a test, an extra call) still gets its batch
        batches = _StepBatches(self.dataset.train, self.draw, step, max(self.last_step, step + 1))
        loader = torch.utils.data.DataLoader(
            batches, batch_size=None, shuffle=False, num_workers=self.workers,
            pin_memory=self.device.type == "cuda", prefetch_factor=2 if self.workers else None)
        self._iter, self._next = iter(loader), step

    def shard(self, step):
        if self._iter is None or step != self._next:
            self._start(step)
        try:
            raw = next(self._iter)
        except StopIteration:
            self._start(step)
            raw = next(self._iter)
        self._next = step + 1
        if isinstance(raw, str):
            self.close()
            raise DataError(raw)
        _, flips = self._draw(step)
        x = raw.to(self.device, non_blocking=True).to(torch.float32) / 255.0
        return self._finish(x, step, flips)

    def close(self):
        self._iter = None


def make_feed(dataset, config, device, rank=0, world=1):
    """The feed of `dataset` for training on `device` as process `rank` of `world`."""
    if not isinstance(dataset, ImageDataset):
        return DrawnFeed(dataset, config, device, rank, world)
    if isinstance(dataset.train, ArraySource):
        return MemoryFeed(dataset, config, device, rank, world)
    return LoaderFeed(dataset, config, device, rank, world)
