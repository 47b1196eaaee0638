"""Sample-quality numbers of low-dimensional samples: far samples are counted and left out of a second,
labelled pair of numbers."""
import numpy as np
import torch

from pfgm.evaluation import sample_metrics


def test_far_is_beyond_twice_the_datas_radius_around_its_mean():
    ref = np.array([[-1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, -1.0]]) + 5.0  # mean (5, 5), radius 1
    center, radius = sample_metrics.data_radius(ref)
    assert torch.allclose(center, torch.tensor([5.0, 5.0], dtype=torch.float64)) and radius == 1.0
    x = np.array([[5.0, 5.0], [6.9, 5.0], [5.0, 7.1], [2.0, 2.0]])
    assert sample_metrics.far_from_data(x, ref).tolist() == [False, False, True, True]


def test_two_stranded_samples_are_counted_and_left_out_of_the_labelled_numbers():
    g = np.random.default_rng(0)
    ref, clean = g.uniform(-1, 1, (500, 2)), g.uniform(-1, 1, (500, 2))
    stranded = clean.copy()
    stranded[[7, 300]] = [[248.0, 3.0], [-10.0, 200.0]]  # the prior's far draws, left behind by a few steps
    out = sample_metrics.points_quality(stranded, ref, generator=torch.Generator().manual_seed(0))
    assert out["far_samples"] == 2
    near = np.delete(clean, [7, 300], axis=0)
    same = sample_metrics.points_quality(near, ref[:498], generator=torch.Generator().manual_seed(0))
    assert same["far_samples"] == 0 and "mmd_without_far" not in same
    assert out["sliced_wasserstein_without_far"] == same["sliced_wasserstein"]  # same projections, same points
    assert out["mmd_without_far"] == same["mmd"]
    assert out["sliced_wasserstein"] > 10 * out["sliced_wasserstein_without_far"]
    plain = sample_metrics.sliced_wasserstein(stranded, ref, generator=torch.Generator().manual_seed(0))
    assert out["sliced_wasserstein"] == plain  # the headline number is unchanged
