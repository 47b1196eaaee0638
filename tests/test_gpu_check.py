"""tools/gpu_check.py --device cpu: every step of the GPU check at toy sizes passes, and its bench reads
the host at most once per training.log_freq window."""
import json
import os
import subprocess
import sys

import pytest

from conftest import ROOT


@pytest.mark.e2e
def test_gpu_check_passes_on_the_cpu(tmp_path):
    out = tmp_path / "check.json"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    r = subprocess.run([sys.executable, "tools/gpu_check.py", "--device", "cpu", "--no-compile", "--out", str(out)],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    table = json.load(open(out))
    assert table["passed"] and all(row["status"] == "ok" for row in table["rows"])
    bench = [row for row in table["rows"] if row["step"] == "bench"]
    assert len(bench) == 4 and all(row["host_reads_per_window"] <= 1 for row in bench)
    assert {row["step"] for row in table["rows"]} == {"tests", "bench", "train+eval", "agreement", "rk45"}
