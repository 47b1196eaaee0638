"""A training run's snapshot samples: samples/iter_{step}/sample.npz (data space, with the NFE) and its
picture sample.png, drawn from the EMA weights of that step's checkpoint and written atomically. A kill
while they are drawn loses them; the next start redraws those of the newest numbered checkpoint."""
import copy
import os

import numpy as np
import torch

from pfgm import checkpoint, checkpoint_fits, datasets, distributed, files, seeds
from pfgm.evaluation import conditional

FILES = ("sample.npz", "sample.png")


def folder(workdir, step):
    return os.path.join(workdir, "samples", f"iter_{step}")


def draw(run, ema, step):
    """EMA samples of per-image seeds from the weights of `ema` (the run's `model` is borrowed and restored),
    drawn by every rank (its share) and written by rank 0 for `step`. Returns (folder, NFE) on rank 0,
    None on the others."""
    n = run.config.training.snapshot_num_samples
    image_seeds = seeds.image_seeds(seeds.hashed(run.config.seed, seeds.SNAPSHOT_IMAGES), n)
    labels = conditional.asked_labels(run.config, n, run.device)
    with ema.swapped_in(run.model):
        samples, nfes = distributed.sample_sharded(
            run.method, run.model, run.dataset.shape, image_seeds, n, device=run.device, labels=labels,
            convert=lambda x: run.inverse_scaler(x).float().cpu().numpy())
    if samples is None:
        return None
    out = folder(run.workdir, step)
    extra = {} if labels is None else dict(labels=labels.cpu().numpy())

    def write_npz(tmp):
        with open(tmp, "wb") as f:  # a file object: np.savez would append ".npz" to the temporary's name
            np.savez(f, samples=samples, nfe=nfes[0], **extra)

    files.atomic_write(os.path.join(out, "sample.npz"), write_npz)
    reference, reference_labels = datasets.held_out_with_labels(run.dataset, n, torch.Generator().manual_seed(0))
    conditional.save_figure(samples, labels, os.path.join(out, "sample.png"), reference, reference_labels,
                            title=f"step {step}, NFE {nfes[0]}")
    return out, nfes[0]


def _lost(run):
    """(step, path) of the newest numbered checkpoint at or before run.step whose samples are missing, or None."""
    found = [(s, p) for s, p in checkpoint.list_checkpoints(run.workdir) if s <= run.step]
    if not found or all(os.path.exists(os.path.join(folder(run.workdir, found[-1][0]), f)) for f in FILES):
        return None
    return found[-1]


def redraw_lost(run, log):
    """Draw the samples of the newest numbered checkpoint at or before run.step when they are missing (a kill
    while they were written); its EMA weights are read from the checkpoint unless they are the run's.
    Every rank calls it (the sampling is shared); rank 0 decides and writes."""
    if not run.config.training.snapshot_sampling:
        return
    lost = _lost(run) if run.rank == 0 else None
    if run.world > 1:
        import torch.distributed as dist
        box = [lost]
        dist.broadcast_object_list(box, src=0)
        lost = box[0]
    if lost is None:
        return
    step, path = lost
    ema = run.ema
    if step != run.step:
        try:
            state = checkpoint.read_checkpoint(path)
            problems = checkpoint_fits.problems(state, run.model, run.ema) if "ema" in state else ["no EMA"]
        except checkpoint.CheckpointError as e:
            problems = [str(e)]
        if problems:  # the same files on every rank: every rank returns here
            log.warning("samples of step %d are missing and cannot be redrawn: %s", step, "; ".join(problems))
            return
        ema = copy.deepcopy(run.ema)
        ema.load_state_dict(state["ema"])
    done = draw(run, ema, step)
    if done is not None:
        log.info("step %d: snapshot samples were missing (a kill while drawing them); redrawn (NFE %d) in %s",
                 step, done[1], done[0])
