"""tools/reproduce.py / experiments end to end on tiny settings (toy data, digits with a stand-in metric)."""
import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:  # experiments/ is not installed: it lives beside pfgm in the checkout
    sys.path.insert(0, ROOT)

from experiments import configs, metrics, report, runner, tables  # noqa: E402


def _csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.e2e  # runs the experiment driver
def test_gpu_table_without_checkpoints_lists_training_commands(tmp_path):
    out = runner.run_table("cifar10", str(tmp_path), scale="gpu", log=lambda m: None)
    md, files, results = out["cifar10"]
    rows = tables.tables("gpu")["cifar10"].rows
    assert len(results) == len(rows) and all(r["status"] == "missing checkpoint" for r in results)
    for row in rows:
        line = next(l for l in md.splitlines() if l.startswith(f"| {row.label} |"))
        assert (f"python -m pfgm.main --config {row.config} --workdir "
                f"{os.path.join(str(tmp_path), row.model)} --mode train") in line
        assert str(row.paper["fid"]) in line
    table = _csv(tmp_path / "cifar10_gpu.csv")
    assert [r["row_id"] for r in table] == [r.name for r in rows]
    assert {r["paper FID"] for r in table} >= {"2.48", "2.35", "3.93"}
    assert (tmp_path / "cifar10_gpu.tex").read_text().count(r"\\") >= len(rows) + 1


@pytest.mark.e2e  # runs the experiment driver
def test_weak_gpu_table_has_training_overrides(tmp_path):
    md, _, _ = runner.run_table("weak", str(tmp_path), scale="gpu", log=lambda m: None)["weak"]
    assert "--config.model.resblock_type=ddpm" in md and "not transcribed" in md


