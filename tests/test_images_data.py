"""Image data sets (pfgm.datasets: image_base, digits, cifar10, image_folder), the shared image basics
(pfgm.images) and the image configs under configs/."""
import gzip
import importlib
import io
import os
import pickle
import tarfile

import ml_collections
import numpy as np
import pytest
import torch
from PIL import Image

from pfgm.datasets import DataError, digits, get_dataset, image_folder
from pfgm.datasets.image_base import ArraySource, ImageDataset, uniform_dequantize
from pfgm.images import list_images, to_uint8

CONFIG_ROOT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs")


def data_config(**data):
    config = ml_collections.ConfigDict()
    config.data = ml_collections.ConfigDict(dict(
        dataset="CIFAR10", root="", image_size=32, num_channels=3, random_flip=False,
        uniform_dequantization=False, centered=False))
    config.data.update(data)
    return config


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


# ----------------------------------------------------------------------------------------------
# Fake CIFAR-10 in the layout of the official python version


N_PER_BATCH = 4
BATCHES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]


def cifar_arrays(seed=0):
    rng = np.random.RandomState(seed)
    return {name: rng.randint(0, 256, size=(N_PER_BATCH, 3072)).astype(np.uint8) for name in BATCHES}


def cifar_pickle(data, name, legacy_numpy=False):
    batch = {b"batch_label": name.encode(), b"labels": list(range(len(data))), b"data": data,
             b"filenames": [f"img{i}.png".encode() for i in range(len(data))]}
    raw = pickle.dumps(batch, protocol=2)
    if legacy_numpy:  # the official files were written by numpy 1.x
        raw = raw.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    return raw


def write_cifar_folder(folder, arrays, skip=(), legacy_numpy=False):
    os.makedirs(folder, exist_ok=True)
    for name, data in arrays.items():
        if name not in skip:
            with open(os.path.join(folder, name), "wb") as f:
                f.write(cifar_pickle(data, name, legacy_numpy))
    return folder


def write_cifar_archive(path, arrays, skip=()):
    with tarfile.open(path, "w:gz") as tar:
        for name, data in arrays.items():
            if name in skip:
                continue
            raw = cifar_pickle(data, name)
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(raw)
            tar.addfile(info, io.BytesIO(raw))
    return str(path)


def open_bytes(path):
    with open(path, "rb") as f:
        return f.read()


def as_images(data):
    return torch.from_numpy(data.reshape(-1, 3, 32, 32)).float() / 255


def rows(x):
    """Set of images as hashable byte strings (exact on multiples of 1/255)."""
    return sorted(tuple(np.round(r.numpy().ravel() * 255).astype(np.uint8).tolist()) for r in x)


@pytest.fixture(scope="module")
def cifar_tree(tmp_path_factory):
    base = tmp_path_factory.mktemp("cifar")
    arrays = cifar_arrays()
    tgz_dir = base / "with_archive"
    tgz_dir.mkdir()
    archive = write_cifar_archive(tgz_dir / "cifar-10-python.tar.gz", arrays)
    folder = write_cifar_folder(str(base / "with_folder" / "cifar-10-batches-py"), arrays)
    return dict(arrays=arrays, archive=archive, archive_parent=str(tgz_dir), folder=folder,
                folder_parent=str(base / "with_folder"), base=base)


@pytest.mark.parametrize("which", ["archive", "archive_parent", "folder", "folder_parent"])
def test_cifar10_loads_every_layout(cifar_tree, which):
    arrays = cifar_tree["arrays"]
    ds = get_dataset(data_config(root=cifar_tree[which]))
    assert ds.shape == (3, 32, 32)
    assert ds.num_train == 5 * N_PER_BATCH and ds.num_eval == N_PER_BATCH

    train = np.concatenate([arrays[n] for n in BATCHES[:5]])
    batch = next(ds.train_batches(ds.num_train, gen()))
    assert batch.dtype == torch.float32 and batch.shape == (ds.num_train, 3, 32, 32)
    assert 0.0 <= batch.min() and batch.max() <= 1.0
    assert rows(batch) == rows(as_images(train))  # one batch of num_train images = one epoch

    # The eval split is the test batch, in order, with the documented channel-first layout.
    ordered = torch.cat(list(ds.eval_batches(3)))
    torch.testing.assert_close(ordered, as_images(arrays["test_batch"]), rtol=0, atol=0)
    test = arrays["test_batch"]
    assert ordered[1, 2, 5, 7] == test[1, 2 * 1024 + 5 * 32 + 7] / 255.0
    assert rows(ds.eval_data(N_PER_BATCH, gen())) == rows(as_images(test))


