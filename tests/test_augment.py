"""EDM's augmentation pipe (pfgm/datasets/augment.py): identity at p = 0, each transform fired with its
probability, labels that describe the transform, and the original's output under the same torch seed
(tests/data/augment-reference.npz, recorded by running NVlabs/edm training/augment.py outside the
repository with train.py --augment's settings on `reference_images()`)."""
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from pfgm.datasets import augment as A

DATA = Path(__file__).resolve().parent / "data"
REF_P, REF_SEED = 0.5, 11


def reference_images():
    g = torch.Generator().manual_seed(3)
    return torch.rand(16, 3, 8, 8, generator=g) * 2 - 1


def test_p_zero_is_the_identity():
    x = reference_images()
    y, labels = A.augment(x, 0.0)
    assert torch.equal(y, x) and labels.shape == (16, A.NUM_LABELS) and not labels.any()


def test_each_transform_fires_with_its_probability():
    """Fractions of non-zero labels over 20000 draws at p = 0.3: x-flips are always drawn (half flip), y-flips
    fire with p (half flip), the geometric transforms with p each (the anisotropy's axis is tilted in half of
    them: its second label is 0 otherwise); within 4.5 binomial standard deviations."""
    n, p = 20000, 0.3
    labels = A.labels_of(A.draw(n, p, (8, 8), "cpu", torch.Generator().manual_seed(0)), n)
    expected = [0.5, p / 2, p, p, p, p, p / 2, p, p]
    for col, q in enumerate(expected):
        frac = float((labels[:, col] != 0).float().mean())
        assert abs(frac - q) < 4.5 * math.sqrt(q * (1 - q) / n), (col, frac, q)
    # the rotation pair fires together, as do the anisotropy pair and the translation pair
    assert torch.equal(labels[:, 7] != 0, labels[:, 8] != 0)
    for a, b in ((4, 3), (5, 6)):   # cos(theta) - 1 rounds to 0 for tiny angles; sin(phi) = 0 for an upright axis
        assert not (labels[:, b] != 0).logical_and(labels[:, a] == 0).any()
    # the anisotropy axis is folded to |phi| <= pi/2: the label pair determines the stretch
    assert (labels[:, 5] >= 0).float().mean() > 0.5 + p / 4


def test_the_labels_reproduce_the_transform():
    x = reference_images()
    y, labels = A.augment(x, 0.8, generator=torch.Generator().manual_seed(5))
    assert labels[:, 2:].any(dim=1).float().mean() > 0.5
    again = A.apply(x, A.params_of_labels(labels, x.shape[2:]))
    torch.testing.assert_close(again, y, rtol=0, atol=1e-5)
    other = A.apply(x, A.params_of_labels(labels[torch.arange(16).roll(1)], x.shape[2:]))
    assert (other - y).abs().amax(dim=(1, 2, 3)).gt(1e-2).sum() > 8


def test_geometric_transforms_are_the_ones_named():
    """A quarter-turn rotation of a smooth image is torch.rot90 (counter-clockwise, not the other way) up to
    the resampling's blur, and a fractional translation of two whole pixels moves the pixels right by 2."""
    u = torch.linspace(-1, 1, 16)
    x = (torch.sin(2 * u + 0.3)[None, :] * torch.cos(1.5 * u)[:, None] + u[None, :]).expand(1, 1, 16, 16).clone()
    turn = A.apply(x, dict(theta=torch.tensor([math.pi / 2])))[0, 0, 4:12, 4:12]
    assert (turn - torch.rot90(x, 1, (2, 3))[0, 0, 4:12, 4:12]).abs().max() < 0.05
    assert (turn - torch.rot90(x, -1, (2, 3))[0, 0, 4:12, 4:12]).abs().max() > 1
    shift = A.apply(x, dict(t_frac=torch.tensor([[2 / (16 * A.TRANSLATE_FRAC_STD)], [0.0]])))
    torch.testing.assert_close(shift[0, 0, :, 4:14], x[0, 0, :, 2:12], atol=1e-5, rtol=0)


def test_matches_the_recorded_original():
    ref = np.load(DATA / "augment-reference.npz")
    torch.manual_seed(REF_SEED)
    y, labels = A.augment(reference_images(), REF_P)
    torch.testing.assert_close(y, torch.from_numpy(ref["images"]), rtol=0, atol=1e-4)
    ref_labels = torch.from_numpy(ref["labels"])
    torch.testing.assert_close(labels[:, :5], ref_labels[:, :5])
    torch.testing.assert_close(labels[:, 7:], ref_labels[:, 7:])
    # the anisotropy pair: EDM's, or its negation where EDM's axis lay beyond pi/2 (folded here)
    sign = torch.where((labels[:, 5:7] * ref_labels[:, 5:7]).sum(1) < 0, -1.0, 1.0)[:, None]
    torch.testing.assert_close(labels[:, 5:7], sign * ref_labels[:, 5:7], rtol=0, atol=1e-6)


def _songunet_config(augment_p, augment_dim=9):
    from conftest import tiny_config
    c = tiny_config("pfgmpp/digits_songunet", 2, batch_size=8, small_batch_size=8,
                    model=dict(augment_dim=augment_dim, model_channels=8), augment_p=augment_p)
    return c


def test_one_host_read_per_batch():
    """The warp's padding is data-dependent: its four margins are read to the host at once (a CUDA sync each)."""
    from pfgm.host_reads import HostReads
    with HostReads() as reads:
        A.augment(reference_images(), 1.0, torch.Generator().manual_seed(0))
    assert reads.total == 1, reads.by_kind


def test_augment_p_needs_the_network_to_take_the_labels():
    from pfgm import config_checks
    with pytest.raises(config_checks.ConfigError, match="training.augment_p"):
        config_checks.validate(_songunet_config(0.12, augment_dim=0))
    config_checks.validate(_songunet_config(0.12))


def test_the_labels_reach_the_network_through_the_pfgmpp_loss():
    from pfgm import methods, models
    config = _songunet_config(0.5)
    torch.manual_seed(0)
    model = models.build(config, "cpu")
    with torch.no_grad():  # O(1) weights everywhere: the output layer starts near zero
        for p in model.parameters():
            p.copy_(torch.randn_like(p) / max(1, p[0].numel()) ** 0.5)
    method = methods.get_method(config)
    batch = reference_images()[:8, :1]
    images, labels = A.augment(batch, 1.0, torch.Generator().manual_seed(2))
    loss = lambda aug: method.loss(model, images, torch.Generator().manual_seed(4), augment_labels=aug)  # noqa: E731
    with_labels = loss(labels)
    with_labels.backward()
    assert model.map_augment.weight.grad.abs().sum() > 0
    assert abs(with_labels.item() - loss(None).item()) > 1e-6


@pytest.mark.e2e
def test_training_with_augmentation(tmp_path):
    from pfgm import train
    config = _songunet_config(0.5)
    trainer = train.Trainer(config, str(tmp_path))
    trainer.run()
    assert trainer.step == 2
