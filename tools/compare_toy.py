"""Side-by-side comparison on the 2-D toy data: PFGM vs VE vs VP, same MLP and training budget.

For each toy config it trains (unless workdir/<name>/checkpoints/checkpoint_<n_iters>.pth exists),
loads that checkpoint's EMA weights, samples with RK45 and with Euler at 10/20/50/100 steps (the
SDE methods through their probability-flow ODE), and scores the samples against held-out data with
pfgm.evaluate.sample_quality (sliced Wasserstein, RBF MMD).

  python tools/compare_toy.py --workdir runs/compare_toy
  python tools/compare_toy.py --workdir runs/compare_toy --n_iters 1000 --methods poisson,vp

Writes workdir/results.csv, workdir/results.md, workdir/quality_vs_nfe.png, workdir/samples.png.
RK45 uses rtol = atol = --rk45_tol (default 1e-3 here, looser than the configs' own 1e-4/1e-5):
the batch is one system for scipy, so its step is shared by all samples and PFGM's can need
thousands of NFE at tighter tolerances.
"""
import argparse
import csv
import importlib
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402
import torch  # noqa: E402

from pfgm import checkpoint, datasets, methods, models, run_utils  # noqa: E402
from pfgm.evaluate import sample_quality  # noqa: E402
from pfgm.models.ema import ExponentialMovingAverage  # noqa: E402
from pfgm.train import train  # noqa: E402

CONFIGS = {"poisson": "configs.poisson.toy2d", "ve": "configs.ve.toy2d", "vp": "configs.vp.toy2d"}
EULER_STEPS = (10, 20, 50, 100)
# Keys that define "the same MLP and training budget"; differences are printed, not hidden.
BUDGET_KEYS = ["training.n_iters", "training.batch_size", "training.small_batch_size", "model.name",
               "model.nf", "model.num_layers", "model.embed_dim", "model.ema_rate", "optim.lr",
               "optim.warmup", "optim.grad_clip", "data.dataset", "seed"]


def get(config, key):
    for part in key.split("."):
        config = config[part]
    return config


def budget_report(configs):
    lines = []
    for key in BUDGET_KEYS:
        vals = {name: get(c, key) for name, c in configs.items()}
        same = len({repr(v) for v in vals.values()}) == 1
        lines.append(f"{key}: " + ("same, " + repr(next(iter(vals.values()))) if same else
                                   "DIFFERS, " + ", ".join(f"{n}={v!r}" for n, v in vals.items())))
    return lines


def n_params(config):
    return sum(p.numel() for p in models.create_model(config, "cpu").parameters())


def load_ema_model(config, path, device):
    model = models.create_model(config, device)
    ema = ExponentialMovingAverage(model, config.model.ema_rate)
    checkpoint.load_checkpoint(path, model, ema, map_location=device)
    ema.copy_to(model)
    model.eval()
    return model


def solver_settings(rk45_tol):
    yield "rk45", None, dict(ode_solver="rk45", rtol=rk45_tol, atol=rk45_tol)
    for n in EULER_STEPS:
        yield "euler", n, dict(ode_solver="euler", N=n)


def run_method(name, config, workdir, args, log):
    wd = os.path.join(workdir, name)
    final = checkpoint.checkpoint_path(wd, config.training.n_iters)
    t0 = time.time()
    if os.path.exists(final):
        log(f"[{name}] found {final}; not training")
        train_s = None
    else:
        log(f"[{name}] training {config.training.n_iters} steps in {wd}")
        train(config, wd)
        train_s = time.time() - t0
        log(f"[{name}] trained in {train_s:.0f} s")
    device = run_utils.resolve_device(config.device)
    model = load_ema_model(config, final, device)
    dataset = datasets.get_dataset(config)
    inverse = datasets.inverse_scaler(config)
    method = methods.get_method(config)
    reference = dataset.eval_data(args.n_samples, torch.Generator().manual_seed(config.seed + 5)).numpy()
    rows, samples = [], {}
    for solver, steps, overrides in solver_settings(args.rk45_tol):
        gen = torch.Generator(device=device).manual_seed(config.seed)
        t0 = time.time()
        try:
            x, nfe = method.sample(model, args.n_samples, dataset.shape, generator=gen, device=device, **overrides)
        except Exception as e:  # a failed solver is a result too; keep the other rows
            log(f"[{name}] {solver} {steps}: FAILED: {e}")
            rows.append(dict(method=name, solver=solver, steps=steps or "", nfe="", sliced_w="", mmd="",
                             sample_s=f"{time.time() - t0:.2f}", note=f"failed: {e}"))
            continue
        dt = time.time() - t0
        x = inverse(x).float().cpu().numpy()
        finite = np.isfinite(x).all(1)
        q = sample_quality(x[finite], reference[: finite.sum()]) if finite.any() else {}
        note = "" if finite.all() else f"{(~finite).sum()} non-finite samples dropped"
        rows.append(dict(method=name, solver=solver, steps=steps or "", nfe=int(nfe),
                         sliced_w=f"{q.get('sliced_wasserstein', float('nan')):.4g}",
                         mmd=f"{q.get('mmd', float('nan')):.4g}", sample_s=f"{dt:.2f}", note=note))
        samples[(solver, steps)] = x
        log(f"[{name}] {solver} {steps or '':>3}: NFE {nfe}, sliced W {rows[-1]['sliced_w']}, "
            f"MMD {rows[-1]['mmd']}, {dt:.1f} s {note}")
    return rows, samples, reference, train_s


