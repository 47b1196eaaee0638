"""The training feed (pfgm.datasets.feed): one global draw per step, each rank's disjoint slice of it,
in-memory images on the device in their own dtype, image files through a DataLoader."""
import ml_collections
import numpy as np
import pytest
import torch
from PIL import Image

from conftest import tiny_config
from pfgm import checkpoint, seeds, train
from pfgm.datasets import feed, get_dataset
from pfgm.datasets.image_base import ArraySource, ImageDataset


def config(batch_size=12, small_batch_size=4, seed=3, **data):
    c = ml_collections.ConfigDict()
    c.seed = seed
    c.training = ml_collections.ConfigDict(dict(batch_size=batch_size, small_batch_size=small_batch_size,
                                                n_iters=10))
    c.data = ml_collections.ConfigDict(dict(dataset="digits", root="", image_size=8, num_channels=1,
                                            random_flip=True, uniform_dequantization=False, centered=True,
                                            num_workers=0))
    c.data.update(data)
    return c


def test_epoch_indices_visit_every_image_once_per_epoch_and_depend_on_the_step_only():
    n, b = 10, 4
    walk = feed.EpochIndices(n, b, seed=1)
    seq = torch.cat([walk(k) for k in range(5)])  # 20 indices: two whole epochs, batch 2 straddles them
    assert sorted(seq[:n].tolist()) == list(range(n)) and sorted(seq[n:].tolist()) == list(range(n))
    assert not torch.equal(seq[:n], seq[n:])
    fresh = feed.EpochIndices(n, b, seed=1)
    assert torch.equal(fresh(4), walk(4)) and torch.equal(fresh(2), walk(2)) and torch.equal(fresh(0), walk(0))


def test_batch_larger_than_the_data_set_spans_epochs():
    walk = feed.EpochIndices(3, 7, seed=0)
    idx = walk(0)
    assert idx.shape == (7,) and sorted(idx[:3].tolist()) == [0, 1, 2] and sorted(idx[3:6].tolist()) == [0, 1, 2]


@pytest.mark.parametrize("world", [2, 4])
def test_rank_positions_partition_the_batch_and_arrange_global_undoes_them(world):
    B, T = 16, 8
    pos = [feed.rank_positions(B, T, r, world) for r in range(world)]
    assert sorted(torch.cat(pos).tolist()) == list(range(B))
    glob = torch.arange(B) * 10
    assert torch.equal(train.arrange_global([glob[p] for p in pos], T), glob)


@pytest.mark.parametrize("dequantize", [False, True])
def test_ranks_slices_gathered_are_the_single_process_batch(dequantize):
    c = config(uniform_dequantization=dequantize)
    ds = get_dataset(c)
    whole = feed.make_feed(ds, c, torch.device("cpu")).shard(5)
    for world in (2, 4):
        shards = [feed.make_feed(ds, c, torch.device("cpu"), r, world).shard(5) for r in range(world)]
        assert torch.equal(train.arrange_global(shards, c.training.small_batch_size), whole)


def test_memory_feed_is_the_data_set_images_flipped_as_drawn():
    c = config()
    ds = get_dataset(c)
    f = feed.make_feed(ds, c, torch.device("cpu"))
    assert isinstance(f, feed.MemoryFeed)
    idx, flips = f.draw(7)
    expect = ds.train.load(idx)
    expect = torch.where(flips[:, None, None, None], expect.flip(-1), expect)
    assert torch.equal(f.shard(7), expect) and flips.any() and not flips.all()


def test_uint8_images_stay_uint8_on_the_device():
    images = torch.randint(0, 256, (20, 3, 4, 4), dtype=torch.uint8)
    ds = ImageDataset("fake", (3, 4, 4), ArraySource(images, 255.0), ArraySource(images[:4], 255.0))
    f = feed.make_feed(ds, config(), torch.device("cpu"))
    assert f.images.dtype == torch.uint8
    x = f.shard(0)
    assert x.dtype == torch.float32 and torch.equal(x, images[f.draw(0)[0]].float() / 255.0)


@pytest.mark.parametrize("workers", [0, 2])
def test_file_feed_matches_the_files_and_splits_over_ranks(tmp_path, workers):
    rng = np.random.RandomState(0)
    for i in range(24):
        Image.fromarray(rng.randint(0, 256, (8, 8, 3)).astype(np.uint8)).save(tmp_path / f"im{i:02d}.png")
    c = config(dataset="folder", root=str(tmp_path), num_channels=3, num_workers=workers, batch_size=8)
    ds = get_dataset(c)
    f = feed.make_feed(ds, c, torch.device("cpu"))
    assert isinstance(f, feed.LoaderFeed)
    steps = [f.shard(k) for k in range(4)] + [f.shard(2)]  # in order, then a jump back
    for k, x in zip([0, 1, 2, 3, 2], steps):
        idx, flips = f.draw(k)
        expect = ds.train.load(idx)
        assert torch.equal(x, torch.where(flips[:, None, None, None], expect.flip(-1), expect))
    shards = [feed.make_feed(ds, c, torch.device("cpu"), r, 2).shard(3) for r in range(2)]
    assert torch.equal(train.arrange_global(shards, c.training.small_batch_size), steps[3])


@pytest.mark.parametrize("dataset", ["moons", "points"])
def test_drawn_sets_draw_what_one_process_drew_before(tmp_path, dataset):
    """The toy densities and point sets keep their former single-process draw (rank 0's stream)."""
    c = config(dataset=dataset, path=str(tmp_path / "p.npy"), shape=(2,))
    np.save(tmp_path / "p.npy", np.random.RandomState(0).randn(50, 2).astype(np.float32))
    ds = get_dataset(c)
    step = 6
    before = next(ds.train_batches(12, torch.Generator().manual_seed(
        seeds.step_seed(c.seed, step, seeds.TRAIN_DATA, 0))))
    assert torch.equal(feed.make_feed(ds, c, torch.device("cpu")).shard(step), before)


@pytest.mark.e2e
def test_training_on_image_files_resumes_bit_exactly_through_the_loader(tmp_path):
    """Steps 1-4 in one run equal steps 1-2, a resume, then 3-4: the DataLoader restarts at the resumed step."""
    rng = np.random.RandomState(0)
    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(40):
        Image.fromarray(rng.randint(0, 256, (8, 8)).astype(np.uint8)).save(folder / f"im{i:02d}.png")

    def config(n_iters):
        c = tiny_config("poisson/digits_ddpmpp", n_iters, batch_size=16, small_batch_size=8,
                        model=dict(nf=16, num_res_blocks=1))
        c.data.update(dataset="folder", root=str(folder), num_workers=2, random_flip=True)
        return c

    train.Trainer(config(4), str(tmp_path / "once")).run()
    train.Trainer(config(2), str(tmp_path / "twice")).run()
    train.Trainer(config(4), str(tmp_path / "twice")).run()
    a = checkpoint.read_checkpoint(checkpoint.checkpoint_path(str(tmp_path / "once"), 4))
    b = checkpoint.read_checkpoint(checkpoint.checkpoint_path(str(tmp_path / "twice"), 4))
    for name, value in a["model"].items():
        assert torch.equal(value, b["model"][name]), name
