"""The training loop. It asks the method for a loss and a sampler and never branches on the method.

Workdir layout:
  checkpoints/checkpoint_{step}.pth   every training.snapshot_freq steps and at the end
  checkpoints-meta/checkpoint.pth     every training.snapshot_freq_for_preemption steps; resumed from
  samples/iter_{step}/sample.npz|png  EMA samples at each snapshot (data space) and their picture
  log.txt, loss.csv                   readable log; step, loss, learning rate every log_freq steps
"""
import csv
import json
import os
import time

import numpy as np
import torch

from pfgm import checkpoint, config_checks, datasets, methods, models, run_utils, visualize
from pfgm.models.ema import ExponentialMovingAverage


def build_optimizer(config, params):
    o = config.optim
    if o.optimizer != "Adam":
        raise config_checks.ConfigError(f"optim.optimizer: only 'Adam' is supported, got {o.optimizer!r}")
    return torch.optim.Adam(params, lr=o.lr, betas=(o.beta1, 0.999), eps=o.eps, weight_decay=o.weight_decay)


def learning_rate(config, step):
    """Linear warmup over optim.warmup steps, then constant. `step` counts updates done before this one."""
    o = config.optim
    return o.lr * min((step + 1) / o.warmup, 1.0) if o.warmup > 0 else o.lr


