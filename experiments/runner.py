"""Run a table: train what is missing (cpu scale), sample, measure, cache per row, write the outputs.

run_table(name, workdir, **options) evaluates every row of table `name` ('all': every table of the
scale) that is not cached yet and writes DIR/<table>_<scale>.md/.csv/.tex and plots (experiments.report).

Workdir layout:
  DIR/<model>/checkpoints/checkpoint_<step>.pth   the network a row needs (rows may share one model)
  DIR/<model>/reproduce/<sampler>.json, .npz      cached result (NFE, metrics) and samples of one
                                                  (checkpoint, sampling settings, n) -- reused by a second run
  DIR/<model>/reproduce/bpd_test_*.json           cached bits/dim of one checkpoint (--bpd)
  DIR/<model>/reproduce_train_time.json           wall time of training it here
  DIR/<table>_<scale>.md / .csv / .tex / *.png    the table, ours beside the paper's, and its plots

A cache entry is reused only when its key (checkpoint path and mtime, the row's sampler and every sampling
setting it runs with, the config's defaults included, n, table kind, SAMPLER_SCHEME) matches. A row whose
checkpoint is missing is listed with the command that trains it and where a published checkpoint goes; at
the cpu scale missing models are trained (all with the same n_iters). A row whose config, sampler or
likelihood fails says so in its status; the other rows go on.
"""
import dataclasses
import json
import os
import time

import numpy as np
import torch

from experiments import configs, metrics, report, tables
from pfgm import files, seeds

# Part of every cache key: samples cached before PFGM's Euler/Heun stepped in z (they stepped in log z)
# are not reused.
SAMPLER_SCHEME = "pfgm-z-steps"

DEFAULTS = dict(scale="gpu", n_iters=None, toy_n_iters=None, toy_num_samples=None, snapshot_every=1000, report=None,
                num_samples=None, batch_size=None, rk45_tol=1e-3,
                train=None, device=None, inception_weights="", fid_stats_cifar10="", fid_stats_celeba64="",
                fid_stats_bedroom="", fid_stats_ffhq64="", bpd=False, bpd_num_samples=0, bpd_repeats=None, bpd_tol=1e-5,
                models=None, model_dirs=None)
TRAIN_TIME = "reproduce_train_time.json"


def _num_samples(row, opts):
    """Samples of a row: --num_samples, or --toy_num_samples for the toy models (MMD needs thousands)."""
    if row.model.startswith("toy_") and opts.get("toy_num_samples"):
        return int(opts["toy_num_samples"])
    return opts["num_samples"]


def _sample(config, ckpt_path, row, opts, log, first_seed=None):
    """(samples as float32 numpy in data space, mean NFE per batch, the dataset, the classes asked of a
    conditional model as numpy (None: unconditional))."""
    from pfgm import checkpoint, datasets, methods, run_utils
    from pfgm.evaluation import conditional
    device = run_utils.resolve_device(config.device)
    model = checkpoint.load_ema_model(config, ckpt_path, device)
    if row.quantize_bits:
        quantize_weights(model, row.quantize_bits)
    dataset = datasets.get_dataset(config)
    inverse = datasets.inverse_scaler(config)
    n = _num_samples(row, opts)
    sampler = _row_sampler(row, config)
    label = tables.sampler_label(row.sampler)
    for k, v in sampler.items():   # the asked classes follow the row's class_label (pfgm.evaluation.conditional)
        configs.set_key(config, f"sampling.{k}", v)
    labels = conditional.asked_labels(config, n, device)
    per_image = None if first_seed is None else seeds.image_seeds(first_seed, n)
    samples, nfes = methods.get_method(config).sample_in_batches(
        model, n, dataset.shape, opts.get("batch_size"),
        generator=torch.Generator(device=device).manual_seed(seeds.offset(config.seed, seeds.SAMPLES)),
        seeds=per_image, device=device, convert=lambda x: inverse(x).float().cpu().numpy(), labels=labels,
        on_batch=lambda done, nfe: log(f"  [{row.model} {label}] {done}/{n} samples, NFE {nfe}"), **sampler)
    return samples, float(np.mean(nfes)), dataset, None if labels is None else labels.cpu().numpy()


def _row_sampler(row, config):
    """The row's overrides of config.sampling (a 'method' key only where the config has one)."""
    return {k: v for k, v in row.sampler.items() if not (k == "method" and k not in config.sampling)}


def sampling_settings(row, config):
    """What the row's samples are drawn with: the config's sampling keys with the row's overrides, and the
    seed. Part of the cache key, so a changed config default (not only a changed row) is sampled anew."""
    return dict(config.sampling.to_dict(), **_row_sampler(row, config), seed=config.seed)