def test_cifar10_batches_straddle_epochs_and_are_reproducible(cifar_tree):
    ds = get_dataset(data_config(root=cifar_tree["folder"]))
    a = next(ds.train_batches(3 * ds.num_train + 1, gen(5)))
    b = next(ds.train_batches(3 * ds.num_train + 1, gen(5)))
    assert a.shape[0] == 3 * ds.num_train + 1
    torch.testing.assert_close(a, b)
    # Each epoch is a permutation: the first num_train images hold every image exactly once.
    assert rows(a[:ds.num_train]) == rows(a[ds.num_train:2 * ds.num_train])
    assert ds.eval_data(2 * ds.num_eval + 1, gen()).shape == (2 * ds.num_eval + 1, 3, 32, 32)


def test_cifar10_legacy_numpy_pickles_and_resize(cifar_tree, tmp_path):
    folder = write_cifar_folder(str(tmp_path / "legacy"), cifar_tree["arrays"], legacy_numpy=True)
    ds = get_dataset(data_config(root=folder, image_size=16))
    assert ds.shape == (3, 16, 16)
    x = next(ds.train_batches(5, gen()))
    assert x.shape == (5, 3, 16, 16) and 0 <= x.min() and x.max() <= 1


def test_cifar10_errors_name_the_path(cifar_tree, tmp_path):
    arrays = cifar_tree["arrays"]

    def raises(root, match=None):
        with pytest.raises(DataError) as info:
            get_dataset(data_config(root=str(root)))
        assert str(root) in str(info.value)
        if match:
            assert match in str(info.value)

    raises(tmp_path / "nowhere", "no such file")
    with pytest.raises(DataError, match="empty"):
        get_dataset(data_config(root=""))

    garbage = tmp_path / "garbage.tar.gz"
    garbage.write_bytes(os.urandom(2048))
    raises(garbage)
    truncated = tmp_path / "truncated.tar.gz"
    truncated.write_bytes(open_bytes(cifar_tree["archive"])[:600])
    raises(truncated)
    not_tar = tmp_path / "not_tar.tar.gz"
    not_tar.write_bytes(gzip.compress(b"hello" * 1000))
    raises(not_tar)

    raises(write_cifar_archive(tmp_path / "partial.tar.gz", arrays, skip=("data_batch_3",)),
           "data_batch_3")
    raises(write_cifar_folder(str(tmp_path / "partial_dir"), arrays, skip=("test_batch",)),
           "test_batch")
    empty = tmp_path / "empty_dir"
    empty.mkdir()
    raises(empty)

    wrong = dict(arrays, data_batch_2=arrays["data_batch_2"][:, :3000].copy())
    raises(write_cifar_archive(tmp_path / "wrong_len.tar.gz", wrong), "3072")
    raises(write_cifar_folder(str(tmp_path / "wrong_len_dir"), wrong), "3072")

    bad_pickle = write_cifar_folder(str(tmp_path / "bad_pickle"), arrays)
    with open(os.path.join(bad_pickle, "data_batch_1"), "wb") as f:
        f.write(b"not a pickle at all")
    raises(os.path.join(bad_pickle, "data_batch_1"))

    # A crafted pickle may not run code: only dicts, lists, bytes and numpy arrays are accepted.
    evil = write_cifar_folder(str(tmp_path / "evil"), arrays)
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    with open(os.path.join(evil, "test_batch"), "wb") as f:
        pickle.dump(Evil(), f, protocol=2)
    raises(evil)
    assert not marker.exists()


# ----------------------------------------------------------------------------------------------
# Digits