@pytest.mark.e2e  # runs the experiment driver
def test_cli_gpu_table_and_bad_table(tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    p = subprocess.run([sys.executable, "tools/reproduce.py", "celeba64", "--workdir", str(tmp_path)],
                       cwd=ROOT, capture_output=True, text=True, env=env, timeout=120)
    assert p.returncode == 0, p.stderr
    assert "3.68" in p.stdout and "configs/poisson/celeba64_ddpmpp.py" in p.stdout
    assert (tmp_path / "celeba64_gpu.md").exists()
    p = subprocess.run([sys.executable, "tools/reproduce.py", "bedroom", "--scale", "cpu", "--workdir",
                        str(tmp_path)], cwd=ROOT, capture_output=True, text=True, env=env, timeout=120)
    assert p.returncode == 2 and "gpu-scale table only" in p.stderr


@pytest.mark.e2e  # runs the experiment driver
def test_toy_table_trains_evaluates_and_resumes(tmp_path, monkeypatch):
    logs = []
    kw = dict(scale="cpu", toy_n_iters=20, num_samples=64, rk45_tol=1e-2, log=logs.append,
              report=str(tmp_path / "docs" / "study.md"))
    md, files, results = runner.run_table("toy", str(tmp_path), **kw)["toy"]
    page = (tmp_path / "docs" / "study.md").read_text()
    assert md.strip() in page and "![toy_cpu_samples](study_toy_cpu_samples.png)" in page
    assert (tmp_path / "docs" / "study_toy_cpu_quality_vs_steps.png").exists()
    rows = tables.tables("cpu")["toy"].rows
    assert len(results) == len(rows) == 31  # 3 methods x (RK45, Euler, Heun x 4) + PC x 4
    assert all(r["status"] == "computed" for r in results), [r.get("note") for r in results]
    table = _csv(tmp_path / "toy_cpu.csv")
    assert [r["row_id"] for r in table] == [r.name for r in rows]
    assert all(float(r["sliced W"]) >= 0 for r in table)
    nfe = {(r["model"], r["sampler"]): r["NFE"] for r in table}
    assert nfe["toy_pfgm", "Euler N=20"] == "20" and nfe["toy_pfgm", "Heun N=20"] == "39"
    assert nfe["toy_vp", "Euler N=20"] == "21" and nfe["toy_vp", "Heun N=20"] == "41"  # + the denoising step
    assert nfe["toy_ve", "PC reverse_diffusion/langevin, N=100"] == "200"
    for plot in ("quality_vs_nfe", "quality_vs_steps", "samples"):
        assert os.path.exists(tmp_path / f"toy_cpu_{plot}.png")
    for m in ("toy_pfgm", "toy_ve", "toy_vp"):
        assert os.path.exists(tmp_path / m / "checkpoints" / "checkpoint_20.pth")
    # second run: nothing trained or sampled again, same numbers
    logs.clear()
    md2, _, results2 = runner.run_table("toy", str(tmp_path), **kw)["toy"]
    assert all(r["status"] == "cached" for r in results2)
    assert not any("training" in m for m in logs)
    assert [r["metrics"] for r in results2] == [r["metrics"] for r in results]
    # a damaged cache file is named and its row recomputed; it no longer aborts the run (issue 18)
    cache = sorted((tmp_path / "toy_pfgm" / "reproduce").glob("*.json"))
    cache[0].write_text("{not json")
    entry = json.loads(cache[1].read_text())
    entry.pop("metrics")
    cache[1].write_text(json.dumps(entry))
    cache[1].with_suffix(".npz").write_bytes(b"PK garbage")
    logs.clear()
    _, _, results3 = runner.run_table("toy", str(tmp_path), **kw)["toy"]
    assert sum(r["status"] == "computed" for r in results3) == 2, [r["status"] for r in results3]
    assert any(str(cache[0]) in m and "unreadable" in m for m in logs)
    assert any(str(cache[1].with_suffix(".npz")) in m and "unreadable" in m for m in logs)
    # a config default no row sets (PFGM's z_min) changed: PFGM's rows are sampled anew, the others cached
    real = configs.load_config

    def changed(path):
        c = real(path)
        if "poisson" in path:
            c.sampling.z_min = 2e-2
        return c
    monkeypatch.setattr(configs, "load_config", changed)
    _, _, results4 = runner.run_table("toy", str(tmp_path), **kw)["toy"]
    assert {r["status"] for r in results4 if r["model"] == "toy_pfgm"} == {"computed"}
    assert {r["status"] for r in results4 if r["model"] != "toy_pfgm"} == {"cached"}


@pytest.mark.e2e  # runs the experiment driver
def test_one_models_toy_rows_from_an_existing_run_train_nothing(tmp_path):
    from conftest import tiny_config
    from pfgm import train
    train.train(tiny_config("poisson/toy2d", 20), str(tmp_path / "quick"))  # as the quick start's runs/toy2d
    logs = []
    kw = dict(scale="cpu", toy_n_iters=20, num_samples=64, rk45_tol=1e-2, log=logs.append, models=["toy_pfgm"],
              model_dirs={"toy_pfgm": str(tmp_path / "quick")})
    md, _, results = runner.run_table("toy", str(tmp_path / "rows"), **kw)["toy"]
    assert len(results) == 9 and all(r["status"] == "computed" and r["model"] == "toy_pfgm" for r in results)
    assert all(r["checkpoint"] == os.path.join(str(tmp_path / "quick"), "checkpoints", "checkpoint_20.pth")
               for r in results)
    assert not any("training" in m for m in logs) and sorted(os.listdir(tmp_path / "rows")) == [
        "toy_cpu.csv", "toy_cpu.md", "toy_cpu.tex", "toy_cpu_quality_vs_nfe.png", "toy_cpu_quality_vs_steps.png",
        "toy_cpu_samples.png"]
    with pytest.raises(ValueError, match="unknown model.*toy_nope"):
        runner.run_table("toy", str(tmp_path / "rows"), **dict(kw, models=["toy_nope"]))


@pytest.mark.e2e  # runs the experiment driver
def test_digits_table_with_stand_in_metric(tmp_path):
    calls = []

    def stand_in(samples, reference):
        calls.append(samples.shape)
        assert samples.shape[1:] == (1, 8, 8) and reference.shape[1:] == (1, 8, 8)
        return metrics.pixel_fd(samples, reference)

    kw = dict(scale="cpu", n_iters=2, num_samples=16, rk45_tol=1e-1, log=lambda m: None,
              digits_metric=("stand-in FD", stand_in))
    md, files, results = runner.run_table("cifar10", str(tmp_path), **kw)["cifar10"]
    assert len(results) == 3 and all(r["status"] == "computed" for r in results), results
    assert len(calls) == 3
    table = _csv(tmp_path / "cifar10_cpu.csv")
    assert [r["row_id"] for r in table] == ["pfgm_rk45", "vp_rk45", "ve_rk45"]
    assert "paper FID" in table[0] and table[0]["paper FID"] == "2.48"
    assert "training.n_iters: same, 2" in md and "model.nf: same, 32" in md
    # the cached samples are reused; metrics of another feature metric are recomputed, not reused
    kw["digits_metric"] = ("other FD", stand_in)
    _, _, results2 = runner.run_table("cifar10", str(tmp_path), **kw)["cifar10"]
    assert all(r["status"] == "metrics added to cached samples" for r in results2)
    kw["digits_metric"] = ("other FD", stand_in)
    _, _, results3 = runner.run_table("cifar10", str(tmp_path), **kw)["cifar10"]
    assert all(r["status"] == "cached" for r in results3)


def test_sample_panel_titles_wrap_to_the_panel_and_keep_every_word():
    from experiments import plots
    label = "PFGM++ D = 128, class-conditional, guided from z = 2, label dropout 0.1"
    table = tables.Table("t", "t", "toy")
    title = plots._panel_title(table, tables.Row("r", label, "m", "c"),
                               {"sampler": "RK45, max 1000 NFE, w = 3", "nfe": 1000, "metrics": {"mmd": 0.00123}})
    assert len(title.splitlines()) > 2 and max(map(len, title.splitlines())) <= 45
    assert title.split() == (label + " RK45, max 1000 NFE, w = 3, NFE 1000, MMD 0.00123").split()


def test_unknown_table(tmp_path):
    with pytest.raises(ValueError, match="unknown table"):
        runner.run_table("nope", str(tmp_path), scale="cpu")


@pytest.mark.e2e  # runs the experiment driver
def test_digits_table_with_bits_per_dim(tmp_path):
    logs = []
    kw = dict(scale="cpu", n_iters=2, num_samples=8, rk45_tol=1e-1, log=logs.append, bpd=True, bpd_num_samples=6,
              bpd_tol=1e-2, digits_metric=("stand-in FD", metrics.pixel_fd))
    md, _, results = runner.run_table("cifar10", str(tmp_path), **kw)["cifar10"]
    assert all(r["status"] == "computed" and 0 < r["bpd"] < 16 for r in results), results
    assert len({r["bpd"] for r in results}) == 3  # three different models
    table = _csv(tmp_path / "cifar10_cpu.csv")
    assert "bpd" in table[0] and "paper bpd" in table[0]
    assert table[0]["bpd"].startswith(f"{results[0]['bpd']:.3f} ± ")
    assert sum("bits/dim of 6 test images" in m for m in logs) == 3
    # cached per model: a second run computes nothing, and gives the same numbers
    logs.clear()
    _, _, again = runner.run_table("cifar10", str(tmp_path), **kw)["cifar10"]
    assert not any("bits/dim of" in m for m in logs)
    assert [r["bpd"] for r in again] == [r["bpd"] for r in results]


@pytest.mark.e2e  # runs the experiment driver
def test_gpu_table_paper_bpd_column(tmp_path):
    runner.run_table("cifar10", str(tmp_path), scale="gpu", bpd=True, log=lambda m: None)
    table = {r["row_id"]: r for r in _csv(tmp_path / "cifar10_gpu.csv")}
    assert table["vp_ddpmpp_ode"]["paper bpd"] == "3.16" and table["subvp_ddpmpp_sde"]["paper bpd"] == "3.02"
    assert table["pfgm_ddpmpp"]["paper bpd"] == tables.NOT_TRANSCRIBED
    assert table["pfgm_ddpmpp"]["bpd"] == ""  # no checkpoint, no number


def test_convergence_verdicts():
    rows = [tables.Row(f"m_step{k}", "", model, "", step=k) for model in ("a", "b") for k in (1000, 2000, 3000)]
    fids = {"a": [30.0, 12.0, 12.5], "b": [30.0, 20.0, 14.0]}
    results = [dict(metrics=dict(fid=fids[r.model][i % 3])) for i, r in enumerate(rows)]
    a, b = report.convergence_verdicts(rows, results)
    assert a.startswith("a: 1000: 30, 2000: 12, 3000: 12.5; best 12 at step 2000") and a.endswith("stopped improving")
    assert b.endswith("NOT converged by this rule")


@pytest.mark.e2e  # runs the experiment driver
def test_seed_sets_report_the_minimum_over_sets(tmp_path, monkeypatch):
    """A row with seed_sets samples each set from its per-image seeds and reports the smallest value (the
    PFGM++ README's protocol); each set is cached apart, and set 0 is the images of seeds 0..n-1."""
    values = iter([3.0, 1.5, 2.0])
    seen = []

    def stand_in(samples, reference):
        seen.append(samples)
        return next(values)

    row = tables.Row("pp", "PFGM++ digits", "digits_pp", "configs/pfgmpp/digits_ddpmpp.py",
                     sampler=dict(method="ode", ode_solver="heun", N=3), paper=None, seed_sets=(0, 7, 100))
    fake = {"pp_sets": tables.Table("pp_sets", "seed sets", "digits", rows=[row])}
    monkeypatch.setattr(tables, "tables", lambda *a, **kw: fake)
    kw = dict(scale="cpu", n_iters=2, num_samples=6, log=lambda m: None, digits_metric=("stand-in", stand_in))
    _, _, (result,) = runner.run_table("pp_sets", str(tmp_path), **kw)["pp_sets"]
    assert result["metrics"]["fid"] == 1.5 and "minimum FID over 3 seed sets" in result["note"]
    assert "3 (seeds 0-5)" in result["note"] and "1.5 (seeds 7-12)" in result["note"]
    cached = sorted(f for f in os.listdir(tmp_path / "digits_pp" / "reproduce") if f.endswith(".json"))
    assert len(cached) == 3 and all("_seeds" in f for f in cached)
    # seeds 7..12 overlap nothing of 0..5; seeds 0..5 again give the first set's images
    from pfgm import checkpoint, methods
    from experiments import configs
    config = configs.build_config(row, dict(runner.DEFAULTS, **kw, workdir=str(tmp_path)))
    model = checkpoint.load_ema_model(config, result["checkpoint"], "cpu")
    again, _ = methods.get_method(config).sample_in_batches(model, 6, (1, 8, 8), 4, seeds=range(6), N=3,
                                                            convert=lambda x: ((x + 1) / 2).float().numpy())
    np.testing.assert_allclose(np.clip(again, 0, 1), seen[0], rtol=1e-5, atol=1e-6)
    assert not np.allclose(seen[0], seen[1])


@pytest.mark.e2e  # runs the experiment driver
def test_conditional_table_accuracy_and_guidance_rows(tmp_path):
    """The class-conditional study: one cached result per guidance w (the classes asked and the samples kept),
    an accuracy column for the conditional models, none for the unconditional ones."""
    kw = dict(scale="cpu", n_iters=2, num_samples=16, rk45_tol=1e-1, log=lambda m: None,
              digits_metric=("stand-in FD", metrics.pixel_fd))
    md, files, results = runner.run_table("conditional", str(tmp_path), **kw)["conditional"]
    rows = tables.tables("cpu")["conditional"].rows
    assert all(r["status"] == "computed" for r in results), [r.get("note") for r in results]
    table = _csv(tmp_path / "conditional_cpu.csv")
    assert [r["row_id"] for r in table] == [r.name for r in rows]
    for r in table:
        if r["row_id"].endswith("_uncond"):
            assert r["accuracy"] == ""
        else:
            assert 0 <= float(r["accuracy"]) <= 1 and f"w = {r['row_id'].rsplit('_w', 1)[1]}" in r["sampler"]
    cached = os.listdir(tmp_path / "digits_pfgm_cond" / "reproduce")
    assert sorted(f for f in cached if f.endswith(".npz")) == sorted(
        [f"{s}_c-1_w{w}_n16_step2.npz" for w in ("1", "1.5", "2", "3") for s in ("rk45_tol0.1", "heun_N20")]
        + [f"rk45_tol0.1_c-1_w{w}_from2_n16_step2.npz" for w in ("1.5", "2", "3")])
    with np.load(tmp_path / "digits_vp_cond" / "reproduce" / "rk45_tol0.1_c-1_w2_n16_step2.npz") as f:
        assert f["labels"].shape == (16,) and f["samples"].shape == (16, 1, 8, 8)
    assert "Accuracy: the share of samples" in md
    _, _, again = runner.run_table("conditional", str(tmp_path), **kw)["conditional"]
    assert all(r["status"] == "cached" for r in again)
