"""The evaluation loop: loss, likelihood, samples and sample-quality numbers of saved checkpoints.

Writes under workdir/<eval_folder>/: ckpt_{step}/samples.npz (data space, with the NFE) and
samples.png, ckpt_{step}/likelihood_{split}.npz (per-point bits/dim or NLL), ckpt_{step}/images/
(eval.save_images: one PNG per sample), ckpt_{step}/trajectories.png (2-D data: the sampler's paths),
interpolation_{step}.png and rescale_{step}.png (eval.enable_interpolate / enable_rescale), and
report_{step}.json with everything measured. Checkpoints are only read. Each ckpt_{step}/ is written
as a fresh hidden folder renamed into place when complete (with its report.json), replacing an earlier
evaluation of that checkpoint whole; report_{step}.json is written after it.

Under torchrun the processes share the sampling (sharded by image seed, gathered on rank 0:
pfgm.distributed); rank 0 alone computes the loss, the likelihood, the pictures and the metrics, and
writes every file.
"""
import math
import os

import numpy as np
import torch

from pfgm import (checkpoint, config_checks, datasets, distributed, files, methods, precision, run_utils, sampling,
                  seeds, visualize)
from pfgm.evaluation import conditional, likelihood, prior_paths, sample_metrics
from pfgm.images import to_uint8


STAGING = r"\.ckpt_\d+\.tmp(\d+)(?:\.old)?"  # files.staging_folder's names for ckpt_{step}


def select_checkpoints(config, workdir):
    """eval.begin_ckpt..end_ckpt (in units of snapshot_freq, as the original), or the newest if -1."""
    found = checkpoint.list_checkpoints(workdir)
    if not found:
        raise checkpoint.CheckpointError(
            f"no checkpoint in {os.path.join(workdir, 'checkpoints')!r}: train first (--mode train) "
            "or put a checkpoint_<step>.pth there")
    e = config.eval
    if e.begin_ckpt < 0:
        return found[-1:]
    freq = config.training.snapshot_freq
    wanted = {k * freq for k in range(e.begin_ckpt, e.end_ckpt + 1)}
    chosen = [(s, p) for s, p in found if s in wanted]
    if not chosen:
        raise checkpoint.CheckpointError(
            f"none of checkpoint_{{{min(wanted)}..{max(wanted)}}}.pth (eval.begin_ckpt..end_ckpt times "
            f"training.snapshot_freq) is in {os.path.join(workdir, 'checkpoints')!r}")
    return chosen


def sample_quality(samples, reference):
    """Numbers that need no download: digits FID for 8x8 grey images, SW/MMD for low-dim points."""
    if samples.ndim == 4 and tuple(samples.shape[1:]) == (1, 8, 8):
        from pfgm.evaluation import digits

        return dict(digits_fid=digits.digits_fid(samples, reference),
                    digits_is=digits.digits_is(samples)[0])
    if samples.reshape(len(samples), -1).shape[1] > 64:
        return {}
    return sample_metrics.points_quality(samples, reference, generator=torch.Generator().manual_seed(0))


def image_metrics(config, device):
    """FID/IS against eval.fid_stats when it is set (and the sample is images); None otherwise."""
    stats = config.eval.fid_stats
    if not stats or not config.eval.enable_sampling:
        return None
    from pfgm.evaluation.image_metrics import InceptionMetrics

    try:
        return InceptionMetrics(stats, config.eval.inception_weights, device, uint8=config.eval.uint8)
    except (FileNotFoundError, ValueError) as e:
        raise config_checks.ConfigError(f"eval.fid_stats / eval.inception_weights: {e}") from e


def held_out_batches(dataset, config, split, batch_size, limit=0, labels=False):
    """(a function giving the batches, their total size, is_images). Images: the first `limit`
    (0: all) of the split, in order. Other data: a fixed held-out set is used whole or in part, each
    point once; an endless one (the toy densities) is drawn `limit` or eval.num_samples times.
    labels: each batch is (points, their classes) instead (a labelled data set)."""
    e = config.eval
    if hasattr(dataset, "split_batches"):
        size = dataset.num_train if split == "train" else dataset.num_eval
        total = min(limit, size) if limit else size
        classes = (dataset.train if split == "train" else dataset.held_out).labels if labels else None

        def images():
            seen = 0
            for x in dataset.split_batches(split, batch_size):
                x = x[: total - seen]
                if not len(x):
                    return
                yield x if classes is None else (x, classes[seen:seen + len(x)])
                seen += len(x)

        return images, total, True
    points = getattr(dataset, "eval_points", None)
    if points is not None:
        classes = dataset.eval_labels if labels else None
        if limit:
            points, classes = points[:limit], None if classes is None else classes[:limit]
    else:
        gen = torch.Generator().manual_seed(seeds.offset(config.seed, seeds.HELD_OUT))
        n = limit or e.num_samples
        points, classes = dataset.eval_labelled(n, gen) if labels else (dataset.eval_data(n, gen), None)
    if classes is None:
        return (lambda: iter(points.split(batch_size))), len(points), False
    return (lambda: zip(points.split(batch_size), classes.split(batch_size))), len(points), False


