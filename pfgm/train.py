"""The training loop. It asks the method for a loss and a sampler and never branches on the method.

Workdir layout:
  checkpoints/checkpoint_{step}.pth   every training.snapshot_freq steps and at the end
  checkpoints-meta/checkpoint.pth     every training.snapshot_freq_for_preemption steps, on SIGTERM/SIGINT
  samples/iter_{step}/sample.npz|png  EMA samples at each snapshot (data space) and their picture
  log.txt, loss.csv, config.json      readable log; step, loss, learning rate every log_freq steps

Reproducibility: every random draw of step k (the data, the method's noise, dropout) is seeded from
(config.seed, k), so a run resumed from a checkpoint repeats the interrupted one bit for bit (on CPU)
with nothing but the step in the checkpoint.

Distributed (torchrun): one global batch is drawn per step and each rank prepares its slice of it
(pfgm.datasets.feed), the slices are all-gathered so
the PFGM field sees every charge of the global batch, each rank trains on its share of the trained
points, and DistributedDataParallel averages the gradients. Only rank 0 writes files.
"""
import os
import time

import torch
import torch.distributed as dist

from pfgm import (checkpoint, config_checks, datasets, distributed, files, methods, models, precision,
                  run_config, run_utils, seeds, snapshots, step_guard)
from pfgm import workdir as workdirs
from pfgm.datasets import augment, feed
from pfgm.models.ema import ExponentialMovingAverage


def build_optimizer(config, params):
    o = config.optim
    if o.optimizer != "Adam":
        raise config_checks.ConfigError(f"optim.optimizer: only 'Adam' is supported, got {o.optimizer!r}")
    return torch.optim.Adam(params, lr=o.lr, betas=(o.beta1, 0.999), eps=o.eps, weight_decay=o.weight_decay)


def learning_rate(config, step):
    """Linear warmup over optim.warmup steps, or EDM's ramp over optim.lr_rampup_kimg thousand images
    (lr * images seen / ramp, so the first update has lr 0), then constant. `step` counts updates done
    before this one."""
    o = config.optim
    if o.lr_rampup_kimg > 0:
        return o.lr * min(step * _n_trained(config) / (o.lr_rampup_kimg * 1000.0), 1.0)
    return o.lr * min((step + 1) / o.warmup, 1.0) if o.warmup > 0 else o.lr


def build_ema(config, model):
    """The EMA of config.model's ema_* keys (pfgm.models.ema); EDM's rule counts _n_trained images per step."""
    m = config.model
    return ExponentialMovingAverage(model, m.ema_rate, m.ema_halflife_kimg, m.ema_rampup_ratio, _n_trained(config))


@torch.no_grad()
def repair_gradients(params):
    """EDM's nan_to_num of the gradients (NaN -> 0, +-inf -> +-1e5), in place. Returns whether any
    entry was not finite."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads or bool(torch.stack(torch._foreach_norm(grads)).isfinite().all()):
        return False
    for g in grads:
        torch.nan_to_num(g, nan=0.0, posinf=1e5, neginf=-1e5, out=g)
    return True


def arrange_global(shards, n_trained):
    """The global batch from the ranks' shards: all trained points first (rank-major), then the rest."""
    b = n_trained // len(shards)
    return torch.cat([s[:b] for s in shards] + [s[b:] for s in shards])


def _n_trained(config):
    """The points trained on per step: PFGM's small_batch_size; the whole batch for the score SDEs."""
    t = config.training
    return t.small_batch_size if "small_batch_size" in t else t.batch_size


# Under torchrun the ranks agree on a stop request (SIGTERM) every this many steps: a host read each time.
STOP_POLL_STEPS = 10


class Interrupted(Exception):
    pass


