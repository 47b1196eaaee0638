"""Benchmark one PFGM training step of the paper's CIFAR-10 DDPM++ at the real batch sizes.

Builds the network of --config (default configs/poisson/cifar10_ddpmpp.py: B_L = 4096 charges,
B = 128 trained points, 32x32x3) and feeds a random batch in [-1, 1] straight to `method.loss`,
then backward, grad clipping, an Adam step and the EMA update, exactly as pfgm.train.Trainer does
(no CIFAR-10 file needed). Prints, on CUDA when available and on the CPU otherwise:

  field target   pfgm.poisson.field_target(x_aug of the B points, the B_L batch) alone: time and
                 the extra memory it needs (peak RSS increase on CPU, measured before the network
                 exists; max_memory_allocated increase on CUDA)
  train step     forward (loss: perturbation, field target, network), backward, optimizer; per step
  peak memory    the process's peak RSS (resource.getrusage ru_maxrss) and, on CUDA,
                 torch.cuda.max_memory_allocated

  python tools/bench_train_step.py                       # 1 step at 4096 / 128
  python tools/bench_train_step.py --steps 3 --small_batch_size 32
"""
import argparse
import os
import resource
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import torch  # noqa: E402

from pfgm import methods, models, poisson, run_utils, seeds, train  # noqa: E402


def _mib(n_bytes):
    return n_bytes / 2**20


def peak_rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def current_rss_mib():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--config", default=os.path.join(ROOT, "configs", "poisson", "cifar10_ddpmpp.py"))
    p.add_argument("--steps", type=int, default=1, help="timed training steps (each one printed)")
    p.add_argument("--batch_size", type=int, default=None, help="B_L, charges (default: the config's)")
    p.add_argument("--small_batch_size", type=int, default=None, help="B, trained points (default: the config's)")
    p.add_argument("--device", default=None, help="default: cuda if available, else cpu")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    config = run_utils.load_config_file(args.config)
    t = config.training
    if args.batch_size is not None:
        t.batch_size = args.batch_size
    if args.small_batch_size is not None:
        t.small_batch_size = args.small_batch_size
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    config.device = str(device)
    shape = (config.data.num_channels, config.data.image_size, config.data.image_size)
    n_small = t.get("small_batch_size", t.batch_size)
    print(f"config {os.path.relpath(args.config, ROOT)}: {config.model.name}, data {shape}, "
          f"B_L = {t.batch_size} charges, B = {n_small} trained points, device {device}, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads")

    gen = torch.Generator().manual_seed(args.seed)
    batch = (torch.rand(t.batch_size, *shape, generator=gen) * 2 - 1).to(device)
    method = methods.get_method(config)

    # -- the field target alone, before the network exists (so the RSS peak increase is its own)
    x_aug = poisson.perturb(batch[:n_small], t.M, t.tau, config.model.sigma_end, restrict_M=t.restrict_M,
                            generator=torch.Generator(device=device).manual_seed(args.seed))
    sync(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
    rss_before, peak_before = current_rss_mib(), peak_rss_mib()
    with torch.no_grad():
        poisson.field_target(x_aug, batch, t.gamma)  # warm-up (allocator, kernels)
        sync(device)
        t0 = time.perf_counter()
        target = poisson.field_target(x_aug, batch, t.gamma)
        sync(device)
        ft_time = time.perf_counter() - t0
    if device.type == "cuda":
        extra = f"{_mib(torch.cuda.max_memory_allocated(device) - base):.1f} MiB (CUDA max_memory_allocated increase)"
    else:
        extra = (f"{max(peak_rss_mib() - max(peak_before, rss_before), 0.0):.1f} MiB (peak RSS increase; "
                 f"inputs {_mib(batch.numel() * batch.element_size()):.1f} MiB not counted)")
    print(f"field target  {tuple(x_aug.shape)} against {t.batch_size} charges: {ft_time * 1e3:.1f} ms, "
          f"extra memory {extra}; finite {bool(torch.isfinite(target).all())}")
    del target

    # -- the network and full training steps, as pfgm.train.Trainer.train_step
    torch.manual_seed(args.seed)
    model = models.build(config, device)
    ema = train.build_ema(config, model)
    optimizer = train.build_optimizer(config, model.parameters())
    n_params = sum(q.numel() for q in model.parameters())
    print(f"network       {n_params / 1e6:.2f}M parameters; peak RSS so far {peak_rss_mib():.0f} MiB")
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    for step in range(args.steps):
        model.train()
        torch.manual_seed(seeds.step_seed(args.seed, step, seeds.TRAIN_TORCH))
        noise = torch.Generator(device=device).manual_seed(seeds.step_seed(args.seed, step, seeds.TRAIN_NOISE))
        sync(device)
        t0 = time.perf_counter()
        loss = method.loss(model, batch, generator=noise)
        sync(device)
        t1 = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        sync(device)
        t2 = time.perf_counter()
        clip = config.optim.grad_clip
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip if clip > 0 else float("inf"))
        for group in optimizer.param_groups:
            group["lr"] = train.learning_rate(config, step)
        optimizer.step()
        ema.update(model, step * train._n_trained(config))
        sync(device)
        t3 = time.perf_counter()
        times.append(t3 - t0)
        print(f"train step {step + 1}  {t3 - t0:.2f} s  (forward incl. field target {t1 - t0:.2f} s, "
              f"backward {t2 - t1:.2f} s, clip+Adam+EMA {t3 - t2:.2f} s)  loss {loss.item():.5g}")
    if len(times) > 1:
        print(f"mean step {sum(times) / len(times):.2f} s, after the first {sum(times[1:]) / (len(times) - 1):.2f} s")
    mem = f"peak RSS {peak_rss_mib():.0f} MiB"
    if device.type == "cuda":
        mem += f", CUDA max_memory_allocated {_mib(torch.cuda.max_memory_allocated(device)):.0f} MiB (training steps)"
    print(mem)


if __name__ == "__main__":
    main()
