"""Each paper's FID protocol: how samples become uint8 (eval.uint8: score_sde / PFGM truncate, EDM / PFGM++
round), which family's configs use which, and EDM's reference statistics read as they are."""
import glob
import os

import numpy as np
import pytest

from conftest import ROOT
from pfgm.evaluation import sources
from pfgm.images import to_rgb_uint8, to_uint8
from pfgm.run_utils import load_config_file

LEVELS = (0, 1, 63, 127, 128, 200, 254)
FRACTIONS = (0.4999, 0.5, 0.5001)


def _inputs(dtype):
    x = np.array([[(k + f) / 255 for f in FRACTIONS] for k in LEVELS], dtype=dtype)
    product = x * dtype(255)
    # the inputs sit where they should: below, exactly on and above each half level
    assert (product[:, 0] < np.array(LEVELS) + 0.5).all() and (product[:, 1] == np.array(LEVELS) + 0.5).all()
    assert (product[:, 2] > np.array(LEVELS) + 0.5).all()
    return x


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_each_conversion_at_the_half_levels(dtype):
    x, k = _inputs(dtype), np.array(LEVELS)[:, None]
    np.testing.assert_array_equal(to_uint8(x, "truncate"), np.repeat(k, 3, 1))              # k, k, k
    np.testing.assert_array_equal(to_uint8(x, "round"), k + np.array([0, 1, 1]))            # k, k+1, k+1
    half_even = np.where(k % 2 == 0, k, k + 1)
    np.testing.assert_array_equal(to_uint8(x, "nearest"), np.hstack([k, half_even, k + 1]))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_original_codes_formulas(dtype):
    """score_sde / PFGM: np.clip(x * 255, 0, 255).astype(np.uint8); EDM / PFGM++: (x' * 127.5 + 128)
    .clip(0, 255) to uint8 on x' = 2x - 1 in [-1, 1]; values outside [0, 1] included."""
    x = np.concatenate([_inputs(dtype).ravel(), np.array([-0.3, -1e-9, 0.0, 1.0, 1 + 1e-7, 1.7], dtype)])
    np.testing.assert_array_equal(to_uint8(x, "truncate"), np.clip(x * 255.0, 0, 255).astype(np.uint8))
    if dtype == np.float64:  # float32 samples hit a half level only within float32 rounding of it; EDM's
        # product on [-1, 1] values and ours on [0, 1] round differently exactly there
        edm = np.clip((2 * x - 1) * 127.5 + 128, 0, 255).astype(np.uint8)
        np.testing.assert_array_equal(to_uint8(x, "round"), edm)
    with pytest.raises(ValueError, match="unknown uint8 conversion"):
        to_uint8(x, "ceil")


def test_rgb_batches_and_sample_files_follow_the_mode(tmp_path):
    x = np.full((2, 1, 2, 2), 127.5 / 255)      # grey NCHW floats on a half level
    assert (to_rgb_uint8(x, mode="truncate") == 127).all() and (to_rgb_uint8(x, mode="round") == 128).all()
    np.savez(tmp_path / "s.npz", samples=x.astype(np.float32))
    assert (sources.load_samples(tmp_path / "s.npz", uint8="truncate") == 127).all()
    assert (sources.load_samples(tmp_path / "s.npz", uint8="round") == 128).all()


def test_each_family_uses_its_papers_protocol():
    family = {"poisson": "truncate", "vesde": "truncate", "vpsde": "truncate", "subvpsde": "truncate",
              "pfgmpp": "round"}
    paths = sorted(p for p in glob.glob(os.path.join(ROOT, "configs", "*", "*.py")) if "__init__" not in p)
    assert paths
    for path in paths:
        config = load_config_file(path)
        assert config.eval.uint8 == family[config.training.sde], path


def test_edms_reference_statistics_are_read_as_they_are(tmp_path):
    """EDM's fid-refs/*.npz: np.savez(mu=float64 (2048,), sigma=float64 (2048, 2048))."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((16, 16))
    mu, sigma = rng.standard_normal(16), a @ a.T / 16
    np.savez(tmp_path / "cifar10-32x32.npz", mu=mu, sigma=sigma)
    assert sources.source_kind(tmp_path / "cifar10-32x32.npz") == "stats"
    got_mu, got_sigma = sources.load_statistics(tmp_path / "cifar10-32x32.npz")
    assert np.array_equal(got_mu, mu) and np.array_equal(got_sigma, sigma)
