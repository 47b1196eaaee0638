"""A table's outputs: the Markdown/CSV/LaTeX files, their header, and the --report page.

write_outputs(table, rows, results, opts, header) writes DIR/<table>_<scale>.md / .csv / .tex and the
plots (experiments.plots) and returns (markdown, [written files]). `results` are experiments.runner's
row dicts; cells are formatted here only (3 significant digits, NFE 4), so the files of one run agree.
table_header says how the numbers were made (command, scale, metric, budget check, convergence).
"""
import csv
import os
import shutil

import numpy as np

from experiments import plots


def _num(v, digits=3):
    if v is None or v == "":
        return ""
    if isinstance(v, str):
        return v
    if isinstance(v, float) and not np.isfinite(v):
        return "nan"
    return f"{v:.{digits}g}" if isinstance(v, float) else str(v)


def _columns(table, bpd=False):
    acc = ["accuracy"] if table.conditional else []
    if table.kind == "toy":
        return ["row", "sampler", "NFE"] + acc + ["sliced W", "MMD", "status / note"]
    cols = ["row", "sampler", "NFE"] + acc + ["FID"] + (["IS"] if table.kind == "images" else []) + \
        (["bpd"] if bpd else [])
    return cols + ["paper NFE", "paper FID"] + (["paper IS"] if table.kind == "images" else []) + \
        (["paper bpd"] if bpd else []) + ["paper source", "status / note"]


def _cells(table, row, r, bpd=False):
    met = r.get("metrics") or {}
    paper = row.paper or {}
    note = r["status"]
    if r["status"] == "missing checkpoint":
        note = f"missing: {r['note']}. Train: `{r['train_command']}`" + (
            f"; or published: {r['published']}" if r.get("published") else "")
    elif r.get("note"):
        note += f": {r['note']}"
    if r.get("bpd_note"):
        note += f"; {r['bpd_note']}"
    if r.get("nonfinite"):
        note += f" ({r['nonfinite']} non-finite samples dropped)"
    nfe = _num(r.get("nfe"), 4) if r.get("nfe") is not None else ""
    acc = [_num(met.get("accuracy"))] if table.conditional else []
    if table.kind == "toy":
        return [row.label, r["sampler"], nfe] + acc + [_num(met.get("sliced_w")), _num(met.get("mmd")), note]
    cells = [row.label, r["sampler"], nfe] + acc + [_num(met.get("fid"))]
    if table.kind == "images":
        cells.append(_num(met.get("is_")))
    if bpd:
        cells.append(f"{r['bpd']:.3f} ± {r['bpd_stderr']:.3f}" if r.get("bpd") is not None else "")
    cells += [_num(paper.get("nfe")), _num(paper.get("fid"))]
    if table.kind == "images":
        cells.append(_num(paper.get("is_")))
    if bpd:
        cells.append(_num(paper.get("bpd", "–")))
    return cells + [row.source, note]


def _metric_name(results):
    """The digits metric the results were measured with (None: not a digits table, or nothing measured)."""
    return next((r["metric_name"] for r in results if r.get("metric_name")), None)


def table_header(table, results, opts, command, per_row, seconds, digits_metric, budget=None, train_times=None):
    """The lines above a table: command, scale and samples, wall time, what FID means here; the budget
    check (budget: configs.budget_report lines; train_times: {model: s}) when given; for the convergence
    table, whether each model stopped improving."""
    scale = opts["scale"]
    header = [f"Command: `{command}`" if command else "",
              f"Scale {scale}; {per_row} samples per row"
              + (f"; RK45 rtol = atol = {opts['rk45_tol']:g}" if scale == "cpu" else "; sampler tolerances "
                 "of each config") + "; NFE = network evaluations per sample (SDE/ODE rows include the "
              "final denoising step).",
              f"Evaluation wall time of this run: {seconds:.0f} s (cached rows cost nothing)."]
    metric_name = _metric_name(results) or digits_metric
    if table.kind == "digits":
        header.append(f"FID here: {metric_name} of {opts['num_samples']} samples against the 1500 training "
                      "digits (" + ("64-d features of the shipped digits classifier" if metric_name == "digits-FID"
                                    else "raw 64-d pixels: a stand-in") + "); "
                      "paper columns are the CIFAR-10 numbers of the row this one mirrors, "
                      "for orientation only.")
    if table.conditional:
        header.append("Accuracy: the share of samples judged to be of the class they were asked for (a random class "
                      "per sample, sampling.class_label = -1) by " + ("the shipped digits classifier" if
                                                                     table.kind == "digits" else "the density's "
                      "geometry (nearest Gaussian, dark square)") + "; unconditional rows have none. w: "
                      "sampling.guidance, u + w (c - u) of the null-label and class predictions (PFGM: the slopes "
                      "dx/dz; PFGM++: the denoiser; VP: the score); w != 1 evaluates both in one network call "
                      "on the doubled batch, counted once in NFE.")
    if budget is not None:
        header += ["", "Budget check:"] + [f"- {b}" for b in budget]
        if train_times:
            header.append("- training wall time: " + ", ".join(f"{m} {s:.0f} s" for m, s in train_times.items()))
    if table.name.endswith("convergence"):
        header += ["", "Stopped improving? (rule: the final checkpoint's FID is within 10% or 1.0 of the best "
                   "along the run, and the last two checkpoints agree to that margin)"]
        header += [f"- {line}" for line in convergence_verdicts(table.rows, results)]
    # a header of blank lines only (no command, ...) is left out altogether
    return [h for h in header if h != ""] and header


