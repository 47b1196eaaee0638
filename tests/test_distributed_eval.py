"""Evaluation under torchrun (pfgm.distributed): the samples sharded by image seed and the held-out
likelihood by batch over the processes, gathered on rank 0, one report, and no more network work in all
than one process does alone."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import ROOT, override_flags, tiny_config
from pfgm import distributed, train

pytestmark = pytest.mark.e2e

# Runs pfgm.main with every network forward counted (rows of the batches it saw), per process.
COUNTING_MAIN = r"""
import os, sys
sys.path.insert(0, os.environ["PFGM_ROOT"])
from pfgm import checkpoint
rows = [0]
load = checkpoint.load_ema_model
def counted(*args, **kwargs):
    model = load(*args, **kwargs)
    model.register_forward_hook(lambda m, inputs, out: rows.__setitem__(0, rows[0] + len(inputs[0])))
    return model
checkpoint.load_ema_model = counted
from pfgm import main
sys.argv = ["pfgm"] + sys.argv[1:]
try:
    main.run()
finally:
    with open(os.path.join(os.environ["COUNT_DIR"], f"rows_{os.environ.get('RANK', '0')}"), "w") as f:
        f.write(str(rows[0]))
"""


def test_shard_ranges_cover_every_item_once():
    for n in (0, 1, 7, 512):
        for world in (1, 2, 3, 8):
            spans = [distributed.shard_range(n, r, world) for r in range(world)]
            assert spans[0][0] == 0 and spans[-1][1] == n
            assert all(a[1] == b[0] for a, b in zip(spans, spans[1:]))
            assert max(hi - lo for lo, hi in spans) - min(hi - lo for lo, hi in spans) <= 1


def _eval(tmp_path, work, name, nproc, flags):
    counts = tmp_path / f"counts_{name}"
    counts.mkdir()
    script = tmp_path / "counting_main.py"
    script.write_text(COUNTING_MAIN)
    env = dict(os.environ, OMP_NUM_THREADS="1", PFGM_ROOT=ROOT, COUNT_DIR=str(counts))
    launcher = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}", "--master_port=29547"] \
        if nproc > 1 else [sys.executable]
    r = subprocess.run(launcher + [str(script), "--config", "configs/poisson/toy2d.py", "--workdir", str(work),
                                   "--mode", "eval", "--eval_folder", name, *flags],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    return sum(int(p.read_text()) for p in counts.iterdir()), len(list(counts.iterdir()))


def test_two_processes_draw_the_single_process_samples_with_no_more_network_work(tmp_path):
    c = tiny_config(n_iters=2, model=dict(nf=32, num_layers=2))
    c.eval.update(num_samples=512, batch_size=128, enable_loss=False, first_seed=0, enable_bpd=True,
                  bpd_num_samples=64, bpd_batch_size=16, bpd_num_repeats=2, bpd_solver="euler", bpd_steps=4)
    c.sampling.update(ode_solver="euler", N=10)
    work = tmp_path / "run"
    train.Trainer(c, str(work)).run()
    flags = override_flags(c, "poisson/toy2d")
    rows_two, ranks = _eval(tmp_path, work, "two", 2, [f for f in flags if "first_seed" not in f])
    assert ranks == 2
    rows_one, _ = _eval(tmp_path, work, "one", 1, flags)

    two = np.load(work / "two" / "ckpt_2" / "samples.npz")["samples"]
    one = np.load(work / "one" / "ckpt_2" / "samples.npz")["samples"]
    assert two.shape == (512, 2) and len(np.unique(two, axis=0)) == 512
    np.testing.assert_allclose(two, one, rtol=1e-5, atol=1e-6)  # the same seeds, the same images
    assert sorted(p for p in os.listdir(work / "two") if p.startswith("report")) == ["report_2.json"]
    assert json.load(open(work / "two" / "report_2.json"))["num_samples"] == 512
    nll_two = np.load(work / "two" / "ckpt_2" / "likelihood_held_out.npz")["nll"]
    nll_one = np.load(work / "one" / "ckpt_2" / "likelihood_held_out.npz")["nll"]
    assert nll_two.shape == (2, 64) and np.isfinite(nll_two).all()
    np.testing.assert_allclose(nll_two, nll_one, rtol=1e-6)  # the held-out NLL shared out, the same numbers
    assert rows_two <= rows_one, (rows_two, rows_one)
    assert rows_one >= 512 * 10  # the counter saw the sampling: 512 samples x 10 Euler steps