def test_digits():
    ds = get_dataset(data_config(dataset="digits", image_size=8, num_channels=1))
    assert ds.shape == (1, 8, 8)
    assert (ds.num_train, ds.num_eval) == (1500, 297)
    x = next(ds.train_batches(ds.num_train, gen()))
    assert x.shape == (1500, 1, 8, 8) and x.dtype == torch.float32
    assert x.min() == 0 and x.max() == 1
    torch.testing.assert_close(x * 16, torch.round(x * 16))  # 17 grey levels, 0..16
    # The split is fixed: two builds hold the same eval images, disjoint from the train images.
    ev = torch.cat(list(ds.eval_batches(100)))
    again = torch.cat(list(digits.make_digits(data_config(dataset="digits", image_size=8,
                                                      num_channels=1)).eval_batches(297)))
    torch.testing.assert_close(ev, again)
    assert ev.shape == (297, 1, 8, 8)
    big = digits.make_digits(data_config(dataset="digits", image_size=16, num_channels=3))
    y = big.eval_data(10, gen())
    assert big.shape == (3, 16, 16) and y.shape == (10, 3, 16, 16)
    assert 0 <= y.min() and y.max() <= 1


# ----------------------------------------------------------------------------------------------
# Folders of images


def save(path, array, fmt=None):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(array.astype(np.uint8)).save(path, fmt)


def framed(width, height, inner, inner_color=(200, 30, 40), outer_color=(10, 20, 250)):
    """An RGB image whose centered inner x inner square has one colour and the rest another."""
    a = np.empty((height, width, 3), np.uint8)
    a[:] = outer_color
    top, left = (height - inner) // 2, (width - inner) // 2
    a[top:top + inner, left:left + inner] = inner_color
    return a


def test_folder_images_are_cropped_and_resized(tmp_path):
    rng = np.random.RandomState(0)
    save(str(tmp_path / "a.png"), rng.randint(0, 256, (30, 40, 3)))
    save(str(tmp_path / "sub" / "b.JPG"), rng.randint(0, 256, (80, 64, 3)), "JPEG")
    save(str(tmp_path / "sub" / "deeper" / "c.jpeg"), rng.randint(0, 256, (100, 100, 3)), "JPEG")
    save(str(tmp_path / "d.webp"), rng.randint(0, 256, (17, 23, 3)), "WEBP")
    save(str(tmp_path / "grey.png"), rng.randint(0, 256, (20, 20)))
    (tmp_path / "notes.txt").write_text("not an image")
    ds = get_dataset(data_config(dataset="folder", root=str(tmp_path), image_size=16))
    assert ds.shape == (3, 16, 16)
    assert ds.num_train + ds.num_eval == 5 and ds.num_eval == 1
    x = next(ds.train_batches(7, gen()))
    assert x.shape == (7, 3, 16, 16) and x.dtype == torch.float32
    assert 0 <= x.min() and x.max() <= 1
    assert ds.eval_data(2, gen()).shape == (2, 3, 16, 16)
    grey = get_dataset(data_config(dataset="folder", root=str(tmp_path), image_size=8, num_channels=1))
    assert next(grey.train_batches(2, gen())).shape == (2, 1, 8, 8)


@pytest.mark.parametrize("dataset", ["LSUN", "folder", "CELEBA"])
def test_center_crops(tmp_path, dataset):
    # LSUN/folder keep the centred square; CelebA keeps the centred 140 x 140.
    inner = 140 if dataset == "CELEBA" else None
    for i, (w, h) in enumerate([(178, 218), (300, 160), (150, 150)]):
        side = inner or min(w, h)
        save(str(tmp_path / f"{i}.png"), framed(w, h, side))
    ds = get_dataset(data_config(dataset=dataset, root=str(tmp_path), image_size=12))
    x = torch.cat([next(ds.train_batches(ds.num_train, gen())), ds.eval_data(ds.num_eval, gen())])
    assert x.shape == (3, 3, 12, 12)
    want = torch.tensor([200, 30, 40]).float().div(255).view(1, 3, 1, 1).expand_as(x)
    torch.testing.assert_close(x, want, atol=1.5 / 255, rtol=0)


