"""The README's Python example runs as written after the quick start (here: a shorter training of the
same config, its checkpoint put where the quick start leaves its own), and prints what it claims."""
import os
import re
import subprocess
import sys

import pytest
from conftest import ROOT, tiny_config

from pfgm import checkpoint, run_utils, train


def readme_python_blocks():
    with open(os.path.join(ROOT, "README.md")) as f:
        return re.findall(r"```python\n(.*?)```", f.read(), flags=re.S)


def test_the_readme_has_one_python_example_using_the_quick_starts_workdir():
    (block,) = readme_python_blocks()
    assert "runs/toy2d/checkpoints/checkpoint_10000.pth" in block and "configs/poisson/toy2d.py" in block


@pytest.mark.e2e
def test_the_readme_example_runs_as_written(tmp_path):
    (block,) = readme_python_blocks()
    # The quick start's workdir, from a short training of the same config and network (the quick start
    # itself trains 10000 steps in ~2 minutes); the example only needs a checkpoint of that network.
    train.train(tiny_config("poisson/toy2d", 200, batch_size=256, small_batch_size=64), str(tmp_path / "short"))
    quick = tmp_path / "runs" / "toy2d" / "checkpoints"
    quick.mkdir(parents=True)
    os.rename(checkpoint.checkpoint_path(str(tmp_path / "short"), 200), quick / "checkpoint_10000.pth")
    os.symlink(os.path.join(ROOT, "configs"), tmp_path / "configs")
    (tmp_path / "example.py").write_text(block)
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=ROOT)
    r = subprocess.run([sys.executable, "example.py"], cwd=tmp_path, env=env, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    exact = re.search(r"exact field, Heun: NFE 39, farthest sample from a charge ([0-9.]+)", r.stdout)
    assert exact and float(exact.group(1)) < 0.05, r.stdout  # the exact field carries every sample to a charge
    net = re.search(r"network, Euler 20: NFE 20, samples \(64, 2\); mean log-likelihood (-?[0-9.]+) \(NFE (\d+)\)",
                    r.stdout)
    assert net and int(net.group(2)) > 0, r.stdout


def test_a_config_file_is_loaded_from_any_folder_with_its_own_configs_package(tmp_path, monkeypatch):
    # the configs/ package of the file's own checkout is the one imported, not the current folder's
    assert run_utils.config_root(os.path.join(ROOT, "configs", "poisson", "toy2d.py")) == run_utils.Path(ROOT)
    other = tmp_path / "elsewhere"
    os.makedirs(other / "configs" / "poisson")
    (other / "configs" / "__init__.py").write_text("")
    (other / "configs" / "poisson" / "mine.py").write_text("")
    assert run_utils.config_root(other / "configs" / "poisson" / "mine.py") == other
    assert run_utils.config_root(tmp_path / "loose.py") == run_utils.REPO_ROOT
    monkeypatch.chdir(tmp_path)
    config = run_utils.load_config_file(os.path.join(ROOT, "configs", "poisson", "toy2d.py"))
    assert config.data.dataset == "checkerboard"
