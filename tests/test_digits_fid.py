"""The shipped digits classifier and the digits FID built on it."""
import numpy as np
import pytest
import torch

from pfgm.evaluation import digits


@pytest.fixture(scope="module")
def data():
    return digits.digits_data()


def test_classifier_is_accurate_on_held_out_digits(data):
    _, _, xev, yev = data
    _, logits = digits.digits_features(xev)
    assert (logits.argmax(1) == yev.numpy()).mean() > 0.95


def test_digits_fid_separates_real_from_fake(data):
    xtr, _, xev, _ = data
    real_vs_real = digits.digits_fid(xev, xtr[:297])
    g = torch.Generator().manual_seed(0)
    noise = torch.rand(297, 1, 8, 8, generator=g)
    blurred = torch.nn.functional.avg_pool2d(xtr[:297], 3, 1, 1)
    assert digits.digits_fid(xev, xev) == pytest.approx(0.0, abs=1e-6)
    assert real_vs_real < 0.1 * digits.digits_fid(xev, noise)
    assert real_vs_real < 0.1 * digits.digits_fid(xev, blurred)


def test_digits_is(data):
    _, _, xev, _ = data
    real, _ = digits.digits_is(xev)
    const, _ = digits.digits_is(np.full((100, 1, 8, 8), 0.5, np.float32))
    assert real > 7 and const == pytest.approx(1.0, abs=1e-3)


def test_bad_shape_is_refused():
    with pytest.raises(ValueError, match="1, 8, 8"):
        digits.digits_features(np.zeros((3, 3, 8, 8)))
