"""The layering the README states is true of the imports (function-level imports included)."""
import ast
import os

import pytest

from conftest import ROOT

PACKAGE = os.path.join(ROOT, "pfgm")


def pfgm_imports(path):
    """The pfgm modules `path` imports, as dotted names (`from pfgm import x` gives pfgm.x)."""
    found = set()
    for node in ast.walk(ast.parse(open(path).read())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("pfgm")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("pfgm"):
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names}
    return found


def module_file(name):
    return os.path.join(ROOT, *name.split(".")) + ".py"


# (module or package, what it must never import): the README's
# poisson -> sampling -> methods -> train, evaluate -> main
LAYERS = [
    ("pfgm.poisson", ["pfgm.sampling", "pfgm.methods", "pfgm.train", "pfgm.evaluate", "pfgm.main"]),
    ("pfgm.sampling", ["pfgm.methods", "pfgm.train", "pfgm.evaluate", "pfgm.main"]),
    ("pfgm.methods", ["pfgm.train", "pfgm.evaluate", "pfgm.main"]),
    ("pfgm.train", ["pfgm.evaluate", "pfgm.main"]),
    ("pfgm.evaluate", ["pfgm.train", "pfgm.main"]),
    ("pfgm.checkpoint", ["pfgm.train", "pfgm.evaluate", "pfgm.main"]),
    ("pfgm.models", ["pfgm.train", "pfgm.evaluate", "pfgm.main", "pfgm.methods"]),
]


def files_of(name):
    folder = os.path.join(ROOT, *name.split("."))
    if os.path.isdir(folder):
        return [os.path.join(folder, f) for f in sorted(os.listdir(folder)) if f.endswith(".py")]
    return [module_file(name)]


@pytest.mark.parametrize("name,forbidden", LAYERS, ids=[n for n, _ in LAYERS])
def test_a_layer_imports_only_the_layers_before_it(name, forbidden):
    for path in files_of(name):
        bad = {m for m in pfgm_imports(path) for f in forbidden if m == f or m.startswith(f + ".")}
        assert not bad, f"{os.path.relpath(path, ROOT)} imports {sorted(bad)}"


def test_nothing_in_the_package_imports_the_experiment_driver():
    for folder, _, names in os.walk(PACKAGE):
        for n in names:
            if n.endswith(".py"):
                text = open(os.path.join(folder, n)).read()
                assert "import experiments" not in text and "from experiments" not in text, n


def test_the_checker_sees_function_level_imports(tmp_path):
    """The check above would pass vacuously if imports inside functions were missed."""
    p = tmp_path / "m.py"
    p.write_text("def f():\n    from pfgm import train\n")
    assert "pfgm.train" in pfgm_imports(str(p))