def test_folder_splits(tmp_path):
    color = np.zeros((8, 8, 3))
    # train/ and test/ sub-folders give the split.
    for i in range(3):
        save(str(tmp_path / "split" / "train" / f"{i}.png"), color)
    save(str(tmp_path / "split" / "test" / "t.png"), color)
    ds = get_dataset(data_config(dataset="folder", root=str(tmp_path / "split"), image_size=8))
    assert (ds.num_train, ds.num_eval) == (3, 1)
    # CelebA's list_eval_partition.txt: 0 train, 1 valid (unused), 2 test (eval).
    names = [f"{i:06d}.jpg" for i in range(1, 7)]
    for n in names:
        save(str(tmp_path / "celeba" / "img_align_celeba" / n), color, "JPEG")
    parts = [0, 0, 0, 1, 2, 2]
    (tmp_path / "celeba" / "list_eval_partition.txt").write_text(
        "".join(f"{n} {p}\n" for n, p in zip(names, parts)))
    ds = get_dataset(data_config(dataset="CELEBA", root=str(tmp_path / "celeba"), image_size=8))
    assert (ds.num_train, ds.num_eval) == (3, 2)
    # Otherwise a fixed 1/20 (at least one) is held out, chosen by file name only.
    for i in range(45):
        save(str(tmp_path / "plain" / f"{i:03d}.png"), color)
    a = image_folder._split_folder(str(tmp_path / "plain"), list_images(str(tmp_path / "plain")))
    b = image_folder._split_folder(str(tmp_path / "plain"), list_images(str(tmp_path / "plain")))
    assert a == b and len(a[1]) == 3 and len(a[0]) == 42 and not set(a[0]) & set(a[1])


def test_list_images_order_hidden_files_and_extensions(tmp_path):
    # One listing for the data sets and the FID sources: a folder's files (by name) before its
    # sub-folders (by name); hidden files and folders skipped; extensions matched case-insensitively.
    for rel in ["b.png", "a/2.JPG", "a/1.bmp", "a/.hidden.png", ".cache/x.png", "c/d/3.tiff", "notes.txt"]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"")
    expected = ["b.png", "a/1.bmp", "a/2.JPG", "c/d/3.tiff"]
    assert list_images(str(tmp_path)) == [str(tmp_path / rel) for rel in expected]
    assert list_images(str(tmp_path / "missing")) == []


def test_to_uint8_rounds_in_the_input_precision():
    x = np.array([0.0, 0.5 / 255, 1.5 / 255, 0.5, 1.0, -0.1, 1.2])
    np.testing.assert_array_equal(to_uint8(x), [0, 0, 2, 128, 255, 0, 255])  # half to even, clipped
    # The product stays in float32 for float32 input, as FID has always computed it: there x * 255 rounds
    # to exactly 0.5 (then to 0, half to even), while in float64 it is just above 0.5 (then to 1).
    tie = np.array([0.0019607844296842813], np.float32)
    assert to_uint8(tie)[0] == 0 and to_uint8(tie.astype(np.float64))[0] == 1
    assert to_uint8(np.ones((2, 1, 3, 3), np.float32)).shape == (2, 1, 3, 3)


def test_folder_errors_name_the_path(tmp_path):
    def raises(root, dataset="folder"):
        with pytest.raises(DataError) as info:
            get_dataset(data_config(dataset=dataset, root=str(root), image_size=8))
        assert str(root) in str(info.value)

    raises(tmp_path / "missing")
    (tmp_path / "file.png").write_bytes(b"x")
    raises(tmp_path / "file.png")  # not a folder
    (tmp_path / "no_images").mkdir()
    (tmp_path / "no_images" / "readme.txt").write_text("hi")
    raises(tmp_path / "no_images", "LSUN")
    save(str(tmp_path / "one" / "a.png"), np.zeros((8, 8, 3)))
    raises(tmp_path / "one", "CELEBA")

    bad = tmp_path / "bad"
    for i in range(3):
        save(str(bad / f"{i}.png"), np.zeros((9, 9, 3)))
    (bad / "1.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")  # decoded lazily
    ds = get_dataset(data_config(dataset="folder", root=str(bad), image_size=8))
    with pytest.raises(DataError) as info:
        next(ds.train_batches(ds.num_train, gen()))
        ds.eval_data(ds.num_eval, gen())
    assert str(bad / "1.png") in str(info.value)


# ----------------------------------------------------------------------------------------------
# Flip and dequantization


