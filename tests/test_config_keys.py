"""No config key is silently ignored: every key of every shipped config is one the code reads, and a
key nothing reads is refused by name."""
import ast
import glob
import os
import subprocess
import sys

import pytest

from pfgm import config_checks
from pfgm.run_utils import load_config_file

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = sorted(p for p in glob.glob(os.path.join(ROOT, "configs", "*", "*.py")) if not p.endswith("__init__.py"))


def _names_read_by_the_code():
    """Attribute names and string constants of pfgm/ (config_checks.py, which lists the keys, left out)."""
    names = set()
    for path in glob.glob(os.path.join(ROOT, "pfgm", "**", "*.py"), recursive=True):
        if os.path.basename(path) == "config_checks.py":
            continue
        for node in ast.walk(ast.parse(open(path).read())):
            if isinstance(node, ast.Attribute):
                names.add(node.attr)
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                names.add(node.value)
    return names


def test_configs_are_found():
    assert len(CONFIGS) >= 15


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: os.path.relpath(p, ROOT))
def test_every_key_of_a_shipped_config_is_read(path):
    config_checks.check_known_keys(load_config_file(path))


@pytest.mark.parametrize("section,name", sorted((s, n) for s, names in config_checks.KNOWN_KEYS.items()
                                                for n in names))
def test_every_known_key_is_read_somewhere(section, name):
    assert name in READ, f"{section}.{name} is in KNOWN_KEYS but nothing in pfgm/ reads {name!r}"


READ = _names_read_by_the_code()


@pytest.mark.parametrize("key", ["eval.enable_interpolation", "sampling.snr_typo", "data.category", "model.foo"])
def test_a_key_nothing_reads_is_an_error_naming_it(key):
    c = load_config_file(os.path.join(ROOT, "configs", "poisson", "toy2d.py"))
    section, name = key.split(".")
    with c[section].unlocked():
        c[section][name] = 1
    with pytest.raises(config_checks.ConfigError, match=key.replace(".", r"\.")):
        config_checks.validate(c)


def test_an_unknown_section_is_an_error():
    c = load_config_file(os.path.join(ROOT, "configs", "poisson", "toy2d.py"))
    with c.unlocked():
        c.extra = {"x": 1}
    with pytest.raises(config_checks.ConfigError, match="extra"):
        config_checks.validate(c)


@pytest.mark.e2e
def test_cli_refuses_a_config_file_with_an_unread_key(tmp_path):
    cfg = tmp_path / "cfg.py"
    cfg.write_text("from configs.poisson.toy2d import get_config as base\n\n"
                   "def get_config():\n    c = base()\n    c.eval.enable_interpolation_typo = True\n    return c\n")
    r = subprocess.run([sys.executable, "-m", "pfgm.main", "--config", str(cfg), "--workdir", str(tmp_path / "w"),
                        "--mode", "train"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "eval.enable_interpolation_typo" in r.stderr, r.stderr
    assert not (tmp_path / "w" / "checkpoints").exists()