def write_outputs(table, rows, results, opts, header):
    """DIR/<table>_<scale>.md / .csv / .tex and the plots; returns (the Markdown, [written files])."""
    base = os.path.join(opts["workdir"], f"{table.name}_{opts['scale']}")
    bpd = bool(opts.get("bpd")) and table.kind != "toy"
    cols = _columns(table, bpd)
    metric_name = _metric_name(results)
    if metric_name and metric_name != "digits-FID":
        cols = [c.replace("FID", metric_name) if c == "FID" else c for c in cols]
    body = [_cells(table, row, r, bpd) for row, r in zip(rows, results)]
    md = [f"### {table.title}", ""] + header + (["", table.note] if table.note else []) + [""]
    md.append("| " + " | ".join(cols) + " |")
    md.append("|" + "---|" * len(cols))
    md += ["| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |" for cells in body]
    with open(base + ".md", "w") as f:
        f.write("\n".join(md) + "\n")
    with open(base + ".csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["row_id", "model"] + cols)
        for row, cells in zip(rows, body):
            w.writerow([row.name, row.model] + cells)
    tex_cols = [c for c in cols if c not in ("status / note", "paper source")]

    def tex(s):
        s = str(s)
        for a, b in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("_", r"\_"), ("#", r"\#"),
                     ("~", r"$\sim$"), ("†", r"$^\dagger$"), ("–", "--")):
            s = s.replace(a, b)
        return s
    with open(base + ".tex", "w") as f:
        f.write("% " + table.title + "\n\\begin{tabular}{" + "l" * 2 + "r" * (len(tex_cols) - 2) + "}\n\\toprule\n")
        f.write(" & ".join(tex(c) for c in tex_cols) + r" \\" + "\n\\midrule\n")
        for cells in body:
            f.write(" & ".join(tex(cells[cols.index(c)]) for c in tex_cols) + r" \\" + "\n")
        f.write("\\bottomrule\n\\end{tabular}\n")
    written = [base + ".md", base + ".csv", base + ".tex"]
    if table.name.endswith("convergence"):
        figures = [plots.plot_convergence(table, rows, results, base + "_fid_vs_step.png", metric_name)]
    else:
        figures = [plots.plot_quality_vs_nfe(table, rows, results, base + "_quality_vs_nfe.png", metric_name),
                   plots.plot_quality_vs_steps(table, rows, results, base + "_quality_vs_steps.png", metric_name),
                   plots.plot_sample_grids(table, rows, results, base + "_samples.png")]
    written += [p for p in figures if p]
    return "\n".join(md), written


def _close(a, b):
    return abs(a - b) <= max(0.1 * min(a, b), 1.0)


def convergence_verdicts(rows, results):
    """One line per model of the convergence table: its FID along training and whether it stopped improving."""
    runs = {}
    for row, r in zip(rows, results):
        q = (r.get("metrics") or {}).get("fid")
        if q is not None:
            runs.setdefault(row.model, []).append((row.step, q))
    lines = []
    for model, pts in runs.items():
        pts.sort()
        best_step, best = min(pts, key=lambda p: p[1])
        final = pts[-1][1]
        done = len(pts) >= 2 and _close(final, best) and _close(final, pts[-2][1])
        lines.append(f"{model}: " + ", ".join(f"{s}: {q:.3g}" for s, q in pts) + f"; best {best:.3g} at step "
                     f"{best_step}; " + ("stopped improving" if done else "NOT converged by this rule"))
    return lines


def write_all(out, path):
    """Every table of an 'all' run in one Markdown file."""
    with open(path, "w") as f:
        f.write("\n\n".join(md for md, _, _ in out.values()) + "\n")


def write_report(out, path, command=None):
    """One Markdown page with every table of this run and its plots (copied beside the page as
    <page name>_<plot>.png): what docs/reproduce_cpu.md is made of."""
    folder, stem = os.path.dirname(os.path.abspath(path)), os.path.splitext(os.path.basename(path))[0]
    os.makedirs(folder, exist_ok=True)
    parts = [f"# {stem.replace('_', ' ')}: generated tables", "",
             f"Generated by `{command}`; do not edit by hand (rerun it: cached rows cost nothing)." if command
             else "Generated by experiments.runner."]
    for name, (md, files, _) in out.items():
        parts += ["", md.rstrip()]
        for f in files:
            if f.endswith(".png"):
                target = f"{stem}_{os.path.basename(f)}"
                shutil.copyfile(f, os.path.join(folder, target))
                parts += ["", f"![{os.path.basename(f)[:-4]}]({target})"]
    with open(path, "w") as f:
        f.write("\n".join(parts) + "\n")
    return path