@torch.no_grad()
def quantize_weights(model, bits):
    """Round every parameter tensor to 2^bits evenly spaced levels between its min and max, as the PFGM++
    robustness study (its generate_quant.py): how much precision the sampler's network needs."""
    levels = 2.0**bits - 1
    for p in model.parameters():
        lo, hi = p.min(), p.max()
        scale = (hi - lo) / levels if hi > lo else torch.ones_like(hi)
        p.copy_(torch.round((p - lo) / scale) * scale + lo)
    return model


class _PrintLog:
    """A logger-like `info(fmt, *args)` over run_table's `log(message)`."""

    def __init__(self, log):
        self.log = log

    def info(self, fmt, *args):
        self.log("  " + (fmt % args if args else fmt))


def _likelihood(config, ckpt_path, model_dir, opts, log):
    """Bits/dim of the test split under the model's probability-flow ODE (pfgm.evaluate.likelihood_report),
    cached per checkpoint and settings in DIR/<model>/reproduce/; rows sharing a model share it."""
    from pfgm import checkpoint, datasets, evaluate, methods, run_utils
    n, repeats, tol = opts["bpd_num_samples"], opts["bpd_repeats"], opts["bpd_tol"]
    key = dict(checkpoint=os.path.abspath(ckpt_path), mtime=os.path.getmtime(ckpt_path), num_samples=n,
               repeats=repeats, tol=tol, batch_size=opts.get("batch_size"),  # RK45 steps the batch as one system
               settings=dict({k: v for k, v in config.eval.items() if k.startswith("bpd_")},   # as the samples'
                             sampling=config.sampling.to_dict(), seed=config.seed))
    folder = os.path.join(model_dir, "reproduce")
    cache = os.path.join(folder, f"bpd_test_n{n}_r{repeats}_tol{tol:g}.json")
    if os.path.exists(cache):
        with open(cache) as f:
            cached = json.load(f)
        if cached.get("key") == json.loads(json.dumps(key)):
            return cached["report"]
    for k, v in dict(enable_bpd=True, bpd_dataset="test", bpd_num_samples=n, bpd_num_repeats=repeats,
                     bpd_solver="rk45", bpd_rtol=tol, bpd_atol=tol).items():
        configs.set_key(config, f"eval.{k}", v)
    if opts.get("batch_size"):
        configs.set_key(config, "eval.bpd_batch_size", opts["batch_size"])
    device = run_utils.resolve_device(config.device)
    model = checkpoint.load_ema_model(config, ckpt_path, device)
    os.makedirs(folder, exist_ok=True)
    log(f"[{os.path.basename(model_dir)}] bits/dim of {n or 'all'} test images, {repeats} pass(es)")
    result = evaluate.likelihood_report(config, methods.get_method(config), model, datasets.get_dataset(config),
                                        device, folder, _PrintLog(log))
    files.write_json(cache, dict(key=key, report=result))
    return result


def evaluate_row(table, row, ctx, log):
    """The cached or freshly computed result of one row (a dict; 'status' says what happened), with its
    model's bits/dim when asked (opts['bpd'], image tables)."""
    result = _sample_row(table, row, ctx, log)
    opts = ctx.opts
    if not opts.get("bpd") or table.kind == "toy" or "checkpoint" not in result:
        return result
    try:
        bpd = _likelihood(configs.build_config(row, opts), result["checkpoint"],
                          configs.model_dir(opts, row.model), opts, log)
    except Exception as e:  # a failed likelihood is a result; keep the rest of the row
        return dict(result, bpd_note=f"bpd failed: {type(e).__name__}: {e}")
    return dict(result, bpd=bpd["bpd"], bpd_stderr=bpd["bpd_stderr"], bpd_nfe=bpd["bpd_nfe"])


def _checkpoint_or_train(row, config, model_dir, opts, log):
    """find_checkpoint, training the model first when allowed (opts['train']) and the step is reachable."""
    ck = configs.find_checkpoint(config, model_dir, opts["scale"], row.step)
    given = row.model in (opts.get("model_dirs") or {})  # a run named by the caller is only read
    if ck is None and opts.get("train") and not given and (row.step is None or row.step <= config.training.n_iters):
        from pfgm.train import train
        log(f"[{row.model}] training ({config.training.n_iters} steps) in {model_dir}")
        t0 = time.time()
        run = train(config, model_dir)
        # the checkpoints count the wall time of every attempt (a killed one's up to its last checkpoint)
        seconds = run.seconds + time.time() - run.started if run is not None else time.time() - t0
        files.write_json(os.path.join(model_dir, TRAIN_TIME), {"seconds": seconds, "n_iters": config.training.n_iters})
        ck = configs.find_checkpoint(config, model_dir, opts["scale"], row.step)
    return ck


