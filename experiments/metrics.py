"""The quality numbers of one row's samples, by table kind.

  toy     sliced Wasserstein and MMD against fresh points of the toy density (pfgm.evaluate.sample_quality)
  digits  digits-FID against the 1500 training digits (or the metric a caller passes in: tests use a
          raw-pixel stand-in, pixel_fd)
  images  FID / IS with Inception weights and a statistics file; when either is missing the row keeps
          its samples and NFE and says what is missing, and a later run with the file adds the FID

`Context` holds what the rows of a run share (reference digits, Inception networks), built once.
"""
import os

import numpy as np
import torch

from pfgm import seeds


def _digits_metric():
    """digits_fid from pfgm.evaluation.digits; a raw-pixel Fréchet distance stand-in when absent."""
    try:
        from pfgm.evaluation.digits import digits_fid
        return "digits-FID", digits_fid
    except ImportError:
        return "pixel-FD (stand-in: digits.py missing)", pixel_fd


def pixel_fd(samples, reference):
    """Fréchet distance of raw pixels (a stand-in for digits_fid in tests)."""
    from pfgm.evaluation import fid
    a = np.asarray(samples, np.float64).reshape(len(samples), -1)
    b = np.asarray(reference, np.float64).reshape(len(reference), -1)
    return fid.frechet_distance(*fid.activation_statistics(a), *fid.activation_statistics(b))


class Context:
    """Per-run shared state: run_table's options, reference sets, metric objects (built once).

    digits_metric: (name, fn(samples, reference)) of the digits tables; the name is part of each cached
    result, so a cache made with another metric gets its numbers recomputed.
    """

    def __init__(self, opts, digits_metric=None):
        self.opts = opts
        self._cache = {}
        self.digits_metric = digits_metric or _digits_metric()

    def digits_reference(self, config):
        if "digits" not in self._cache:
            from pfgm import datasets
            ds = datasets.get_dataset(config)
            self._cache["digits"] = ds.train.load(torch.arange(ds.num_train)).numpy()
        return self._cache["digits"]

    def inception(self, dataset, device):
        """(InceptionMetrics, None) or (None, what is missing)."""
        key = ("inception", dataset)
        if key not in self._cache:
            stats = self.opts.get(f"fid_stats_{dataset}") or ""
            if not stats:
                self._cache[key] = (None, f"FID stats not given (--fid_stats_{dataset}=PATH; make it with "
                                          "`python tools/fid.py stats DATA -o stats.npz`)")
            elif not os.path.isfile(stats):
                self._cache[key] = (None, f"FID stats file not found: {stats}")
            else:
                try:
                    from pfgm.evaluation.image_metrics import InceptionMetrics
                    self._cache[key] = (InceptionMetrics(stats, self.opts.get("inception_weights") or None,
                                                         device), None)
                except (FileNotFoundError, ValueError, RuntimeError, OSError) as e:
                    self._cache[key] = (None, f"Inception weights: {e} (--inception_weights=PATH or "
                                              "$PFGM_INCEPTION_WEIGHTS)")
        return self._cache[key]


def measure(table, config, samples, dataset, ctx, labels=None):
    """{'nonfinite': count, 'metrics': {...}} (+ 'metric_name' for digits) or {'nonfinite', 'missing': why}.
    Non-finite samples are dropped before measuring, and counted (a conditional model's labels too: its
    'accuracy' counts a non-finite sample as a miss)."""
    finite = np.isfinite(samples.reshape(len(samples), -1)).all(1)
    out = {"nonfinite": int((~finite).sum())}
    s = samples[finite]
    if len(s) < 2:
        return dict(out, missing="fewer than 2 finite samples")
    m = _measure(table, config, s, dataset, ctx, len(samples))
    if labels is not None and "metrics" in m:
        from pfgm.evaluation import conditional
        judged = conditional.class_report(config, np.clip(s, 0.0, 1.0) if table.kind == "digits" else s,
                                          np.asarray(labels)[finite])
        if judged:
            m["metrics"]["accuracy"] = judged["class_accuracy"] * len(s) / len(samples)
    return dict(out, **m)


def _measure(table, config, s, dataset, ctx, n):
    """The quality numbers of the finite samples s of n."""
    if table.kind == "toy":
        from pfgm.evaluate import sample_quality
        held_out = torch.Generator().manual_seed(seeds.offset(config.seed, seeds.HELD_OUT))
        ref = dataset.eval_data(n, held_out).numpy()
        q = sample_quality(s, ref[: len(s)])
        return dict(metrics=dict(sliced_w=q["sliced_wasserstein"], mmd=q["mmd"]))
    if table.kind == "digits":
        name, fn = ctx.digits_metric
        return dict(metrics={"fid": float(fn(np.clip(s, 0.0, 1.0), ctx.digits_reference(config)))}, metric_name=name)
    from pfgm import run_utils
    metric, why = ctx.inception(table.dataset, run_utils.resolve_device(config.device))
    if metric is None:
        return dict(missing=why)
    m = metric(s, uint8=config.eval.uint8)  # the row's paper's protocol
    return dict(metrics={"fid": m["fid"], "is_": m.get("inception_score")})