def test_random_flip_only_mirrors_and_spares_the_eval_split():
    torch.manual_seed(0)
    train, held = torch.rand(30, 2, 5, 6), torch.rand(10, 2, 5, 6)
    ds = ImageDataset("t", (2, 5, 6), ArraySource(train), ArraySource(held), random_flip=True)
    x = next(ds.train_batches(30, gen(1)))
    plain = {tuple(r.ravel().tolist()): i for i, r in enumerate(train)}
    mirrored = {tuple(r.flip(-1).ravel().tolist()): i for i, r in enumerate(train)}
    seen, flips = [], 0
    for r in x:
        key = tuple(r.ravel().tolist())
        assert key in plain or key in mirrored
        flips += key in mirrored
        seen.append(plain.get(key, mirrored.get(key)))
    assert sorted(seen) == list(range(30))  # an epoch, each image once, mirrored or not
    assert 5 <= flips <= 25
    ev = ds.eval_data(10, gen(2))
    assert rows(ev) == rows(held)
    torch.testing.assert_close(torch.cat(list(ds.eval_batches(4))), held)


def test_uniform_dequantization_stays_close_and_in_range():
    levels = torch.linspace(0, 1, 20)  # 20 constant images, 0.0526 apart
    train = levels.view(20, 1, 1, 1).expand(20, 3, 4, 4).contiguous()
    ds = ImageDataset("t", (3, 4, 4), ArraySource(train), ArraySource(train[:5]),
                      uniform_dequantization=True)
    x = next(ds.train_batches(20, gen()))
    assert 0 <= x.min() and x.max() < 1
    level = (x.mean((1, 2, 3)) * 19).round().long()
    assert sorted(level.tolist()) == list(range(20))
    diff = x - levels[level].view(-1, 1, 1, 1)
    assert diff.abs().max() <= 1 / 256 + 1e-7
    assert diff.std() > 1e-3  # the noise is there
    # (U + 255 x) / 256 exactly: 256 out - 255 x lies in [0, 1).
    u = x * 256 - 255 * levels[level].view(-1, 1, 1, 1)
    assert u.min() >= -1e-4 and u.max() < 1 + 1e-4
    ev = ds.eval_data(5, gen())
    assert 0 <= ev.min() and ev.max() < 1
    y = uniform_dequantize(torch.tensor([0.0, 1.0]).repeat(1000), gen())
    assert 0 <= y.min() and y.max() < 1 and (y[1::2] >= 255 / 256).all() and (y[::2] < 1 / 256).all()


# ----------------------------------------------------------------------------------------------
# Configs


def config_modules():
    names = []
    for folder, dirs, files in os.walk(CONFIG_ROOT):
        dirs[:] = sorted(d for d in dirs if not d.startswith(("_", ".")))
        for f in sorted(files):
            if f.endswith(".py") and not f.startswith(("_", "default_")):
                rel = os.path.relpath(os.path.join(folder, f), os.path.dirname(CONFIG_ROOT))
                names.append(rel[:-3].replace(os.sep, "."))
    return names


SECTIONS = ("training", "sampling", "data", "model", "optim", "eval")


@pytest.mark.parametrize("module", config_modules())
def test_every_config_loads(module):
    config = importlib.import_module(module).get_config()
    for section in SECTIONS:
        assert section in config, f"{module} lacks config.{section}"
    assert isinstance(config.seed, int)
    assert config.device in ("cuda", "cpu")


IMAGE_CONFIGS = [
    "configs.poisson.cifar10_ddpmpp", "configs.poisson.cifar10_ddpmpp_deep",
    "configs.poisson.cifar10_ncsnpp", "configs.poisson.celeba64_ddpmpp",
    "configs.poisson.bedroom_ddpmpp", "configs.poisson.digits_ddpmpp",
    "configs.ve.cifar10_ncsnpp_continuous", "configs.vp.cifar10_ddpmpp_continuous",
    "configs.subvp.cifar10_ddpmpp_continuous", "configs.vp.digits_ddpmpp", "configs.ve.digits_ncsnpp",
]
IMAGE_KEYS = dict(
    training=("sde", "batch_size", "small_batch_size", "n_iters", "snapshot_freq",
              "snapshot_freq_for_preemption", "eval_freq", "log_freq", "snapshot_sampling",
              "snapshot_num_samples", "M", "tau", "gamma", "restrict_M", "reduce_mean", "continuous",
              "likelihood_weighting"),
    sampling=("method", "ode_solver", "N", "z_max", "z_min", "upper_norm", "z_exp", "snr",
              "n_steps_each", "noise_removal", "probability_flow", "predictor", "corrector", "rtol",
              "atol"),
    data=("dataset", "root", "image_size", "num_channels", "centered", "random_flip",
          "uniform_dequantization"),
    model=("name", "nf", "ch_mult", "num_res_blocks", "attn_resolutions", "resblock_type", "fir",
           "fir_kernel", "progressive", "progressive_input", "progressive_combine", "skip_rescale",
           "resamp_with_conv", "conditional", "init_scale", "normalization", "nonlinearity",
           "attention_type", "conv_size", "scale_by_sigma", "sigma_end", "ema_rate", "sigma_min",
           "sigma_max", "num_scales", "beta_min", "beta_max", "dropout", "embedding_type",
           "fourier_scale"),
    optim=("optimizer", "lr", "beta1", "eps", "weight_decay", "warmup", "grad_clip"),
    eval=("begin_ckpt", "end_ckpt", "batch_size", "num_samples", "enable_sampling", "enable_loss",
          "enable_bpd", "bpd_dataset"),
)