def likelihood_report(config, method, model, dataset, device, folder, log):
    """Bits/dim of uniformly dequantized images (eval.bpd_dataset split), or the NLL in nats of
    held-out points for non-image data, through the method's probability-flow ODE.

    Repeated eval.bpd_num_repeats times with fresh dequantization noise and Hutchinson probes (the
    original: 5 passes over the test split), drawn for each (pass, batch) from seeds of their own, so
    under torchrun the batches are shared out over the processes (batch j to rank j mod world) and the
    numbers do not depend on how many there are. Rank 0 gathers them and writes
    folder/likelihood_{split}.npz (the others return None); non-finite values (a diverging ODE) are
    counted and left out of the mean, not fatal.
    """
    e = config.eval
    repeats = e.bpd_num_repeats
    opts = dict(solver=e.bpd_solver, steps=e.bpd_steps, rtol=e.bpd_rtol, atol=e.bpd_atol, estimator=e.bpd_estimator)
    split = e.bpd_dataset
    batches, total, images = held_out_batches(dataset, config, split, e.bpd_batch_size or e.batch_size,
                                              e.bpd_num_samples)
    split, key = (split, "bpd") if images else ("held_out", "nll")
    scaler = datasets.data_scaler(config)
    flow = method.probability_flow(model)
    rank, world = distributed.rank_world()
    values, nfes = [], []
    bar = run_utils.progress(total=repeats * total, desc=f"likelihood ({split})", unit="pt")
    for r in range(repeats):
        mine = {}
        for j, x in enumerate(batches()):
            if j % world != rank:
                continue
            noise = torch.Generator().manual_seed(seeds.hashed(config.seed, seeds.LIKELIHOOD_DEQUANTIZE, r, j))
            probes = torch.Generator(device=device).manual_seed(
                seeds.hashed(config.seed, seeds.LIKELIHOOD_PROBES, r, j))
            nfe = None
            try:
                if images:
                    v, nfe = likelihood.images_bits_per_dim(flow, x, scaler, device=device, noise_generator=noise,
                                                            generator=probes, **opts)
                else:
                    v, nfe = likelihood.points_nll(flow, x, scaler, device=device, generator=probes, **opts)
            except sampling.NonFiniteError as err:  # the solver stops the whole batch; count its points
                log.info("likelihood: a batch of %d points diverged (%s); counted as non-finite", len(x), err)
                v = torch.full((len(x),), float("nan"), dtype=torch.float64)
            mine[j] = (v.detach().cpu(), nfe)
            bar.update(len(x) * world)
        gathered = distributed.gather_to_main(mine)
        if gathered is None:
            continue
        merged = {j: got for part in gathered for j, got in part.items()}
        nfes += [merged[j][1] for j in sorted(merged) if merged[j][1] is not None]
        values.append(torch.cat([merged[j][0] for j in sorted(merged)]).numpy())
        log.info("likelihood pass %d/%d (%s): %s %.4f", r + 1, repeats, split, key, np.nanmean(values[-1]))
    bar.close()
    if rank != 0:
        return None
    values = np.stack(values)
    np.savez(os.path.join(folder, f"likelihood_{split}.npz"), **{key: values}, nfe=np.array(nfes))
    finite = np.isfinite(values)
    if not finite.all():
        log.info("likelihood: %d of %d values are not finite (a diverging ODE); left out of the mean. Try "
                 "smaller eval.bpd_rtol / bpd_atol", int((~finite).sum()), values.size)
    # the standard error treats points as independent and averages each point's repeats first
    per_point = np.array([v[f].mean() for v, f in zip(values.T, finite.T) if f.any()])
    stderr = float(per_point.std(ddof=1) / np.sqrt(len(per_point))) if len(per_point) > 1 else float("nan")
    return {key: float(values[finite].mean()) if finite.any() else float("nan"), f"{key}_stderr": stderr,
            f"{key}_nfe": float(np.mean(nfes)) if nfes else float("nan"), f"{key}_num_points": int(values.shape[1]),
            f"{key}_repeats": int(repeats), f"{key}_dataset": split, f"{key}_nonfinite": int((~finite).sum())}


