"""Several processes (torchrun) sharing one evaluation or one training's snapshot samples.

Samples are sharded by image seed: process r draws the images of a contiguous block of the seed list
(`shard_range`), each from its own per-image generator (pfgm.seeds.StackedGenerator), so the same
seeds give the same images whatever the number of processes; rank 0 gathers them, in seed order, and
alone writes files and computes the metrics (FID statistics included) over all of them. The other
ranks then wait for rank 0 at a barrier, which `config.collective_timeout` (seconds) bounds instead
of the backend's default (NCCL: 10 minutes), so a long rank-0 phase does not kill the job.
"""
import datetime

import numpy as np
import torch.distributed as dist


def rank_world():
    """(rank, world size) of this process; (0, 1) outside torchrun."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def timeout(config):
    """The collectives' timeout: config.collective_timeout seconds."""
    return datetime.timedelta(seconds=float(config.collective_timeout))


def shard_range(n, rank, world):
    """This rank's contiguous block [lo, hi) of n items (the first n % world ranks take one more)."""
    size, extra = divmod(n, world)
    lo = rank * size + min(rank, extra)
    return lo, lo + size + (rank < extra)


def gather_to_main(obj):
    """[every rank's obj] on rank 0 (in rank order), None elsewhere; [obj] in one process."""
    rank, world = rank_world()
    if world == 1:
        return [obj]
    out = [None] * world if rank == 0 else None
    dist.gather_object(obj, out, dst=0)
    return out


def barrier():
    if rank_world()[1] > 1:
        dist.barrier()


def sample_sharded(method, model, shape, image_seeds, batch_size, *, device, convert, on_batch=None, labels=None):
    """The images of `image_seeds` drawn by all ranks together (each its block, `batch_size` at a time):
    (samples in seed order, [NFE per batch]) on rank 0, (None, None) on the others. labels: the class of
    each image (a conditional model), in seed order."""
    rank, world = rank_world()
    lo, hi = shard_range(len(image_seeds), rank, world)
    part, nfes = None, []
    if hi > lo:
        part, nfes = method.sample_in_batches(model, hi - lo, shape, batch_size, seeds=image_seeds[lo:hi],
                                              device=device, convert=convert, on_batch=on_batch,
                                              labels=None if labels is None else labels[lo:hi])
    gathered = gather_to_main((part, nfes))
    if gathered is None:
        return None, None
    return (np.concatenate([p for p, _ in gathered if p is not None]),
            [nfe for _, batch_nfes in gathered for nfe in batch_nfes])
