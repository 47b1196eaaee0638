"""Labels in the data: every data set with classes yields them (computed from the same draws as its points,
so unconditional runs draw what they drew before), exposes num_classes, and a conditional config on data
without labels or with another class count stops with one line naming both."""
import math

import numpy as np
import pytest
import torch

from conftest import shipped_config
from pfgm import datasets
from pfgm.datasets import toy


@pytest.mark.parametrize("name,classes", [("eight_gaussians", 8), ("checkerboard", 8), ("moons", 2)])
def test_toy_labels_are_the_parts_of_the_density(name, classes):
    g = lambda: torch.Generator().manual_seed(0)
    plain = toy.TOYS[name](4000, g())
    pts, labels = toy.TOYS[name](4000, g(), labelled=True)
    assert torch.equal(plain, pts) and labels.dtype == torch.long
    assert torch.bincount(labels, minlength=classes).min() > 4000 / classes * 0.8
    assert (toy.classify(name, pts) == labels.numpy()).all()
    if name == "eight_gaussians":   # k: the component at angle 2 pi k / 8
        angle = torch.atan2(pts[:, 1], pts[:, 0])
        assert (torch.round(angle / (2 * math.pi / 8)).long() % 8 == labels).all()
    if name == "checkerboard":      # dark squares row-major from the bottom left: 0 at (-1.5, -1.5), 7 at (1.5, 1.5)
        centres = torch.stack([pts[labels == k].mean(0) for k in range(8)])
        expected = torch.tensor([[-1.5, -1.5], [0.5, -1.5], [-0.5, -0.5], [1.5, -0.5], [-1.5, 0.5], [0.5, 0.5],
                                 [-0.5, 1.5], [1.5, 1.5]])
        torch.testing.assert_close(centres, expected, atol=0.1, rtol=0)
    if name == "moons":             # 0: the upper moon
        assert pts[labels == 0, 1].mean() > 0.3 > -0.3 > pts[labels == 1, 1].mean()


def test_num_classes_of_every_data_set():
    for name, classes in (("eight_gaussians", 8), ("checkerboard", 8), ("moons", 2), ("heart", 0),
                          ("swiss_roll", 0)):
        c = shipped_config("poisson/toy2d")
        c.data.dataset = name
        assert datasets.get_dataset(c).num_classes == classes
    digits = datasets.get_dataset(shipped_config("poisson/digits_ddpmpp"))
    assert digits.num_classes == 10
    x, labels = digits.eval_labelled(297, torch.Generator().manual_seed(0))
    from pfgm.evaluation import digits as judge
    # the held-out labels are the digits' own: the project's classifier agrees on nearly all
    assert (judge.digits_features(x.numpy())[1].argmax(1) == labels.numpy()).mean() > 0.9


def test_points_labels_from_the_npz(tmp_path):
    pts = np.random.default_rng(0).normal(size=(40, 2)).astype(np.float32)
    labels = np.arange(40) % 3
    np.savez(tmp_path / "p.npz", points=pts, labels=labels)
    c = shipped_config("poisson/toy2d")
    c.data.update(dataset="points", path=str(tmp_path / "p.npz"))
    ds = datasets.get_dataset(c)
    assert ds.num_classes == 3
    x, lab = ds.eval_labelled(10, torch.Generator().manual_seed(0))
    row = [np.flatnonzero((pts == xi.numpy()).all(1))[0] for xi in x]
    assert (labels[row] == lab.numpy()).all()
    np.savez(tmp_path / "bad.npz", points=pts, labels=np.arange(39))
    c.data.path = str(tmp_path / "bad.npz")
    with pytest.raises(datasets.DataError, match="labels.*40 integers"):
        datasets.get_dataset(c)


def test_the_points_held_out_are_a_random_tenth_of_a_file_sorted_by_class(tmp_path):
    """A file sorted by class: the held-out tenth is drawn by a fixed permutation, not the file's first rows, so
    training sees every class; the two splits are disjoint, cover the file and keep points with their labels."""
    labels = np.repeat(np.arange(10), 10)
    pts = (np.random.default_rng(1).normal(size=(100, 2)) + labels[:, None]).astype(np.float32)
    np.savez(tmp_path / "p.npz", points=pts, labels=labels)
    c = shipped_config("poisson/toy2d")
    c.data.update(dataset="points", path=str(tmp_path / "p.npz"))
    ds, again = datasets.get_dataset(c), datasets.get_dataset(c)
    assert torch.equal(ds.eval_points, again.eval_points)       # the same split every time
    assert len(ds.eval_points) == 10 and set(ds.train_labels.tolist()) == set(range(10))
    assert len(set(ds.eval_labels.tolist())) > 1
    rows = {tuple(p) for p in pts.tolist()}
    held, kept = ({tuple(p) for p in x.tolist()} for x in (ds.eval_points, ds.train_points))
    assert not held & kept and held | kept == rows
    for x, y in ((ds.eval_points, ds.eval_labels), (ds.train_points, ds.train_labels)):
        assert all(labels[np.flatnonzero((pts == xi).all(1))[0]] == yi for xi, yi in zip(x.numpy(), y.tolist()))


@pytest.mark.parametrize("dataset,label_dim,message", [
    ("heart", 8, "model.label_dim: 8 classes, but the data set 'heart' has no labels"),
    ("eight_gaussians", 10, "model.label_dim: 10 classes, but the data set 'eight_gaussians' has 8 classes")])