class Trainer:
    """Everything one run needs, built (and checked) before anything is written to the workdir."""

    def __init__(self, config, workdir):
        config_checks.validate(config)
        self.config, self.workdir = config, workdir
        self.device = run_utils.resolve_device(config.device)
        run_utils.seed_everything(config.seed)
        self.dataset = datasets.get_dataset(config)
        self.scaler = datasets.data_scaler(config)
        self.inverse_scaler = datasets.inverse_scaler(config)
        self.method = methods.get_method(config)
        self.model = models.create_model(config, self.device)
        self.ema = ExponentialMovingAverage(self.model, config.model.ema_rate)
        self.optimizer = build_optimizer(config, self.model.parameters())
        self.data_gen = torch.Generator().manual_seed(config.seed)
        self.noise_gen = torch.Generator(device=self.device).manual_seed(config.seed + 1)
        self.step = 0
        meta = checkpoint.meta_checkpoint_path(workdir)
        if os.path.exists(meta):
            state = checkpoint.load_checkpoint(meta, self.model, self.ema, self.optimizer, self.device)
            self.step = int(state["step"])
            if "rng" in state:
                self.data_gen.set_state(state["rng"]["data"])
                self.noise_gen.set_state(state["rng"]["noise"].to(self.noise_gen.get_state().device))

    # -- one step -------------------------------------------------------------------------
    def train_step(self, batch):
        self.model.train()
        loss = self.method.loss(self.model, batch, generator=self.noise_gen)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        lr = learning_rate(self.config, self.step)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        if self.config.optim.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.optim.grad_clip)
        self.optimizer.step()
        self.step += 1
        self.ema.update(self.model)
        return loss.item(), lr

    @torch.no_grad()
    def eval_loss(self, n_batches=1):
        gen = torch.Generator().manual_seed(self.config.seed + 2)
        noise = torch.Generator(device=self.device).manual_seed(self.config.seed + 3)
        with self.ema_weights():
            losses = []
            for _ in range(n_batches):
                batch = self.scaler(self.dataset.eval_data(self.config.training.batch_size, gen).to(self.device))
                losses.append(self.method.loss(self.model, batch, generator=noise).item())
        return float(np.mean(losses))

    def ema_weights(self):
        trainer = self

        class _Swap:
            def __enter__(self):
                trainer.ema.store(trainer.model)
                trainer.ema.copy_to(trainer.model)
                trainer.model.eval()

            def __exit__(self, *exc):
                trainer.ema.restore(trainer.model)

        return _Swap()

    # -- outputs --------------------------------------------------------------------------
    def save(self, path):
        rng = dict(data=self.data_gen.get_state(), noise=self.noise_gen.get_state())
        checkpoint.save_checkpoint(path, self.model, self.ema, self.optimizer, self.step, rng=rng)

    def snapshot_samples(self):
        n = self.config.training.snapshot_num_samples
        gen = torch.Generator(device=self.device).manual_seed(self.config.seed + 4)
        with self.ema_weights():
            samples, nfe = self.method.sample(self.model, n, self.dataset.shape, generator=gen, device=self.device)
        samples = self.inverse_scaler(samples).float().cpu().numpy()
        folder = os.path.join(self.workdir, "samples", f"iter_{self.step}")
        os.makedirs(folder, exist_ok=True)
        np.savez(os.path.join(folder, "sample.npz"), samples=samples, nfe=nfe)
        reference = self.dataset.eval_data(n, torch.Generator().manual_seed(0)).numpy()
        visualize.save_samples_figure(samples, os.path.join(folder, "sample.png"), reference=reference,
                                      title=f"step {self.step}, NFE {nfe}")
        return folder, nfe

    # -- the loop -------------------------------------------------------------------------
    def run(self):
        cfg, t = self.config, self.config.training
        os.makedirs(os.path.join(self.workdir, "checkpoints"), exist_ok=True)
        log = run_utils.setup_logging(os.path.join(self.workdir, "log.txt"))
        with open(os.path.join(self.workdir, "config.json"), "w") as f:
            f.write(cfg.to_json_best_effort(indent=2))
        n_params = sum(p.numel() for p in self.model.parameters())
        log.info("training %s with %s (%.2fM parameters) on %s, data %s %s; step %d of %d",
                 t.sde, cfg.model.name, n_params / 1e6, self.device, cfg.data.dataset,
                 tuple(self.dataset.shape), self.step, t.n_iters)
        loss_file = open(os.path.join(self.workdir, "loss.csv"), "a", newline="")
        loss_log = csv.writer(loss_file)
        if loss_file.tell() == 0:
            loss_log.writerow(["step", "loss", "lr"])
        batches = self.dataset.train_batches(t.batch_size, self.data_gen)
        bar = run_utils.progress(total=t.n_iters, initial=self.step, desc="train", unit="step")
        start, logged_step, last_loss = time.time(), self.step, float("nan")
        try:
            while self.step < t.n_iters:
                batch = self.scaler(next(batches).to(self.device, non_blocking=True))
                last_loss, lr = self.train_step(batch)
                if not np.isfinite(last_loss):
                    raise FloatingPointError(f"loss became {last_loss} at step {self.step}; the last good "
                                             f"checkpoints are in {self.workdir!r}")
                bar.update(1)
                step = self.step
                if step % t.log_freq == 0 or step == t.n_iters:
                    loss_log.writerow([step, f"{last_loss:.6g}", f"{lr:.3g}"])
                    loss_file.flush()
                    bar.set_postfix(loss=f"{last_loss:.4g}")
                    rate = (step - logged_step) / max(time.time() - start, 1e-9)
                    log.info("step %d  loss %.5g  lr %.2e  (%.1f steps/s)", step, last_loss, lr, rate)
                    start, logged_step = time.time(), step
                if step % t.eval_freq == 0:
                    log.info("step %d  eval loss (EMA) %.5g", step, self.eval_loss())
                if step % t.snapshot_freq_for_preemption == 0:
                    self.save(checkpoint.meta_checkpoint_path(self.workdir))
                if step % t.snapshot_freq == 0 or step == t.n_iters:
                    self.save(checkpoint.checkpoint_path(self.workdir, step))
                    if t.snapshot_sampling:
                        folder, nfe = self.snapshot_samples()
                        log.info("step %d  checkpoint saved; %d samples (NFE %d) in %s",
                                 step, t.snapshot_num_samples, nfe, folder)
        finally:
            bar.close()
            loss_file.close()
        self.save(checkpoint.meta_checkpoint_path(self.workdir))
        log.info("done: %d steps; final loss %.5g", self.step, last_loss)
        return self


def train(config, workdir):
    """Train (or resume) in `workdir`. Invalid configs, data or checkpoints raise before it is touched."""
    return Trainer(config, workdir).run()