def _sample_row(table, row, ctx, log):
    """One row: one sample set, or (row.seed_sets) one per seed set and the minimum FID over them."""
    if not row.seed_sets:
        return _sample_set(table, row, ctx, log)
    sets = [_sample_set(table, row, ctx, log, first) for first in row.seed_sets]
    fids = [(r.get("metrics") or {}).get("fid") for r in sets]
    if any(f is None for f in fids):
        return next(r for r, f in zip(sets, fids) if f is None)
    best = sets[int(np.argmin(fids))]
    listed = ", ".join(f"{f:.4g} (seeds {s}-{s + best['num_samples'] - 1})" for f, s in zip(fids, row.seed_sets))
    return dict(best, note=f"minimum FID over {len(sets)} seed sets, as the paper reports: {listed}")


def _sample_set(table, row, ctx, log, first_seed=None):
    opts = ctx.opts
    model_dir = configs.model_dir(opts, row.model)
    result = dict(row=row.name, label=row.label, model=row.model, config=row.config, overrides=row.overrides,
                  sampler=tables.sampler_label(row.sampler), train_command=configs.train_command(row, opts),
                  published=row.published.format(model=row.model) if row.published else "")
    try:
        config = configs.build_config(row, opts)
    except Exception as e:  # a config that cannot be built is a row result, not a crash
        return dict(result, status="error", note=f"config: {type(e).__name__}: {e}")
    ck = _checkpoint_or_train(row, config, model_dir, opts, log)
    if ck is None:
        where = (f"no checkpoint in {os.path.join(model_dir, 'checkpoints')}"
                 + (f" (expected checkpoint_{config.training.n_iters}.pth)" if opts["scale"] == "cpu" else ""))
        return dict(result, status="missing checkpoint", note=where)
    step, path = ck
    n = _num_samples(row, opts)
    cache_dir = os.path.join(model_dir, "reproduce")
    tag = f"{tables.sampler_tag(row.sampler, n)}_step{step}" + (f"_q{row.quantize_bits}" if row.quantize_bits else "")
    tag += "" if first_seed is None else f"_seeds{first_seed}"
    key = dict(checkpoint=os.path.abspath(path), step=step, mtime=os.path.getmtime(path), sampler=row.sampler,
               settings=sampling_settings(row, config), num_samples=n, kind=table.kind, scheme=SAMPLER_SCHEME)
    if row.quantize_bits:
        key["quantize_bits"] = row.quantize_bits
    if first_seed is not None:
        key["first_seed"] = first_seed
    if table.kind == "images":
        key["uint8"] = config.eval.uint8
    cache_json, cache_npz = os.path.join(cache_dir, tag + ".json"), os.path.join(cache_dir, tag + ".npz")
    cached = None
    if os.path.exists(cache_json):
        try:
            with open(cache_json) as f:
                cached = json.load(f)
            if not isinstance(cached, dict) or cached.get("key") != json.loads(json.dumps(key)):
                cached = None  # json round trip: tuples become lists
        except (OSError, ValueError) as e:
            log(f"[{row.name}] cache {cache_json} is unreadable ({type(e).__name__}: {e}); recomputing")
            cached = None
    result.update(step=step, checkpoint=path, num_samples=n, samples_path=cache_npz)
    if cached is not None and table.kind == "digits" and cached.get("metric_name") != ctx.digits_metric[0]:
        cached.pop("metrics", None)  # computed with another feature metric (e.g. the stand-in): redo it
    if cached is not None and "metrics" in cached:
        log(f"[{row.name}] cached: {cache_json}")
        return dict(result, **{k: cached[k] for k in ("nfe", "metrics", "nonfinite", "sample_s", "metric_name")
                               if k in cached}, status="cached")
    if cached is not None and os.path.exists(cache_npz):
        try:
            with np.load(cache_npz) as f:
                samples, labels = f["samples"], (f["labels"] if "labels" in f.files else None)
        except Exception as e:  # noqa: BLE001 - a damaged .npz raises many types (zip, pickle, key)
            log(f"[{row.name}] cache {cache_npz} is unreadable ({type(e).__name__}: {e}); recomputing")
            cached = None
    if cached is not None and os.path.exists(cache_npz):
        nfe, sample_s = cached["nfe"], cached.get("sample_s")
        from pfgm import datasets
        dataset = datasets.get_dataset(config)
        status = "metrics added to cached samples"
    else:
        t0 = time.time()
        try:
            samples, nfe, dataset, labels = _sample(config, path, row, opts, log, first_seed)
        except Exception as e:  # a failed solver is a result; keep the other rows
            return dict(result, status="error", note=f"sampling failed: {type(e).__name__}: {e}")
        sample_s = time.time() - t0
        os.makedirs(cache_dir, exist_ok=True)
        # float16 halves the 50000 CIFAR-size samples of a gpu row; the small cpu samples stay exact
        kept = samples.astype(np.float16 if table.kind == "images" else np.float32)
        extra = {} if labels is None else dict(labels=labels)

        def write(tmp):
            with open(tmp, "wb") as f:  # a file object: np.savez would add ".npz" to the temporary's name
                np.savez(f, samples=kept, nfe=nfe, **extra)

        files.atomic_write(cache_npz, write)
        status = "computed"
    m = metrics.measure(table, config, samples, dataset, ctx, labels)
    files.write_json(cache_json, dict(key=key, nfe=nfe, sample_s=sample_s, **m))
    log(f"[{row.name}] {status}: NFE {nfe:.1f}"
        + "".join(f", {k} {v:.4g}" for k, v in (m.get("metrics") or {}).items() if v is not None)
        + (f"; {m['missing']}" if "missing" in m else ""))
    out = dict(result, nfe=nfe, sample_s=sample_s, status=status, nonfinite=m["nonfinite"])
    if "metrics" in m:
        out["metrics"] = m["metrics"]
        if "metric_name" in m:
            out["metric_name"] = m["metric_name"]
    else:
        out["note"] = m["missing"]
    return out