def write_outputs(workdir, rows, all_samples, reference, header_lines):
    fields = ["method", "solver", "steps", "nfe", "sliced_w", "mmd", "sample_s", "note"]
    with open(os.path.join(workdir, "results.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)
    with open(os.path.join(workdir, "results.md"), "w") as f:
        f.write("\n".join(header_lines) + "\n\n")
        f.write("| method | solver | steps | NFE | sliced W | MMD | sample time (s) | note |\n")
        f.write("|---|---|---|---|---|---|---|---|\n")
        for r in rows:
            f.write("| " + " | ".join(str(r[k]) for k in fields) + " |\n")

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4.5))
    for i, name in enumerate(dict.fromkeys(r["method"] for r in rows)):
        ok = [r for r in rows if r["method"] == name and r["nfe"] != ""]
        eu = [r for r in ok if r["solver"] == "euler"]
        ax.plot([r["nfe"] for r in eu], [float(r["sliced_w"]) for r in eu], "o-", color=f"C{i}",
                label=f"{name} Euler")
        for r in ok:
            if r["solver"] == "rk45":
                ax.plot(r["nfe"], float(r["sliced_w"]), "*", ms=14, color=f"C{i}", label=f"{name} RK45")
    ax.set_xscale("log")
    ax.set_xlabel("NFE")
    ax.set_ylabel("sliced Wasserstein (vs held-out data)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(workdir, "quality_vs_nfe.png"), dpi=110)
    plt.close(fig)

    names = list(all_samples)
    settings = [("rk45", None)] + [("euler", n) for n in EULER_STEPS]
    fig, axes = plt.subplots(len(names), len(settings) + 1, figsize=(2.4 * (len(settings) + 1), 2.4 * len(names)),
                             squeeze=False)
    lim = 3.0
    for i, name in enumerate(names):
        panels = [("data (held-out)", reference)] + [
            (f"{s} {n or ''}".strip(), all_samples[name].get((s, n))) for s, n in settings]
        for j, (title, pts) in enumerate(panels):
            ax = axes[i][j]
            if pts is not None:
                ax.scatter(pts[:, 0], pts[:, 1], s=0.5, alpha=0.5)
            else:
                ax.text(0.5, 0.5, "failed", ha="center", transform=ax.transAxes)
            nfe = next((r["nfe"] for r in rows if r["method"] == name and (r["solver"], r["steps"] or None)
                        == (title.split()[0], int(title.split()[1]) if len(title.split()) > 1 and
                            title.split()[1].isdigit() else None)), None)
            ax.set_title(title + (f", NFE {nfe}" if nfe not in (None, "") else ""), fontsize=8)
            ax.set_xlim(-lim, lim)
            ax.set_ylim(-lim, lim)
            ax.set_aspect("equal")
            ax.set_xticks([])
            ax.set_yticks([])
        axes[i][0].set_ylabel(name)
    fig.tight_layout()
    fig.savefig(os.path.join(workdir, "samples.png"), dpi=100)
    plt.close(fig)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workdir", default="runs/compare_toy")
    p.add_argument("--n_samples", type=int, default=2000)
    p.add_argument("--n_iters", type=int, default=None, help="training steps for every method (default: config's)")
    p.add_argument("--methods", default="poisson,ve,vp", help=f"comma-separated subset of {sorted(CONFIGS)}")
    p.add_argument("--rk45_tol", type=float, default=1e-3, help="rtol = atol for the RK45 rows")
    args = p.parse_args(argv)
    names = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = set(names) - set(CONFIGS)
    if unknown:
        p.error(f"unknown methods {sorted(unknown)}; choose from {sorted(CONFIGS)}")
    os.makedirs(args.workdir, exist_ok=True)
    log_file = open(os.path.join(args.workdir, "compare_log.txt"), "a")

    def log(msg):
        line = f"{time.strftime('%H:%M:%S')} {msg}"
        print(line, flush=True)
        log_file.write(line + "\n")
        log_file.flush()

    configs = {}
    for name in names:
        c = importlib.import_module(CONFIGS[name]).get_config()
        if args.n_iters is not None:
            c.training.n_iters = args.n_iters
        if "method" in c.sampling:
            c.sampling.method = "ode"  # the SDE rows are probability-flow ODE rows
        configs[name] = c
    budget = budget_report(configs)
    budget.append("parameters: " + ", ".join(f"{n}={n_params(c)}" for n, c in configs.items()))
    for line in budget:
        log("budget " + line)

    start = time.time()
    rows, all_samples, reference, train_times = [], {}, None, {}
    for name, c in configs.items():
        r, s, reference, train_s = run_method(name, c, args.workdir, args, log)
        rows += r
        all_samples[name] = s
        train_times[name] = train_s
    header = [f"Command: `python tools/compare_toy.py {' '.join(sys.argv[1:] if argv is None else argv)}`",
              f"n_samples {args.n_samples}; RK45 rtol = atol = {args.rk45_tol:g}; Euler steps {EULER_STEPS}; "
              "SDE rows: probability-flow ODE, NFE includes the final denoising step.",
              "Training time (s): " + ", ".join(f"{n}={'%.0f' % t if t is not None else 'reused'}"
                                                for n, t in train_times.items()),
              f"Total wall time {time.time() - start:.0f} s.", "", "Budget check:"] + [f"- {b}" for b in budget]
    write_outputs(args.workdir, rows, all_samples, reference, header)
    log(f"wrote results.csv, results.md, quality_vs_nfe.png, samples.png in {args.workdir}")


if __name__ == "__main__":
    main()
