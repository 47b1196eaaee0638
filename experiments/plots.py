"""The study's figures, from a table's rows and results (experiments.runner's result dicts).

Each plot function writes one PNG to `path` and returns it, or returns None when the table has
nothing to show that way (e.g. a single point). Quality is FID (digits-FID for the digits tables) or,
for the toy table, MMD; lower is better on every axis labelled so.
"""
import os
import textwrap

import numpy as np


def _series(sampler):
    if sampler.get("method") == "pc":
        return f"PC {sampler['predictor']}+{sampler['corrector']}"
    return {"euler": "Euler", "heun": "Heun"}.get(sampler.get("ode_solver"), "RK45")


def plot_quality_vs_nfe(table, rows, results, path, metric_name=None):
    """Quality against NFE: one colour per model, one marker/line per sampler family."""
    pts = {}
    for row, r in zip(rows, results):
        v = _quality(table, r)
        if v is None or r.get("nfe") is None or row.step is not None:
            continue
        pts.setdefault((row.model, _series(row.sampler)), []).append((r["nfe"], v))
    if len(pts) < 2 and not any(len(p) > 1 for p in pts.values()):
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4.8))
    colors = {m: f"C{i}" for i, m in enumerate(dict.fromkeys(m for m, _ in pts))}
    styles = {"Euler": "o-", "Heun": "s--", "RK45": "*"}
    for (model, series), p in pts.items():
        p.sort()
        style = styles.get(series, "^:" if "langevin" in series else "v:" if "euler_maruyama" in series else "D:")
        ax.plot([a for a, _ in p], [b for _, b in p], style, color=colors[model], ms=12 if series == "RK45" else 5,
                label=f"{model} {series}")
    return _finish_plot(fig, ax, table, path, "NFE", _quality_name(table, metric_name), fontsize=6, ncol=2)


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _quality(table, r):
    """The number a plot shows for result r: MMD (toy) or FID; None when not measured."""
    return (r.get("metrics") or {}).get("mmd" if table.kind == "toy" else "fid")


def _quality_name(table, metric_name=None):
    return "MMD" if table.kind == "toy" else metric_name or "FID"


def _finish_plot(fig, ax, table, path, xlabel, ylabel, xlog=True, **legend):
    """Axes, labels, title, grid and legend shared by the study's line plots; saves to path."""
    if xlog:
        ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel + " (lower is better)")
    ax.set_title(table.title, fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(**legend)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    _pyplot().close(fig)
    return path


def plot_quality_vs_steps(table, rows, results, path, metric_name=None):
    """Quality against the number of fixed steps, one line per model and solver (Euler solid, Heun
    dashed); RK45 as a horizontal line."""
    lines, rk = {}, {}
    for row, r in zip(rows, results):
        v, s = _quality(table, r), row.sampler
        if v is None:
            continue
        if s.get("method", "ode") == "ode" and s.get("ode_solver") in ("euler", "heun"):
            lines.setdefault((row.model, s["ode_solver"]), []).append((s["N"], v))
        elif s.get("ode_solver") == "rk45" and s.get("method", "ode") == "ode":
            rk[row.model] = v
    if not any(len(p) > 1 for p in lines.values()):
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4.5))
    colors = {m: f"C{i}" for i, m in enumerate(dict.fromkeys(m for m, _ in lines))}
    for (model, solver), pts in lines.items():
        pts.sort()
        ax.plot([a for a, _ in pts], [b for _, b in pts], "o-" if solver == "euler" else "s--",
                color=colors[model], label=f"{model} {solver.capitalize()}")
    for model, v in rk.items():
        if model in colors:
            ax.axhline(v, color=colors[model], lw=0.8, alpha=0.6, ls=":", label=f"{model} RK45")
    return _finish_plot(fig, ax, table, path, "steps N", _quality_name(table, metric_name), fontsize=7)


def plot_convergence(table, rows, results, path, metric_name=None):
    """Digits-FID (RK45) against the training step, one line per model."""
    lines = {}
    for row, r in zip(rows, results):
        if _quality(table, r) is not None and row.step:
            lines.setdefault(row.model, []).append((row.step, _quality(table, r)))
    if not lines:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4.5))
    for i, (model, pts) in enumerate(lines.items()):
        pts.sort()
        ax.plot([a for a, _ in pts], [b for _, b in pts], "o-", color=f"C{i}", label=model)
    return _finish_plot(fig, ax, table, path, "training step", (metric_name or "FID") + ", RK45", xlog=False,
                        fontsize=7)


def _panel_title(table, row, r):
    """The row's label and its sampler, NFE and quality, wrapped to a panel's width (~45 characters at 6 pt):
    unwrapped, long labels ran into the neighbouring panels."""
    q = _quality(table, r)
    caption = f"{r['sampler']}, NFE {r.get('nfe', 0):.0f}" \
        + (f", {'MMD' if table.kind == 'toy' else 'FID'} {q:.3g}" if q is not None else "")
    return "\n".join(textwrap.wrap(row.label, 45) + textwrap.wrap(caption, 45))


def plot_sample_grids(table, rows, results, path, per_row=36):
    """One panel per row of the table: its first samples (a grid of digits, or a scatter of points)."""
    panels = [(row, r) for row, r in zip(rows, results) if r.get("samples_path") and os.path.exists(r["samples_path"])]
    if not panels or table.kind == "images":
        return None
    from pfgm import visualize
    plt = _pyplot()
    cols = min(5, len(panels))
    nrows = -(-len(panels) // cols)
    titles = [_panel_title(table, row, r) for row, r in panels]
    lines = max(t.count("\n") + 1 for t in titles)  # each row of panels makes room for the longest title
    fig, axes = plt.subplots(nrows, cols, figsize=(2.6 * cols, (2.6 + 0.1 * lines) * nrows), squeeze=False,
                             layout="constrained")
    for ax in axes.flat:
        ax.axis("off")
    for ax, (row, r), title in zip(axes.flat, panels, titles):
        with np.load(r["samples_path"]) as f:
            x, labels = f["samples"].astype(np.float32), (f["labels"] if "labels" in f.files else None)
        if labels is not None and table.kind != "toy":   # a conditional model's digits: a row per class
            rows_, _ = visualize.class_rows(labels, 6)
            x = np.concatenate([x[i:i + 1] if i >= 0 else np.ones_like(x[:1]) for i in rows_.reshape(-1)])
        if table.kind == "toy":
            ax.axis("on")
            ax.set_xticks([])
            ax.set_yticks([])
            colors = None if labels is None else plt.get_cmap("tab10")(labels[:2000] % 10)
            ax.scatter(x[:2000, 0], x[:2000, 1], s=1, alpha=0.5, lw=0, c=colors)
            ax.set_xlim(-4.5, 4.5)
            ax.set_ylim(-4.5, 4.5)
            ax.set_aspect("equal")
        else:
            shown = len(x) if labels is not None else per_row
            ax.imshow(visualize.image_grid(visualize.to_uint8(np.clip(x[:shown], 0, 1)), nrow=6)[..., 0],
                      cmap="gray", vmin=0, vmax=255)
        ax.set_title(title, fontsize=6)
    fig.savefig(path, dpi=100, bbox_inches="tight", pad_inches=0.1)  # fixed-aspect panels: keep every title
    plt.close(fig)
    return path