def load(module):
    return importlib.import_module(module).get_config()


@pytest.mark.parametrize("module", IMAGE_CONFIGS)
def test_image_configs_have_every_key(module):
    config = load(module)
    for section, keys in IMAGE_KEYS.items():
        missing = [k for k in keys if k not in config[section]]
        assert not missing, f"{module}: config.{section} lacks {missing}"
    assert config.sampling.method != "ode" or config.sampling.ode_solver == "rk45"
    assert config.model.name == "ncsnpp"
    for dead in ("vs",):
        assert dead not in config.sampling
    assert "model" not in config.training and "channels" not in config.data


# The paper's CIFAR-10 settings (App. B; the official configs): (B_L, B, M, z_max, upper_norm, z_exp, ema_rate, lr, embedding, seed, image_size, reduce_mean)
PAPER = {
    "cifar10_ddpmpp": (4096, 128, 291, 40, 3000, 5, 0.9999, 2e-4, "positional", 49, 32, False),
    "cifar10_ddpmpp_deep": (4096, 128, 291, 40, 3000, 5, 0.9999, 2e-4, "positional", 49, 32, False),
    "cifar10_ncsnpp": (4096, 128, 291, 40, 3000, 5, 0.999, 2e-4, "fourier", 49, 32, False),
    "celeba64_ddpmpp": (512, 128, 291, 60, 6000, 1, 0.9999, 2e-4, "positional", 42, 64, False),
    "bedroom_ddpmpp": (32, 32, 356, 100, 30000, 0.1, 0.9999, 2e-5, "positional", 49, 256, True),
}


@pytest.mark.parametrize("name", sorted(PAPER))
def test_paper_pfgm_configs(name):
    c = load(f"configs.poisson.{name}")
    b_l, b, m, z_max, upper, z_exp, ema, lr, emb, seed, size, mean = PAPER[name]
    t, s, mo = c.training, c.sampling, c.model
    assert (t.sde, t.batch_size, t.small_batch_size, t.M) == ("poisson", b_l, b, m)
    assert (t.tau, t.gamma, t.restrict_M, t.continuous, t.reduce_mean) == (0.03, 5, True, True, mean)
    assert (s.method, s.ode_solver, s.N, s.z_max, s.z_min) == ("ode", "rk45", 100, z_max, 1e-3)
    assert (s.upper_norm, s.z_exp, s.rtol, s.atol) == (upper, z_exp, 1e-4, 1e-4)
    assert (mo.ema_rate, mo.embedding_type, mo.sigma_end, mo.fourier_scale) == (ema, emb, 0.01, 16)
    assert (c.optim.lr, c.optim.warmup, c.optim.grad_clip, c.optim.beta1, c.optim.eps) == \
        (lr, 5000, 1.0, 0.9, 1e-8)
    assert (c.seed, c.data.image_size, c.data.centered, c.data.random_flip) == (seed, size, True, True)
    assert c.data.num_channels == 3 and c.training.snapshot_num_samples == 64
    assert mo.nf == 128 and mo.attn_resolutions == (16,) and mo.init_scale == 0.0
    assert mo.dropout == (0.0 if name == "bedroom_ddpmpp" else 0.1)
    assert mo.num_res_blocks == {"cifar10_ddpmpp_deep": 8, "bedroom_ddpmpp": 2}.get(name, 4)
    assert mo.ch_mult == ((1, 1, 2, 2, 4, 4) if name == "bedroom_ddpmpp" else (1, 2, 2, 2))
    assert (mo.fir, mo.progressive_input) == ((True, "residual") if name == "cifar10_ncsnpp"
                                              else (False, "none"))
    assert c.training.n_iters == (2400001 if name == "bedroom_ddpmpp" else 1300001)


