"""tools/beta_clip_share.py: the share of PFGM++'s training draws that the original's clip of B moves."""
import importlib.util
import math
import os

import pytest

from conftest import ROOT


@pytest.fixture(scope="module")
def tool():
    spec = importlib.util.spec_from_file_location("beta_clip_share", os.path.join(ROOT, "tools", "beta_clip_share.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("aug_dim", [100, 512, 1024, 2048])
def test_two_dimensional_shares_in_closed_form(tool, aug_dim):
    """N = 2: B ~ Beta(1, D/2) has CDF 1 - (1 - x)^(D/2), so P(B < c) = 1 - (1 - c)^(D/2)."""
    below, above = tool.clipped_share(2, aug_dim, 1e-3)
    assert below == pytest.approx(1 - (1 - 1e-3) ** (aug_dim / 2), rel=1e-12) and above < 1e-12
    drawn_below, _ = tool.drawn_share(2, aug_dim, 1e-3, 200_000)
    assert drawn_below == pytest.approx(below, abs=5 * math.sqrt(below * (1 - below) / 200_000))


def test_half_point_in_closed_form(tool):
    assert tool.half_point(2, 1e-3) == pytest.approx(2 * math.log(2) / -math.log1p(-1e-3), rel=1e-9)  # 1385.6
