"""Side by side, in one run: the host-bound paths of issue 21 before and after, on this machine's device.

  python tools/bench_gpu_paths.py                 # cuda if present, else cpu
  python tools/bench_gpu_paths.py --device cpu --batch 4096 --repeats 5

Rows (median of --repeats, after one warm-up; each 'before' is the former code's way, written out here):
  batch prep     one step's CIFAR-10 batch of --batch images: before, uint8 images on the host indexed,
                 converted to float32, flipped, scaled by 2x - 1 and copied (pageable) to the device; after, pfgm.datasets.feed
                 (uint8 images on the device, indexed, flipped and scaled there)
  index draw     the indices of one step from a 3,000,000-image data set (LSUN bedroom's size): before, a
                 full permutation per step (torch.randperm); after, feed.EpochIndices (one permutation an
                 epoch)
  rk45           PFGM's exact-field backward ODE on --ode_batch points of CIFAR-10 width: before, scipy's
                 solve_ivp with the batch copied to the host in float64 at every evaluation; after, the
                 torch Dormand-Prince (pfgm.rk45) on the device. Same NFE expected.
  host reads     host reads per training step (pfgm.host_reads) of the toy PFGM and of a small NCSN++ over
                 5 steps and their one log read (the former loop read the loss and two finiteness flags
                 each step, the fused-less Adam one per parameter tensor on the CPU)
"""
import argparse
import math
import os
import statistics
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tests"))

import ml_collections  # noqa: E402
import scipy.integrate  # noqa: E402
import torch  # noqa: E402

from pfgm import host_reads, poisson, rk45, sampling, train  # noqa: E402
from pfgm.datasets import feed  # noqa: E402
from pfgm.datasets.image_base import ArraySource, ImageDataset  # noqa: E402


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device, repeats):
    fn()
    sync(device)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def show(name, before, after, unit="ms", scale=1e3):
    print(f"{name:<34} before {before * scale:10.2f} {unit}   after {after * scale:10.2f} {unit}   "
          f"ratio {before / max(after, 1e-12):8.1f}x", flush=True)


def batch_prep(device, batch, repeats):
    images = torch.randint(0, 256, (50000, 3, 32, 32), dtype=torch.uint8)
    c = ml_collections.ConfigDict(dict(seed=0, training=dict(batch_size=batch, small_batch_size=128, n_iters=10)))
    ds = ImageDataset("CIFAR10", (3, 32, 32), ArraySource(images, 255.0), ArraySource(images[:10], 255.0),
                      random_flip=True)
    f = feed.make_feed(ds, c, device)
    gen = torch.Generator().manual_seed(0)

    def before():
        idx = torch.randperm(50000, generator=gen)[:batch]
        x = images[idx].to(torch.float32) / 255.0  # the former ArraySource.load on the host
        flip = torch.rand(batch, generator=gen) < 0.5
        x = torch.where(flip[:, None, None, None], x.flip(-1), x)
        return (2.0 * x - 1.0).to(device)

    step = iter(range(10 ** 9))
    show(f"batch prep ({batch} images)", timed(before, device, repeats),
         timed(lambda: 2.0 * f.shard(next(step)) - 1.0, device, repeats))


def index_draw(device, batch, repeats):
    n = 3_000_000
    gen = torch.Generator().manual_seed(0)
    walk = feed.EpochIndices(n, batch, seed=0)
    step = iter(range(10 ** 9))
    show(f"index draw (3M images, {batch})", timed(lambda: torch.randperm(n, generator=gen)[:batch], device, repeats),
         timed(lambda: walk(next(step)), device, repeats))


def ode(device, batch, repeats):
    g = torch.Generator().manual_seed(0)
    charges = torch.randn(256, 3072, generator=g)
    x0 = poisson.sample_prior(batch, 3072, 40.0, 3000.0, generator=g)

    def drift_on(dev):
        c = charges.to(dev)

        def field(x, z):
            v = poisson.field_target(torch.cat([x, z[:, None]], 1), c, 5.0)
            return v[:, :-1], v[:, -1]
        return sampling.in_log_time(sampling.pfgm_drift(field))

    t0, t1, tol = math.log(40.0), math.log(1e-2), 1e-4
    drift, nfe = drift_on(device), {}

    def before():
        def f(t, y):
            return drift(torch.as_tensor(y, dtype=torch.float32, device=device).reshape(x0.shape), t) \
                .reshape(-1).double().cpu().numpy()
        sol = scipy.integrate.solve_ivp(f, (t0, t1), x0.reshape(-1).double().numpy(), method="RK45", rtol=tol, atol=tol)
        nfe["before"] = sol.nfev

    def after():
        nfe["after"] = rk45.dormand_prince(drift, x0.to(device), t0, t1, rtol=tol, atol=tol)[1]

    show(f"rk45 ({batch} x 3072, PFGM flow)", timed(before, device, repeats), timed(after, device, repeats), "s", 1)
    print(f"{'':<34} NFE before {nfe['before']}, after {nfe['after']}")


def reads(device):
    from conftest import tiny_config

    for name, kw in (("poisson/toy2d", {}), ("ve/digits_ncsnpp", dict(batch_size=8, small_batch_size=8,
                                                                      model=dict(nf=16, num_res_blocks=1)))):
        c = tiny_config(name, 20, log_freq=5, **kw)
        c.device = str(device)
        with tempfile.TemporaryDirectory() as work:
            t = train.Trainer(c, work)
            t.train_step(t.global_batch(0))
            with host_reads.HostReads() as counted:
                for _ in range(5):
                    loss, _ = t.train_step(t.global_batch(t.step))
                t._read_window(t.step, loss)
        print(f"host reads {name:<23} {counted.total / 5:.2f} per step ({counted.total} in a 5-step log window), "
              f"{counted.uploads} uploads", flush=True)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--batch", type=int, default=4096)
    p.add_argument("--ode_batch", type=int, default=256)
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args(argv)
    device = torch.device(args.device)
    print(f"device {device}, torch {torch.__version__}, {torch.get_num_threads()} threads")
    batch_prep(device, args.batch, args.repeats)
    index_draw(device, args.batch, args.repeats)
    ode(device, args.ode_batch, max(1, args.repeats // 2))
    reads(device)


if __name__ == "__main__":
    main()