def _options(workdir, options):
    """DEFAULTS, the caller's options (None: the default) and the scale-dependent defaults."""
    opts = dict(DEFAULTS)
    opts.update({k: v for k, v in options.items() if v is not None})
    opts["workdir"] = workdir
    scale = opts["scale"]
    if opts["num_samples"] is None:
        opts["num_samples"] = 50000 if scale == "gpu" else 500
    if opts["train"] is None:
        opts["train"] = scale == "cpu"
    if opts["bpd_repeats"] is None:  # the original's protocol: 5 passes over the test split
        opts["bpd_repeats"] = 5 if scale == "gpu" else 1
    return opts


def _train_times(table, opts):
    """{model: training seconds} of the table's models trained here."""
    times = {}
    for m in dict.fromkeys(r.model for r in table.rows):
        p = os.path.join(configs.model_dir(opts, m), TRAIN_TIME)
        if os.path.exists(p):
            with open(p) as f:
                times[m] = json.load(f)["seconds"]
    return times


def run_table(name, workdir, log=print, digits_metric=None, command=None, **options):
    """Evaluate (what is not cached of) table `name` ('all' for every table of the scale); write
    DIR/<table>_<scale>.md/.csv/.tex (+ plots), DIR/all_<scale>.md for 'all', and options['report'] when
    given. options: the keys of DEFAULTS. Returns {table: (markdown, [files], results)}; an unknown table
    is a ValueError."""
    opts = _options(workdir, options)
    scale = opts["scale"]
    all_tables = tables.tables(scale, opts["rk45_tol"], opts.get("n_iters"))
    names = list(all_tables) if name == "all" else name.split(",")
    for n in names:
        if n not in all_tables:
            other = tables.tables("gpu" if scale == "cpu" else "cpu")
            hint = f" (a {('gpu' if scale == 'cpu' else 'cpu')}-scale table only)" if n in other else ""
            raise ValueError(f"unknown table {n!r} at scale {scale}{hint}; choose from {list(all_tables) + ['all']}")
    wanted = opts.get("models")
    if wanted:
        known = {r.model for n in names for r in all_tables[n].rows}
        unknown = sorted(set(wanted) - known)
        if unknown:
            raise ValueError(f"unknown model(s) {unknown} for table(s) {names}; choose from {sorted(known)}")
        all_tables = {n: dataclasses.replace(t, rows=[r for r in t.rows if r.model in wanted])
                      for n, t in all_tables.items()}
    os.makedirs(workdir, exist_ok=True)
    ctx = metrics.Context(opts, digits_metric)
    out = {}
    for n in names:
        table = all_tables[n]
        t0 = time.time()
        results = [evaluate_row(table, row, ctx, log) for row in table.rows]
        per_row = _num_samples(table.rows[0], opts) if table.rows else opts["num_samples"]
        seconds = time.time() - t0
        equal_budget = scale == "cpu" and table.kind == "digits"  # the models the cpu study compares
        header = report.table_header(
            table, results, opts, command, per_row, seconds, ctx.digits_metric[0],
            budget=configs.budget_report(table.rows, opts) if equal_budget else None,
            train_times=_train_times(table, opts) if equal_budget else None)
        md, written = report.write_outputs(table, table.rows, results, opts, header)
        out[n] = (md, written, results)
    if name == "all":
        report.write_all(out, os.path.join(workdir, f"all_{scale}.md"))
    if opts.get("report"):
        report.write_report(out, opts["report"], command)
    return out