def test_baseline_configs():
    ve, vp = load("configs.ve.cifar10_ncsnpp_continuous"), load("configs.vp.cifar10_ddpmpp_continuous")
    subvp = load("configs.subvp.cifar10_ddpmpp_continuous")
    assert (ve.training.sde, vp.training.sde, subvp.training.sde) == ("vesde", "vpsde", "subvpsde")
    assert ve.model.scale_by_sigma and ve.model.fir and ve.model.ema_rate == 0.999
    assert not ve.data.centered and not ve.training.reduce_mean and ve.model.sigma_max == 50
    for c in (vp, subvp):
        assert c.data.centered and c.training.reduce_mean and c.model.ema_rate == 0.9999
        assert c.model.embedding_type == "positional" and not c.model.fir
        assert (c.model.beta_min, c.model.beta_max) == (0.1, 20)
    for c in (ve, vp, subvp):
        assert c.sampling.ode_solver == "rk45" and c.training.batch_size == 128


def test_digits_configs_share_the_small_unet():
    from pfgm.poisson import hyperparameters

    p, vp, ve = (load(f"configs.{m}") for m in ("poisson.digits_ddpmpp", "vp.digits_ddpmpp",
                                                "ve.digits_ncsnpp"))
    arch = ("nf", "ch_mult", "num_res_blocks", "attn_resolutions", "dropout")
    assert [p.model[k] for k in arch] == [vp.model[k] for k in arch] == [ve.model[k] for k in arch]
    assert p.training.small_batch_size == vp.training.batch_size == ve.training.batch_size
    assert p.training.n_iters == vp.training.n_iters == ve.training.n_iters
    assert p.data.image_size == 8 and p.data.num_channels == 1 and not p.data.random_flip

    # M / z_max / upper_norm follow the App. B rule with the centered digits' mean norm.
    ds = get_dataset(p)
    x = torch.cat([next(ds.train_batches(ds.num_train, gen())), ds.eval_data(ds.num_eval, gen())])
    norm = (2 * x - 1).flatten(1).norm(dim=1).mean().item()
    assert abs(norm - 6.77) < 0.01
    h = hyperparameters(norm, 64, p.model.sigma_end, p.training.tau)
    assert p.training.M == h["M"]
    assert p.sampling.z_max == pytest.approx(h["z_max"], rel=1e-3)
    assert p.sampling.upper_norm == pytest.approx(h["upper_norm"], rel=1e-3)


@pytest.mark.parametrize("kind", ["complex", "beyond_float32"])
def test_points_files_with_unusable_numbers_are_refused(tmp_path, kind):
    from pfgm import datasets
    from pfgm.datasets import toy
    arr = np.ones((20, 2))
    arr = arr + 1j * arr if kind == "complex" else arr * 1e300
    path = tmp_path / "points.npy"
    np.save(path, arr)
    with pytest.raises(datasets.DataError, match="complex" if kind == "complex" else "float32"):
        toy.read_points(str(path))


def test_a_missing_cifar10_root_says_what_file_goes_there_and_where_it_comes_from(tmp_path):
    from conftest import shipped_config
    from pfgm import config_checks
    config = shipped_config("poisson/cifar10_ddpmpp")
    config.data.root = str(tmp_path / "data" / "cifar10")
    with pytest.raises(config_checks.ConfigError) as err:
        config_checks.validate(config, mode="train")
    message = str(err.value)
    assert message.startswith("data.root: no such file or folder") and "cs.toronto.edu/~kriz/cifar.html" in message
    assert repr(str(tmp_path / "data" / "cifar10" / "cifar-10-python.tar.gz")) in message


# ----------------------------------------------------------------------------------------------
# Strange folders and pixel formats (issue 18, cases 7 and 10)


