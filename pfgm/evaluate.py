"""The evaluation loop: loss, samples and sample-quality numbers of saved checkpoints.

Writes under workdir/<eval_folder>/: ckpt_{step}/samples.npz (data space, with the NFE) and
samples.png, and report_{step}.json with everything measured. Checkpoints are only read.
"""
import json
import os

import numpy as np
import torch

from pfgm import checkpoint, config_checks, datasets, methods, run_utils, train, visualize
from pfgm.evaluation import sample_metrics
from pfgm.models.ema import ExponentialMovingAverage


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
    flat = samples.reshape(len(samples), -1)
    if flat.shape[1] > 64:
        return {}
    gen = torch.Generator().manual_seed(0)
    n = min(len(flat), 2000)  # MMD is quadratic in n
    return dict(sliced_wasserstein=sample_metrics.sliced_wasserstein(flat, reference.reshape(len(reference), -1),
                                                                     generator=gen),
                mmd=sample_metrics.mmd_rbf(flat[:n], reference[:n].reshape(n, -1)))


def image_metrics(config, device):
    """FID/IS against eval.fid_stats when it is set (and the sample is images); None otherwise."""
    stats = config.eval.get("fid_stats", "")
    if not stats or not config.eval.enable_sampling:
        return None
    from pfgm.evaluation.image_metrics import InceptionMetrics

    try:
        return InceptionMetrics(stats, config.eval.get("inception_weights", ""), device)
    except (FileNotFoundError, ValueError) as e:
        raise config_checks.ConfigError(f"eval.fid_stats / eval.inception_weights: {e}") from e


def evaluate(config, workdir, eval_folder="eval"):
    config_checks.validate(config, mode="eval")
    device = run_utils.resolve_device(config.device)
    fid_metrics = image_metrics(config, device)
    dataset = datasets.get_dataset(config)
    scaler, inverse = datasets.data_scaler(config), datasets.inverse_scaler(config)
    method = methods.get_method(config)
    model = train.build_model(config, device)
    ema = ExponentialMovingAverage(model, config.model.ema_rate)
    chosen = select_checkpoints(config, workdir)
    out = os.path.join(workdir, eval_folder)
    os.makedirs(out, exist_ok=True)
    log = run_utils.setup_logging(os.path.join(out, "log.txt"))
    e = config.eval
    reports = []
    for step, path in chosen:
        checkpoint.load_checkpoint(path, model, ema, map_location=device)
        ema.copy_to(model)
        model.eval()
        run_utils.seed_everything(config.seed)
        report = dict(step=step, checkpoint=path, sde=config.training.sde)
        if e.enable_loss:
            gen = torch.Generator().manual_seed(config.seed + 2)
            noise = torch.Generator(device=device).manual_seed(config.seed + 3)
            with torch.no_grad():
                batch = scaler(dataset.eval_data(config.training.batch_size, gen).to(device))
                report["eval_loss"] = method.loss(model, batch, generator=noise).item()
            log.info("checkpoint %d: eval loss %.5g", step, report["eval_loss"])
        if e.enable_sampling:
            gen = torch.Generator(device=device).manual_seed(config.seed)
            parts, nfes = [], []
            bar = run_utils.progress(total=e.num_samples, desc=f"sample ckpt {step}", unit="sample")
            while sum(len(p) for p in parts) < e.num_samples:
                n = min(e.batch_size, e.num_samples - sum(len(p) for p in parts))
                x, nfe = method.sample(model, n, dataset.shape, generator=gen, device=device)
                parts.append(inverse(x).float().cpu().numpy())
                nfes.append(nfe)
                bar.update(n)
            bar.close()
            samples = np.concatenate(parts)
            folder = os.path.join(out, f"ckpt_{step}")
            os.makedirs(folder, exist_ok=True)
            np.savez(os.path.join(folder, "samples.npz"), samples=samples, nfe=np.array(nfes))
            reference = dataset.eval_data(len(samples), torch.Generator().manual_seed(config.seed + 5)).numpy()
            report["nfe"] = float(np.mean(nfes))
            report["num_samples"] = int(len(samples))
            report.update(sample_quality(samples, reference))
            if fid_metrics is not None:
                report.update(fid_metrics(samples))
            visualize.save_samples_figure(samples, os.path.join(folder, "samples.png"), reference=reference,
                                          title=f"{config.training.sde}, step {step}, NFE {report['nfe']:.0f}")
            log.info("checkpoint %d: %d samples, NFE %.0f%s", step, len(samples), report["nfe"],
                     "".join(f", {k} {v:.4g}" for k, v in report.items()
                             if k in ("sliced_wasserstein", "mmd", "fid", "inception_score", "digits_fid")))
        with open(os.path.join(out, f"report_{step}.json"), "w") as f:
            json.dump(report, f, indent=2)
        reports.append(report)
    return reports