def test_a_conditional_config_on_other_classes_is_refused_naming_both(dataset, label_dim, message):
    c = shipped_config("poisson/toy2d")
    c.data.dataset = dataset
    c.model.label_dim = label_dim
    with pytest.raises(datasets.DataError) as e:
        datasets.get_dataset(c)
    assert str(e.value) == message


def _image(path, value):
    from PIL import Image
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((4, 4, 3), value, np.uint8)).save(path)


def _folder(root, **data):
    c = shipped_config("poisson/toy2d")
    with c.unlocked():
        c.data = dict(dataset="folder", root=str(root), image_size=4, num_channels=3, random_flip=False,
                      uniform_dequantization=False, centered=False, **data)
    return datasets.get_dataset(c)


def test_folder_classes_are_its_sub_folders_sorted_by_name(tmp_path):
    for i, cls in enumerate(["zebra", "apple", "mango"]):   # value = 10 * its sorted index
        for j in range(8):
            _image(tmp_path / "d" / cls / f"{j}.png", 10 * sorted(["zebra", "apple", "mango"]).index(cls))
    ds = _folder(tmp_path / "d")
    assert ds.num_classes == 3
    x, labels = next(ds.train_batches(12, torch.Generator().manual_seed(0), labels=True))
    assert torch.equal(torch.round(x[:, 0, 0, 0] * 255 / 10).long(), labels)
    x, labels = ds.eval_labelled(4, torch.Generator().manual_seed(0))
    assert torch.equal(torch.round(x[:, 0, 0, 0] * 255 / 10).long(), labels)
    # train/ and test/ split folders: the classes are their sub-folders
    for split in ("train", "test"):
        for cls, v in (("a", 0), ("b", 10)):
            _image(tmp_path / "s" / split / cls / "0.png", v)
            _image(tmp_path / "s" / split / cls / "1.png", v)
    assert _folder(tmp_path / "s").num_classes == 2
    # an image outside every sub-folder: no classes
    _image(tmp_path / "d" / "loose.png", 0)
    assert _folder(tmp_path / "d").num_classes == 0


def test_folder_classes_from_edm_dataset_json(tmp_path):
    import json
    names = [f"00000/img{i:08d}.png" for i in range(10)]
    for i, n in enumerate(names):
        _image(tmp_path / n, 20 * (i % 4))
    (tmp_path / "dataset.json").write_text(json.dumps({"labels": [[n, i % 4] for i, n in enumerate(names)]}))
    ds = _folder(tmp_path)
    assert ds.num_classes == 4
    x, labels = next(ds.train_batches(9, torch.Generator().manual_seed(0), labels=True))
    assert torch.equal(torch.round(x[:, 0, 0, 0] * 255 / 20).long(), labels)
    (tmp_path / "dataset.json").write_text(json.dumps({"labels": [[n, 0] for n in names[1:]]}))
    with pytest.raises(datasets.DataError, match="no class for the image '00000/img00000000.png'"):
        _folder(tmp_path)
    (tmp_path / "dataset.json").write_text(json.dumps({"labels": None}))
    assert _folder(tmp_path).num_classes == 0


@pytest.mark.parametrize("world", [1, 2])
def test_the_training_feed_gives_each_point_its_own_label(tmp_path, world):
    """feed.labels(step) are the classes of exactly the points feed.shard(step) gives (toy draws, a points
    file, in-memory digits, image files through the DataLoader), for each rank's slice."""
    from pfgm.datasets import feed
    toy_c = shipped_config("poisson/toy2d")
    toy_c.data.dataset = "eight_gaussians"
    pts = np.random.default_rng(0).normal(size=(60, 2)).astype(np.float32)
    np.savez(tmp_path / "p.npz", points=pts, labels=np.arange(60) % 4)
    pts_c = shipped_config("poisson/toy2d")
    pts_c.data.update(dataset="points", path=str(tmp_path / "p.npz"))
    digits_c = shipped_config("poisson/digits_ddpmpp")
    for i in range(12):
        _image(tmp_path / "f" / f"c{i % 3}" / f"{i}.png", 40 * (i % 3))
    folder_c = shipped_config("poisson/digits_ddpmpp")
    folder_c.data.update(dataset="folder", root=str(tmp_path / "f"), image_size=4, num_channels=3, num_workers=0)
    for c in (toy_c, pts_c, digits_c, folder_c):
        c.training.update(batch_size=8, small_batch_size=4)
        ds = datasets.get_dataset(c)
        for rank in range(world):
            f = feed.make_feed(ds, c, torch.device("cpu"), rank, world)
            for step in (0, 3):
                x, labels = f.shard(step), f.labels(step)
                assert labels.dtype == torch.long and len(labels) == len(x) == 8 // world
                if c is toy_c:
                    assert (toy.classify("eight_gaussians", x.numpy()) == labels.numpy()).all()
                elif c is pts_c:
                    rows = [np.flatnonzero((ds.train_points.numpy() == xi.numpy()).all(1))[0] for xi in x]
                    assert (ds.train_labels.numpy()[rows] == labels.numpy()).all()
                elif c is digits_c:
                    train = ds.train.images.reshape(len(ds.train.images), -1)
                    rows = [int(((train - xi.reshape(1, -1)) ** 2).sum(1).argmin()) for xi in x]
                    assert torch.equal(ds.train.labels[rows], labels)
                else:
                    assert torch.equal(torch.round(x[:, 0, 0, 0] * 255 / 40).long(), labels)
            f.close()
