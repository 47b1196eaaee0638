"""Verify pfgm on a GPU in one run (about 10 minutes on one GPU): prints one table, writes it as JSON.

  python tools/gpu_check.py                      # on cuda: the real CIFAR-10 sizes
  python tools/gpu_check.py --device cpu         # the same steps at toy sizes (the tests run this)
  python tools/gpu_check.py --out check.json --no-compile

The steps, each a row of the table (status ok / FAIL / skipped, and its figures):
  tests        tests/test_device.py (field target, RK45, data feed, NCSN++ in fp32 / bf16, a sampler, on
               the device) and the CUDA memory test of tests/test_poisson.py, through pytest
  bench        training steps of the CIFAR-10 DDPM++ and NCSN++ configs (poisson/cifar10_ddpmpp,
               cifar10_ncsnpp; the real batch sizes on cuda, shrunk on cpu) in fp32, bf16 and compiled, through
               pfgm.train.Trainer on a synthetic CIFAR-10 held on the device: images/s, peak memory, host
               reads per step (pfgm.host_reads; each one a device sync on a GPU) and per log_freq window
  train+eval   the toy (poisson/toy2d) and digits (poisson/digits_ddpmpp) trained and evaluated through the
               command line on the device; their report's MMD / digits-FID
  agreement    PFGM's field target and one Heun sampler run on the device against the CPU (float64 reference)
  rk45         the torch Dormand-Prince on the device against scipy's RK45: NFE, and the largest difference in
               units of the tolerance, on PFGM's exact-field backward ODE
A row FAILs on an error or when its figure is out of bounds (host reads > 1 per window, disagreement > 1e-4,
RK45 NFE more than 5% away or a difference beyond the tolerance); the exit status is 1 if any row failed.
"""
import argparse
import json
import math
import os
import pickle
import resource
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402
import scipy.integrate  # noqa: E402
import torch  # noqa: E402

from pfgm import host_reads, poisson, rk45, run_utils, sampling, train  # noqa: E402

ROWS = []


def row(step, name, status, **figures):
    ROWS.append(dict(step=step, name=name, status=status, **figures))
    shown = ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in figures.items())
    print(f"{step:<11} {name:<34} {status:<8} {shown}", flush=True)


def guarded(step, name, fn):
    try:
        fn()
    except Exception as e:  # noqa: BLE001 - every failure becomes a FAIL row, and the script goes on
        row(step, name, "FAIL", error=f"{type(e).__name__}: {str(e).splitlines()[0][:200]}")


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# ---- tests ------------------------------------------------------------------------------------------
def run_tests(device):
    env = dict(os.environ, PFGM_TEST_DEVICE=str(device), PYTHONPATH=ROOT)
    t0 = time.time()
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_device.py",
                        "tests/test_poisson.py::test_field_memory_is_lean"], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=600)
    last = (r.stdout.strip().splitlines() or ["no output"])[-1]
    row("tests", "tests/test_device.py (+ cuda)", "ok" if r.returncode == 0 else "FAIL", summary=last,
        seconds=time.time() - t0)