class Trainer:
    """One run: everything it needs is built (and checked) before anything is written to the workdir;
    `run()` then trains. `train_step` is one update; the rest of the loop lives in `_run`."""

    def __init__(self, config, workdir):
        config_checks.validate(config)
        workdirs.check_ours(workdir)
        self.config, self.workdir = config, workdir
        self.rank, self.world, self.device = run_utils.init_distributed(config.device, distributed.timeout(config))
        t = config.training
        for key, value in (("batch_size", t.batch_size), ("small_batch_size", _n_trained(config))):
            if value % self.world:
                raise config_checks.ConfigError(
                    f"training.{key}: {value} does not split evenly over {self.world} processes")
        run_utils.seed_everything(config.seed)
        self.dataset = datasets.get_dataset(config)
        self.feed = feed.make_feed(self.dataset, config, self.device, self.rank, self.world)
        self.scaler = datasets.data_scaler(config)
        self.inverse_scaler = datasets.inverse_scaler(config)
        self.method = methods.get_method(config)
        self.model = models.build(config, self.device)
        self.ema = build_ema(config, self.model)
        self.optimizer = build_optimizer(config, self.model.parameters())
        self.step, skipped = 0, 0
        self.seconds, self.started = 0.0, time.time()  # training wall time of earlier attempts; this one's start
        self.log = run_utils.setup_logging(None)
        self.resumed_from, state, self.unreadable = checkpoint.newest_readable(workdir, self.log)
        self.record = run_config.record(config)
        if state is not None:
            run_config.check_resume(state, config, self.resumed_from, self.log)
            checkpoint.load_state(state, self.resumed_from, self.model, self.ema, self.optimizer, self.log)
            self.step = int(state["step"])
            skipped, self.seconds = checkpoint.run_counters(state)
        self.skips = step_guard.SkipCounter(self.device, skipped)
        step_guard.use_fused(self.optimizer)
        self.ddp = self.lock = None
        if self.world > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.ddp = torch.nn.parallel.DistributedDataParallel(self.model, device_ids=ids)
        precision.set_backend_policy(self.device, training=True)
        self.precision = precision.Precision(config, self.device)
        self.net = self.precision.network(self.ddp if self.ddp is not None else self.model)
        self._stop = False

    # -- one step -------------------------------------------------------------------------
    def global_batch(self, step):
        """Step `step`'s global batch (model space, on the device); (batch, labels) for a conditional model."""
        parts = [self.scaler(self.feed.shard(step))]
        if self.config.model.label_dim:
            parts.append(self.feed.labels(step))
        if self.world > 1:
            for i, shard in enumerate(parts):
                shards = [torch.empty_like(shard) for _ in range(self.world)]
                dist.all_gather(shards, shard.contiguous())
                parts[i] = arrange_global(shards, _n_trained(self.config))
        return tuple(parts) if len(parts) > 1 else parts[0]

    @property
    def nonfinite_in_row(self):
        return int(self.skips.in_row)  # a host read: for saves and tests, not for every step

    @property
    def nonfinite_total(self):
        return int(self.skips.total)

    def train_step(self, batch):
        """One update on the global batch (or (batch, labels)); returns (loss, lr), the loss a device scalar
        (NaN when the update was skipped, as decided on the device by every rank together: pfgm.step_guard)."""
        batch, labels = batch if isinstance(batch, tuple) else (batch, None)
        self.model.train()
        torch.manual_seed(seeds.step_seed(self.config.seed, self.step, seeds.TRAIN_TORCH, self.rank))
        noise = torch.Generator(device=self.device)
        noise.manual_seed(seeds.step_seed(self.config.seed, self.step, seeds.TRAIN_NOISE))
        net = self.net
        shard = (self.rank, self.world) if self.world > 1 else None
        extra = {}
        if self.config.training.augment_p > 0:  # EDM's pipe; its labels condition the network (never at sampling)
            gen = torch.Generator(device=self.device)
            gen.manual_seed(seeds.step_seed(self.config.seed, self.step, seeds.TRAIN_AUGMENT))
            batch, extra["augment_labels"] = augment.augment(batch, self.config.training.augment_p, gen)
        if labels is not None:  # a conditional model's classes (an unconditional run calls the loss as before)
            extra["labels"] = labels
        loss = self.method.loss(net, batch, generator=noise, shard=shard, **extra)
        self.optimizer.zero_grad(set_to_none=True)
        self.precision.backward(loss)
        self.precision.unscale(self.optimizer)
        lr = learning_rate(self.config, self.step)
        cur_nimg = self.step * _n_trained(self.config)
        clip = self.config.optim.grad_clip
        # after DDP's all-reduce the gradients are the same on every rank, so is every decision below
        if self.config.optim.nonfinite_grads == "nan_to_num" and torch.isfinite(loss) \
                and repair_gradients(self.model.parameters()):  # opt-in; reads the device
            self.log.warning("step %d: non-finite gradients replaced (nan_to_num)", self.step + 1)
        norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), clip if clip > 0 else float("inf"))
        self.step += 1
        ok = step_guard.agreed_finite(loss, norm, self.world)
        self.skips.record(ok)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        step_guard.optimizer_step(self.optimizer, ok)
        self.precision.update()
        self.ema.update(self.model, cur_nimg, apply=ok)
        return torch.where(ok, loss.detach(), float("nan")), lr

    # -- what a step may be followed by -----------------------------------------------------
    @torch.no_grad()
    def eval_loss(self):
        seed = seeds.offset(self.config.seed, seeds.EVAL_LOSS)
        gen = torch.Generator().manual_seed(seed)
        noise = torch.Generator(device=self.device).manual_seed(seed)
        with self.ema.swapped_in(self.model):
            batch, labels = self.dataset.eval_labelled(self.config.training.batch_size, gen)
            # a conditional model's loss with the points' classes, as trained (eval_data draws the same points)
            extra = dict(labels=labels.to(self.device)) if self.config.model.label_dim else {}
            return self.method.loss(self.model, self.scaler(batch.to(self.device)), generator=noise, **extra).item()

    def save(self, path):
        if self.nonfinite_in_row:
            # The state of a non-finite streak may be the exploded one that caused it: keep the last
            # checkpoints written before the streak as the ones to resume from.
            self.log.warning("step %d: %s not written during a non-finite streak", self.step, path)
            return
        if self.rank == 0:
            if self.lock is not None:
                self.lock.check()
            checkpoint.save_checkpoint(path, self.model, self.ema, self.optimizer, self.step,
                                       nonfinite_total=self.nonfinite_total, config=self.record,
                                       train_seconds=self.seconds + time.time() - self.started)

    def snapshot_samples(self):
        return snapshots.draw(self, self.ema, self.step)

    def _should_stop(self):
        self._stop = self._stop or run_utils.stop_requested()
        if self.world == 1:
            return self._stop
        if self.step % STOP_POLL_STEPS:  # agreeing on it is a host read: every few steps only
            return False
        flag = torch.tensor([float(self._stop)], device=self.device)
        dist.all_reduce(flag)
        return flag.item() > 0

    def _request_stop(self, signum, frame):
        self._stop = True

    # -- the loop -------------------------------------------------------------------------
    def run(self):
        main = self.rank == 0
        self.started = time.time()
        self.lock = workdirs.Lock(self.workdir) if main else None  # before anything is written
        try:
            return self._run(main)
        finally:
            self.feed.close()  # the DataLoader's worker processes, for file-backed data
            if self.lock is not None:
                self.lock.close()

    def _run(self, main):
        cfg, t, log = self.config, self.config.training, self.log
        # 1. the workdir (rank 0): folders, log file, what killed writes left, the config
        if main:
            workdirs.check_ours(self.workdir)  # again, now that no other training can write to it
            workdirs.claim(self.workdir)
            os.makedirs(os.path.join(self.workdir, "checkpoints"), exist_ok=True)
            log = self.log = run_utils.setup_logging(os.path.join(self.workdir, "log.txt"))
            for path in self.unreadable:  # else the step that wrote it would overwrite it
                if os.path.exists(path):
                    log.warning("unreadable checkpoint %s set aside as %s", path, checkpoint.set_aside(path))
            for path in workdirs.remove_orphan_temporaries(self.workdir):
                log.info("removed %s, left by a write that was killed", path)
            files.write_text(os.path.join(self.workdir, "config.json"), cfg.to_json_best_effort(indent=2))
            log.info("training %s with %s (%.2fM parameters) on %s x%d (%d CPU threads), data %s %s; "
                     "step %d of %d%s",
                     t.sde, cfg.model.name, sum(p.numel() for p in self.model.parameters()) / 1e6, self.device,
                     self.world, torch.get_num_threads(), cfg.data.dataset, tuple(self.dataset.shape), self.step, t.n_iters,
                     f" (resumed from {self.resumed_from})" if self.resumed_from else "")
        # 2. resumed at a snapshot step whose numbered checkpoint was lost (a kill during its write)
        due = self.step > 0 and (self.step % t.snapshot_freq == 0 or self.step == t.n_iters)
        if due and not os.path.exists(checkpoint.checkpoint_path(self.workdir, self.step)):
            self.save(checkpoint.checkpoint_path(self.workdir, self.step))
            if main:
                log.info("step %d: numbered checkpoint was missing; written from the resumed state", self.step)
        snapshots.redraw_lost(self, log)  # and its samples, lost by a kill while they were drawn
        # 3. the loop: a step, then what is due after it
        last_loss = float("nan")
        with run_utils.LossLog(os.path.join(self.workdir, "loss.csv") if main else None) as loss_log, \
                run_utils.on_stop_signals(self._request_stop), \
                run_utils.progress(total=t.n_iters, initial=self.step, desc="train", unit="step",
                                   disable=not main or None, log_every=0) as bar:
            rate = run_utils.Rate(self.step)
            try:
                while self.step < t.n_iters:
                    if self._should_stop():
                        raise Interrupted
                    loss, lr = self.train_step(self.global_batch(self.step))
                    step = self.step
                    bar.update(1)
                    if step % t.log_freq == 0 or step == t.n_iters:  # every rank: the window's one host read
                        last_loss = self._read_window(step, loss)
                    if main and (step % t.log_freq == 0 or step == t.n_iters):
                        loss_log.write(step, last_loss, lr)
                        bar.set_postfix(loss=f"{last_loss:.4g}")
                        log.info("step %d  loss %.5g  lr %.2e  (%.1f steps/s, ETA %s)", step, last_loss, lr,
                                 rate(step), rate.eta(step, t.n_iters))
                    if main and step % t.eval_freq == 0:
                        log.info("step %d  eval loss (EMA) %.5g", step, self.eval_loss())
                    # The numbered checkpoint first: were the meta one written first and the run killed
                    # during the numbered write, resume would start past this step and never write it.
                    if step % t.snapshot_freq == 0 or step == t.n_iters:
                        self.save(checkpoint.checkpoint_path(self.workdir, step))
                        if t.snapshot_sampling:
                            done = self.snapshot_samples()
                            if main:
                                log.info("step %d  checkpoint saved; samples (NFE %d) in %s", step, done[1], done[0])
                        if self.world > 1:
                            dist.barrier()
                    if step % t.snapshot_freq_for_preemption == 0:
                        self.save(checkpoint.meta_checkpoint_path(self.workdir))
            except Interrupted:
                self.save(checkpoint.meta_checkpoint_path(self.workdir))
                if main:
                    log.info("interrupted at step %d: meta checkpoint saved; run the same command to resume",
                             self.step)
                return self
        # 4. the end
        self.save(checkpoint.meta_checkpoint_path(self.workdir))
        if main:
            log.info("done: %d steps; final loss %.5g", self.step, last_loss)
        return self

    def _read_window(self, step, loss):
        """The loss of `step` and the skipped updates since the last read, in one host read; logs the
        skips and stops once training.max_nonfinite_steps of them came in a row. Returns the loss."""
        (in_row, longest, window, total), (loss,) = self.skips.read(loss)
        if window:
            self.log.warning("step %d: non-finite loss or gradients; %d update(s) skipped since the last log "
                             "(%d in a row now, %d in all)", step, window, in_row, total)
        max_bad = self.config.training.max_nonfinite_steps
        if longest >= max_bad:
            raise FloatingPointError(
                f"{longest} non-finite steps in a row (training.max_nonfinite_steps="
                f"{max_bad}); stopped at step {step}. The last good checkpoints in "
                f"{self.workdir!r} are kept; lower optim.lr or check the data")
        return loss


def train(config, workdir):
    """Train (or resume) in `workdir`. Invalid configs, data or checkpoints raise before it is touched."""
    return Trainer(config, workdir).run()