def _grey_png(path, value=128):
    Image.fromarray(np.full((8, 8), value, np.uint8)).save(path)


def test_symlink_loops_neither_repeat_images_nor_walk_for_ever(tmp_path):
    """12 images, a link back to the root, two self-links and a second link to a sub-folder: each real
    folder is walked once, so the list holds the 12 images once (it used to hold hundreds, or never end)."""
    root = tmp_path / "data"
    (root / "a" / "b").mkdir(parents=True)
    for i in range(4):
        for folder in (root, root / "a", root / "a" / "b"):
            _grey_png(folder / f"{i}.png")
    os.symlink(root, root / "a" / "b" / "up")
    os.symlink(".", root / "a" / "self1")
    os.symlink(".", root / "a" / "self2")
    os.symlink(root / "a", root / "again")
    found = list_images(str(root))
    assert len(found) == 12 and len({os.path.realpath(p) for p in found}) == 12
    ds = image_folder.make_folder(data_config(dataset="folder", root=str(root), image_size=8, num_channels=1))
    train = {os.path.realpath(p) for p in ds.train.files}
    held = {os.path.realpath(p) for p in ds.held_out.files}
    assert len(train) + len(held) == 12 and not train & held


def test_16_bit_and_float_images_are_scaled_by_their_own_range(tmp_path):
    """A 16-bit PNG used to decode with every pixel above 255/65535 at 1.0, a float TIFF in [0, 1] to at
    most 1/255: both now keep their values (x / 65535 or x, to the nearest of the pipeline's 256 levels)."""
    ramp16 = (np.arange(64, dtype=np.uint16).reshape(8, 8) * 1000)
    Image.fromarray(ramp16).save(tmp_path / "a16.png")
    ramp_f = np.linspace(0, 1, 64, dtype=np.float32).reshape(8, 8)
    Image.fromarray(ramp_f, mode="F").save(tmp_path / "f.tiff")
    same = image_folder.square_transform(8)
    for channels in (1, 3):
        x16 = image_folder.read_image(str(tmp_path / "a16.png"), same, channels)
        xf = image_folder.read_image(str(tmp_path / "f.tiff"), same, channels)
        assert x16.shape == xf.shape == (channels, 8, 8)
        np.testing.assert_allclose(x16.numpy(), np.broadcast_to(ramp16 / 65535.0, (channels, 8, 8)), atol=0.5 / 255 + 1e-6)
        np.testing.assert_allclose(xf.numpy(), np.broadcast_to(ramp_f, (channels, 8, 8)), atol=0.5 / 255 + 1e-6)
    # resized: a smooth ramp stays within its range, not clipped to white
    half = image_folder.read_image(str(tmp_path / "a16.png"), image_folder.square_transform(4), 1)
    assert 0 < half.min() and half.max() < 1 and abs(half.mean() - ramp16.mean() / 65535) < 0.02
    # a float image outside [0, 1] is refused by name, not silently clipped
    Image.fromarray(ramp_f * 300, mode="F").save(tmp_path / "big.tiff")
    with pytest.raises(DataError, match="big.tiff.*'F' image with values in"):
        image_folder.read_image(str(tmp_path / "big.tiff"), same, 1)


def test_an_image_beyond_pillows_pixel_limit_is_refused_by_name(tmp_path, monkeypatch):
    """An 11000 x 11000 PNG used to train with only Pillow's warning (1.9 GB); beyond the limit it is now
    refused naming the file (the limit is lowered here to keep the test small)."""
    from PIL import Image as PILImage
    _grey_png(tmp_path / "big.png")
    monkeypatch.setattr(PILImage, "MAX_IMAGE_PIXELS", 40)
    with pytest.raises(DataError, match="big.png.*8x8 pixels, more than Pillow's limit of 40"):
        image_folder.read_image(str(tmp_path / "big.png"), image_folder.square_transform(8), 1)


def test_an_empty_training_split_is_refused_not_drawn_from_forever():
    from pfgm.datasets import DataError
    from pfgm.datasets.image_base import ArraySource, ImageDataset
    empty, two = (ArraySource(torch.zeros(n, 3, 4, 4, dtype=torch.uint8), 255.0) for n in (0, 2))
    with pytest.raises(DataError, match="training split holds no image"):
        ImageDataset("x", (3, 4, 4), empty, two)