# ---- bench ------------------------------------------------------------------------------------------
def fake_cifar10(folder, n_per_batch):
    """A CIFAR-10 python-version folder of random images (the bench measures speed, not quality)."""
    rng = np.random.RandomState(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.randint(0, 256, size=(n_per_batch, 3072)).astype(np.uint8)
        with open(os.path.join(folder, name), "wb") as f:
            pickle.dump({b"data": data, b"labels": [0] * n_per_batch}, f, protocol=2)
    return folder


def bench_config(name, device, data_root, variant, full):
    config = run_utils.load_config_file(os.path.join(ROOT, "configs", "poisson", f"{name}.py"))
    config.device = str(device)
    config.data.root = data_root
    t = config.training
    t.update(snapshot_sampling=False, log_freq=5, mixed_precision="bf16" if variant == "bf16" else "no",
             compile=variant == "compiled", n_iters=10 ** 6)
    if not full:  # toy sizes on the CPU: the same code, a network and batch that take a second a step
        t.update(batch_size=16, small_batch_size=8)
        config.data.image_size = 16
        config.model.update(nf=16, ch_mult=(1, 2), num_res_blocks=1, attn_resolutions=(8,))
    return config


def bench(name, variant, device, data_root, full, steps):
    config = bench_config(name, device, data_root, variant, full)
    with tempfile.TemporaryDirectory() as work:
        trainer = train.Trainer(config, work)
        for _ in range(3):  # warm-up: optimizer state, kernels, compilation
            loss, _ = trainer.train_step(trainer.global_batch(trainer.step))
        trainer._read_window(trainer.step, loss)
        sync(device)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        log_freq = config.training.log_freq
        t0 = time.perf_counter()
        for k in range(steps):
            loss, _ = trainer.train_step(trainer.global_batch(trainer.step))
            if (k + 1) % log_freq == 0:
                value = trainer._read_window(trainer.step, loss)
        sync(device)
        seconds = time.perf_counter() - t0
        # the host reads of one more log window, counted apart: the counting mode (a torch function mode)
        # would make a compiled network recompile and so spoil the timing above
        windows = 1
        with host_reads.HostReads() as reads:
            for _ in range(log_freq):
                loss, _ = trainer.train_step(trainer.global_batch(trainer.step))
            value = trainer._read_window(trainer.step, loss)
        steps_counted = log_freq
        images = steps * train._n_trained(config)
        peak = (torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda"
                else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20)
        per_window = reads.total / windows
        ok = per_window <= 1 and math.isfinite(value)
        row("bench", f"{name} {variant}", "ok" if ok else "FAIL", images_per_s=images / seconds,
            step_ms=1e3 * seconds / steps, peak_gib=peak, host_reads_per_step=reads.total / steps_counted,
            host_reads_per_window=per_window, uploads=reads.uploads, loss=value,
            batch=f"{config.training.batch_size}/{train._n_trained(config)}")


# ---- train+eval through the command line ---------------------------------------------------------------
def train_eval(name, device, work, flags, key):
    env = dict(os.environ, PYTHONPATH=ROOT)
    t0 = time.time()
    base = [sys.executable, "-m", "pfgm.main", "--config", f"configs/{name}.py", "--workdir", work,
            f"--config.device={device}", *flags]
    for mode in ("train", "eval"):
        r = subprocess.run(base + ["--mode", mode], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
        if r.returncode:
            raise RuntimeError(f"{mode}: {r.stderr.strip().splitlines()[-1] if r.stderr.strip() else r.returncode}")
    reports = sorted(f for f in os.listdir(os.path.join(work, "eval")) if f.startswith("report_"))
    report = json.load(open(os.path.join(work, "eval", reports[-1])))
    value = float(report[key])
    row("train+eval", name, "ok" if math.isfinite(value) else "FAIL", **{key: value, "nfe": report["nfe"],
                                                                          "seconds": time.time() - t0})


# ---- agreement with the CPU -------------------------------------------------------------------------------
def agreement(device, full):
    g = torch.Generator().manual_seed(0)
    dim, charges, points = (3072, 4096, 128) if full else (192, 512, 64)
    data = torch.randn(charges, dim, generator=g)
    x = poisson.perturb(data[:points], M=280, tau=0.03, sigma_end=0.01, generator=g)
    ref = poisson.field_target(x.double(), data.double(), 1.0)
    got = poisson.field_target(x.to(device), data.to(device), 1.0).cpu().double()
    rel = float(((got - ref).norm(dim=1) / ref.norm(dim=1)).max())
    row("agreement", "field target vs cpu float64", "ok" if rel <= 1e-4 else "FAIL", max_relative=rel)

    charges = data[:64, :8].double()
    x0 = poisson.sample_prior(256, 8, 40.0, 400.0, generator=torch.Generator().manual_seed(1), dtype=torch.float64)

    def field_on(dev):
        c = charges.to(dev)

        def field(x, z):
            v = poisson.field_target(torch.cat([x, z[:, None]], 1), c, 0.0)
            return v[:, :-1], v[:, -1]
        return field

    out_cpu, _ = sampling.backward_ode(field_on("cpu"), x0, z_max=40.0, z_min=1e-3, solver="heun", steps=50)
    out_dev, _ = sampling.backward_ode(field_on(device), x0.to(device), z_max=40.0, z_min=1e-3, solver="heun",
                                       steps=50)
    diff = float((out_dev.cpu() - out_cpu).abs().max())
    row("agreement", "Heun sampler vs cpu (float64)", "ok" if diff <= 1e-4 else "FAIL", max_abs_diff=diff)


def rk45_vs_scipy(device):
    charges = torch.randn(16, 8, generator=torch.Generator().manual_seed(2), dtype=torch.float64)

    def drift_on(dev):
        c = charges.to(dev)

        def field(x, z):
            v = poisson.field_target(torch.cat([x, z[:, None]], 1), c, 0.0)
            return v[:, :-1], v[:, -1]
        return sampling.in_log_time(sampling.pfgm_drift(field))

    x0 = poisson.sample_prior(512, 8, 40.0, 400.0, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    t0, t1, tol = math.log(40.0), math.log(1e-3), 1e-5
    ours, nfe = rk45.dormand_prince(drift_on(device), x0.to(device), t0, t1, rtol=tol, atol=tol)
    f = lambda t, y: drift_on("cpu")(torch.from_numpy(y).reshape(x0.shape), t).reshape(-1).numpy()  # noqa: E731
    sol = scipy.integrate.solve_ivp(f, (t0, t1), x0.reshape(-1).numpy(), method="RK45", rtol=tol, atol=tol)
    ref = torch.from_numpy(sol.y[:, -1]).reshape(x0.shape)
    err = float(((ours.cpu() - ref).abs() / (tol + tol * ref.abs())).max())
    ok = abs(nfe - sol.nfev) <= max(6, 0.05 * sol.nfev) and err < 1.0
    row("rk45", "torch RK45 vs scipy (PFGM flow)", "ok" if ok else "FAIL", nfe=nfe, scipy_nfe=int(sol.nfev),
        max_err_in_tol=err)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--out", default="gpu_check.json", help="the table as JSON")
    p.add_argument("--steps", type=int, default=None, help="timed training steps per bench row (default 20 "
                   "on cuda, 5 on cpu)")
    p.add_argument("--no-compile", action="store_true", help="leave out the compiled bench rows")
    args = p.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda: torch sees no CUDA device")
    full = device.type == "cuda"
    steps = args.steps or (20 if full else 5)
    print(f"pfgm gpu_check on {device} ({torch.cuda.get_device_name(device) if full else 'toy sizes'}), "
          f"torch {torch.__version__}", flush=True)
    started = time.time()
    guarded("tests", "tests/test_device.py", lambda: run_tests(device))
    with tempfile.TemporaryDirectory() as tmp:
        data_root = fake_cifar10(tmp, 1000 if full else 32)
        variants = ["fp32", "bf16"] + ([] if args.no_compile else ["compiled"])
        for name in ("cifar10_ddpmpp", "cifar10_ncsnpp"):
            for variant in variants:
                guarded("bench", f"{name} {variant}", lambda: bench(name, variant, device, data_root, full, steps))
        toy_steps, digits_steps = (1000, 200) if full else (100, 20)
        toy = [f"--config.training.n_iters={toy_steps}", f"--config.training.snapshot_freq={toy_steps}",
               "--config.training.snapshot_sampling=False", "--config.eval.num_samples=500",
               "--config.sampling.ode_solver=heun", "--config.sampling.N=20"]
        guarded("train+eval", "poisson/toy2d",
                lambda: train_eval("poisson/toy2d", device, os.path.join(tmp, "toy"), toy, "mmd"))
        digits = [f"--config.training.n_iters={digits_steps}", f"--config.training.snapshot_freq={digits_steps}",
                  "--config.training.snapshot_sampling=False", "--config.eval.num_samples=64",
                  "--config.eval.enable_loss=False", "--config.sampling.ode_solver=heun", "--config.sampling.N=10"]
        guarded("train+eval", "poisson/digits_ddpmpp",
                lambda: train_eval("poisson/digits_ddpmpp", device, os.path.join(tmp, "digits"), digits, "digits_fid"))
    guarded("agreement", "field target / sampler", lambda: agreement(device, full))
    guarded("rk45", "torch RK45 vs scipy", lambda: rk45_vs_scipy(device))
    failed = [r for r in ROWS if r["status"] == "FAIL"]
    summary = dict(device=str(device), torch=torch.__version__, seconds=time.time() - started, rows=ROWS,
                   passed=not failed)
    with open(args.out, "w") as f:
        json.dump(summary, f, indent=2)
    print(f"{len(ROWS) - len(failed)} of {len(ROWS)} rows ok in {summary['seconds']:.0f} s; table -> {args.out}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