def eval_loss(config, method, model, dataset, device):
    """The loss over the whole held-out split in eval.batch_size batches (as the original; the toy
    densities: eval.num_samples fresh points), each batch weighted by its size; a conditional model's
    with the points' classes, as trained. Returns (loss, points)."""
    conditional = bool(config.model.label_dim)
    batches, _, _ = held_out_batches(dataset, config, "test", config.eval.batch_size, labels=conditional)
    scaler = datasets.data_scaler(config)
    noise = torch.Generator(device=device).manual_seed(seeds.offset(config.seed, seeds.EVAL_LOSS))
    weighted, seen = 0.0, 0
    with torch.no_grad():
        for batch in batches():
            x, extra = (batch[0], dict(labels=batch[1].to(device))) if conditional else (batch, {})
            weighted += method.loss(model, scaler(x.to(device)), generator=noise, **extra).item() * len(x)
            seen += len(x)
    return weighted / seen, seen


def prior_pictures(config, method, model, dataset, device, out, step, log):
    """eval.enable_interpolate / enable_rescale: 6 rows of 10 samples from slerped / rescaled prior
    points (pfgm.evaluation.prior_paths), written to out/interpolation_{step}.png, rescale_{step}.png."""
    e, dim = config.eval, math.prod(dataset.shape)
    inverse = datasets.inverse_scaler(config)
    for key, name, make, stream in (
            ("enable_interpolate", "interpolation", prior_paths.interpolation_starts, seeds.INTERPOLATION),
            ("enable_rescale", "rescale", prior_paths.rescale_starts, seeds.RESCALE)):
        if not e[key]:
            continue
        g = torch.Generator().manual_seed(seeds.hashed(config.seed, stream))
        starts = make(6, 10, dim, method.prior_radius(dim), generator=g).float().reshape(-1, *dataset.shape)
        with torch.no_grad():
            x, nfe = method.sample(model, len(starts), dataset.shape, x=starts.to(device), device=device)
        path = os.path.join(out, f"{name}_{step}.png")
        visualize.save_image_grid(to_uint8(inverse(x).float().cpu().numpy()), path, nrow=10,
                                  scale=max(1, 32 // dataset.shape[-1]))
        log.info("checkpoint %d: %s (6 x 10, NFE %d) -> %s", step, name, nfe, path)


def trajectories_picture(config, method, model, dataset, device, folder, step, reference):
    """For 2-D data: 64 prior points carried to the data by Heun (100 steps), drawn with their paths
    (PFGM's field lines, as the paper's first figure) to folder/trajectories.png."""
    g = torch.Generator(device=device).manual_seed(seeds.hashed(config.seed, seeds.TRAJECTORIES))
    x = method.prior_sample(64, dataset.shape, device, g)
    with torch.no_grad():
        times, states = method.trajectory(model, x, steps=100, labels=conditional.asked_labels(config, 64, device))
    inverse = datasets.inverse_scaler(config)
    visualize.save_trajectories(times.numpy(), inverse(states).numpy(), os.path.join(folder, "trajectories.png"),
                                reference=reference, time_name=method.time_name,
                                title=f"{config.training.sde}, step {step}: backward ODE paths (Heun, 100 steps)")


def evaluate(config, workdir, eval_folder="eval"):
    config_checks.validate(config, mode="eval")
    e = config.eval
    rank, world, device = run_utils.init_distributed(config.device, distributed.timeout(config))
    main = rank == 0
    precision.set_backend_policy(device, training=False)
    fid_metrics = image_metrics(config, device) if main else None
    dataset = datasets.get_dataset(config)
    if (e.enable_interpolate or e.enable_rescale) and len(dataset.shape) != 3:
        key = "enable_interpolate" if e.enable_interpolate else "enable_rescale"
        raise config_checks.ConfigError(f"eval.{key}: the interpolation and rescale pictures are for image "
                                        f"data; this data set's points have shape {tuple(dataset.shape)}")
    method = methods.get_method(config)
    chosen = select_checkpoints(config, workdir)
    out = os.path.join(workdir, eval_folder)
    if main:
        os.makedirs(out, exist_ok=True)
    log = run_utils.setup_logging(os.path.join(out, "log.txt") if main else None)
    if world > 1 and e.first_seed < 0:
        log.info("%d processes: the samples use per-image seeds 0..%d (eval.first_seed=0), the same images "
                 "one process draws with eval.first_seed=0", world, e.num_samples - 1)
    if main:
        for gone in files.remove_dead_staging(out, STAGING):
            log.info("removed %s, left by an evaluation that was killed", gone)
    reports = []
    for step, path in chosen:
        model = checkpoint.load_ema_model(config, path, device)
        run_utils.seed_everything(config.seed)
        report = dict(step=step, checkpoint=path, sde=config.training.sde)
        # Outputs go to a fresh folder renamed into place when complete (rank 0, which writes them): an
        # earlier or killed run's files never mix with these, and report_{step}.json exists only beside a
        # complete ckpt_{step}/.
        final = os.path.join(out, f"ckpt_{step}")
        folder = files.staging_folder(final) if main else final
        # the samples and bits/dim first, shared by every process: the phases of rank 0 alone come after
        sampled = sample_report(config, method, model, dataset, device, folder, step, log, fid_metrics) \
            if e.enable_sampling else {}
        bpd = likelihood_report(config, method, model, dataset, device, folder, log) if e.enable_bpd else {}
        if not main:
            distributed.barrier()
            continue
        if e.enable_loss:
            report["eval_loss"], report["eval_loss_points"] = eval_loss(config, method, model, dataset, device)
            log.info("checkpoint %d: eval loss %.5g over %d held-out points", step, report["eval_loss"],
                     report["eval_loss_points"])
        report.update(bpd)
        prior_pictures(config, method, model, dataset, device, out, step, log)
        report.update(sampled)
        files.write_json(os.path.join(folder, "report.json"), report)
        report_path = os.path.join(out, f"report_{step}.json")
        if os.path.exists(report_path):
            os.remove(report_path)
        files.publish_folder(folder, final)
        files.write_json(report_path, report)
        reports.append(report)
        distributed.barrier()
    return reports


def sample_report(config, method, model, dataset, device, folder, step, log, fid_metrics=None):
    """eval.num_samples samples in eval.batch_size batches, written to folder/samples.npz (and
    folder/images/ with eval.save_images), their picture, their quality numbers and NFE."""
    e = config.eval
    inverse = datasets.inverse_scaler(config)
    convert = lambda x: inverse(x).float().cpu().numpy()  # noqa: E731
    _, world = distributed.rank_world()
    labels = conditional.asked_labels(config, e.num_samples, device)
    with run_utils.progress(total=e.num_samples, desc=f"sample ckpt {step}", unit="sample") as bar:
        progress = lambda done, nfe: (bar.set_postfix(nfe=nfe), bar.update(done - bar.n))  # noqa: E731
        if world > 1 or e.first_seed >= 0:  # per-image seeds, sharded over the processes
            per_image = seeds.image_seeds(max(e.first_seed, 0), e.num_samples)
            samples, nfes = distributed.sample_sharded(method, model, dataset.shape, per_image, e.batch_size,
                                                       device=device, convert=convert, on_batch=progress,
                                                       labels=labels)
            if samples is None:
                return {}
        else:
            gen = torch.Generator(device=device).manual_seed(seeds.offset(config.seed, seeds.SAMPLES))
            samples, nfes = method.sample_in_batches(model, e.num_samples, dataset.shape, e.batch_size,
                                                     generator=gen, device=device, convert=convert,
                                                     on_batch=progress, labels=labels)
    np.savez(os.path.join(folder, "samples.npz"), samples=samples, nfe=np.array(nfes),
             **({} if labels is None else dict(labels=labels.cpu().numpy())))
    if e.save_images and samples.ndim == 4:
        written = visualize.save_images(samples, os.path.join(folder, "images"), uint8=e.uint8)
        log.info("checkpoint %d: %d images -> %s", step, written, os.path.join(folder, "images"))
    gen = torch.Generator().manual_seed(seeds.offset(config.seed, seeds.HELD_OUT))
    reference, reference_labels = datasets.held_out_with_labels(dataset, len(samples), gen)
    report = dict(nfe=float(np.mean(nfes)), num_samples=int(len(samples)))
    report.update(sample_quality(samples, reference))
    report.update(conditional.class_report(config, samples, labels))
    if fid_metrics is not None:
        report.update(fid_metrics(samples))
    guide = "" if labels is None else f", guidance {config.sampling.guidance:g}"
    conditional.save_figure(samples, labels, os.path.join(folder, "samples.png"), reference, reference_labels,
                            title=f"{config.training.sde}, step {step}, NFE {report['nfe']:.0f}{guide}")
    if samples.ndim == 2 and samples.shape[1] == 2:
        trajectories_picture(config, method, model, dataset, device, folder, step, reference)
    log.info("checkpoint %d: %d samples, NFE %.0f%s", step, len(samples), report["nfe"],
             "".join(f", {k} {v:.4g}" for k, v in report.items()
                     if k in ("sliced_wasserstein", "mmd", "fid", "inception_score", "digits_fid", "class_accuracy")))
    if report.get("far_samples"):
        log.info("checkpoint %d: %d of %d samples end far from the data (beyond %g times its radius, "
                 "docs/configs.md); without them: sliced W %.4g, MMD %.4g", step, report["far_samples"],
                 len(samples), sample_metrics.FAR_FACTOR, report.get("sliced_wasserstein_without_far", math.nan),
                 report.get("mmd_without_far", math.nan))
    return report
