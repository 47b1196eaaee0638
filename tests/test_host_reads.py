"""A training step reads nothing back to the host in its steady state (pfgm.step_guard, pfgm.host_reads):
the loss and the skipped-update counters are read once per training.log_freq window, the FIR filters
are buffers, and a non-finite step is skipped on the device by every rank alike."""
import os
import subprocess
import sys

import pytest
import torch

from conftest import ROOT, tiny_config
from pfgm import train
from pfgm.host_reads import HostReads

pytestmark = pytest.mark.e2e  # every test here builds a Trainer and trains a few steps

LOG_FREQ = 5
SMALL_UNET = dict(nf=16, num_res_blocks=1)


@pytest.mark.parametrize("name,batch,small,model,extra", [
    ("poisson/toy2d", 32, 8, None, {}), ("vp/toy2d", 32, 32, None, {}), ("pfgmpp/toy2d", 32, 32, None, {}),
    ("ve/digits_ncsnpp", 8, 8, SMALL_UNET, {}),            # NCSN++: FIR up/down-sampling
    ("poisson/digits_ddpmpp", 16, 8, SMALL_UNET, {}),
    # the class targets in one pass: PFGM's class field, PFGM++'s class posterior mean (stf)
    ("poisson/toy2d_cond", 32, 8, None, {}), ("pfgmpp/toy2d_cond", 32, 8, None, dict(stf=True))])
def test_at_most_one_host_read_per_log_window(tmp_path, name, batch, small, model, extra):
    c = tiny_config(name, 20, batch_size=batch, small_batch_size=small, model=model, log_freq=LOG_FREQ, **extra)
    t = train.Trainer(c, str(tmp_path / "w"))
    t.train_step(t.global_batch(0))  # the first step builds the optimizer's state
    with HostReads() as reads:
        for _ in range(LOG_FREQ):
            loss, _ = t.train_step(t.global_batch(t.step))
        value = t._read_window(t.step, loss)
    assert reads.total <= 1, reads.by_kind
    assert reads.uploads == 0
    assert value == value and isinstance(value, float)


def test_fir_filters_are_buffers_outside_the_state_dict(tmp_path):
    c = tiny_config("ve/digits_ncsnpp", 2, batch_size=8, small_batch_size=8, model=SMALL_UNET)
    t = train.Trainer(c, str(tmp_path / "w"))
    filters = [n for n, _ in t.model.named_buffers() if n.endswith("fir_filter")]
    assert filters and not any(n in t.model.state_dict() for n in filters)


def test_skipped_step_leaves_weights_adam_and_ema_unchanged(tmp_path):
    t = train.Trainer(tiny_config(n_iters=5), str(tmp_path / "run"))
    t.train_step(t.global_batch(0))
    snap = lambda: ([p.detach().clone() for p in t.model.parameters()],
                    [v.clone() for s in t.optimizer.state.values() for v in s.values()],
                    [s.clone() for s in t.ema.shadow_params])
    before = snap()
    real = t.method.loss
    t.method.loss = lambda *a, **k: real(*a, **k) * float("nan")
    loss, _ = t.train_step(t.global_batch(1))
    assert torch.isnan(loss) and t.nonfinite_in_row == 1 and t.nonfinite_total == 1
    for a, b in zip(before, snap()):
        assert all(torch.equal(x, y) for x, y in zip(a, b))
    t.method.loss = real
    loss, _ = t.train_step(t.global_batch(2))
    assert torch.isfinite(loss) and t.nonfinite_in_row == 0 and t.nonfinite_total == 1


DDP_SKIP = r"""
import sys, torch, torch.distributed as dist
sys.path.insert(0, "tests")
from conftest import tiny_config
from pfgm import run_utils, train
t = train.Trainer(tiny_config(n_iters=4), sys.argv[1])
real = t.method.loss
def loss(*a, **k):  # rank 1 alone meets a NaN at step 2
    value = real(*a, **k)
    return value * float("nan") if (t.rank == 1 and t.step == 2) else value
t.method.loss = loss
for k in range(4):
    t.train_step(t.global_batch(k))
flat = torch.cat([p.detach().flatten() for p in t.model.parameters()])
every = [torch.empty_like(flat) for _ in range(2)]
dist.all_gather(every, flat)
assert torch.equal(every[0], every[1]), "the replicas diverged"
assert t.nonfinite_total == 1, t.nonfinite_total
# one file per rank: two ranks printing to one pipe interleave their characters
open(f"{sys.argv[1]}.rank{t.rank}", "w").write(f"skipped {t.nonfinite_total} in sync")
del t   # its DDP wrapper holds the process group: freed here, not at interpreter exit (run_utils.finish_distributed)
run_utils.finish_distributed()
"""


def test_a_nonfinite_step_on_one_rank_is_skipped_by_all(tmp_path):
    script = tmp_path / "skip.py"
    script.write_text(DDP_SKIP)
    env = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS="1")
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
                        "--master_port=29541", str(script), str(tmp_path / "w")],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    reports = [(tmp_path / f"w.rank{rank}").read_text() for rank in range(2)]
    assert reports == ["skipped 1 in sync"] * 2, reports
