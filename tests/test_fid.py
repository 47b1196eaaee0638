"""FID / Inception Score: Fréchet distance, statistics, IS, the Inception port, data sources and the CLI.

No test needs the 91 MB Inception weights: a stand-in feature extractor is injected where a network is
needed, and the Inception port is checked with random weights. A test with the real weights runs only
when they are present.
"""
import importlib.util
import json
import math
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import scipy.linalg
import torch
import torch.nn.functional as F

from pfgm.evaluation import fid, inception, sources
from pfgm.images import to_rgb_uint8

REPO = Path(__file__).resolve().parent.parent
STATE_DICT_JSON = Path(__file__).resolve().parent / "data" / "fid-inception-state-dict.json"


def _trace_sqrt_product(s1, s2):
    """tr sqrt(sqrt(S1) S2 sqrt(S1)) through symmetric eigendecompositions (independent of sqrtm)."""
    w, v = np.linalg.eigh(s1)
    root1 = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    return np.sqrt(np.clip(np.linalg.eigvalsh(root1 @ s2 @ root1), 0, None)).sum()


def _closed_form(mu1, s1, mu2, s2):
    d = mu1 - mu2
    return d @ d + np.trace(s1) + np.trace(s2) - 2 * _trace_sqrt_product(s1, s2)


def _random_spd(rng, d):
    a = rng.normal(size=(d, d))
    return a @ a.T / d + 0.1 * np.eye(d)


# ----------------------------------------------------------------------------------------------------------
# Fréchet distance and statistics.

def test_frechet_diagonal_closed_form():
    mu1, mu2 = np.array([0.0, 1.0, -2.0]), np.array([1.0, 1.0, 0.5])
    a, b = np.array([1.0, 4.0, 0.25]), np.array([9.0, 1.0, 0.25])
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)  # 1 + 6.25 + 4 + 1 = 12.25
    assert expected == pytest.approx(12.25)
    assert fid.frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(expected, rel=1e-12)


def test_frechet_equal_covariances_is_mean_term():
    rng = np.random.default_rng(0)
    s = _random_spd(rng, 8)
    mu1, mu2 = rng.normal(size=8), rng.normal(size=8)
    assert fid.frechet_distance(mu1, s, mu2, s) == pytest.approx(np.sum((mu1 - mu2) ** 2), rel=1e-9)


def test_frechet_general_covariances_match_eigen_formula():
    rng = np.random.default_rng(1)
    s1, s2 = _random_spd(rng, 12), _random_spd(rng, 12)
    mu1, mu2 = rng.normal(size=12), rng.normal(size=12)
    assert fid.frechet_distance(mu1, s1, mu2, s2) == pytest.approx(_closed_form(mu1, s1, mu2, s2), rel=1e-9)
    assert fid.frechet_distance(mu1, s1, mu2, s2) == pytest.approx(fid.frechet_distance(mu2, s2, mu1, s1))


def test_frechet_of_gaussian_samples_approaches_closed_form():
    rng = np.random.default_rng(2)
    mu1, mu2 = np.array([0.0, 0.5, 1.0, -1.0]), np.array([0.3, 0.5, -0.2, -1.0])
    a, b = np.array([1.0, 2.0, 0.5, 1.5]), np.array([0.5, 2.0, 1.0, 3.0])
    x = mu1 + np.sqrt(a) * rng.normal(size=(100_000, 4))
    y = mu2 + np.sqrt(b) * rng.normal(size=(100_000, 4))
    exact = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    got = fid.frechet_distance(*fid.activation_statistics(x), *fid.activation_statistics(y))
    assert got == pytest.approx(exact, abs=0.03)


def test_fid_of_a_set_with_itself_is_zero():
    acts = np.random.default_rng(3).normal(size=(300, 32)).astype(np.float32)
    mu, sigma = fid.activation_statistics(acts)
    assert abs(fid.frechet_distance(mu, sigma, mu, sigma)) < 1e-8


def test_singular_covariance_is_handled():
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(6, 20)), rng.normal(size=(6, 20)) + 0.5  # rank 5 covariances in 20 dims
    (mu1, s1), (mu2, s2) = fid.activation_statistics(x), fid.activation_statistics(y)
    assert np.linalg.matrix_rank(s1) == 5
    assert abs(fid.frechet_distance(mu1, s1, mu1, s1)) < 1e-4
    value = fid.frechet_distance(mu1, s1, mu2, s2)
    assert np.isfinite(value)
    assert value == pytest.approx(_closed_form(mu1, s1, mu2, s2), rel=1e-4)
    zero = np.zeros((20, 20))  # degenerate: a point mass
    assert fid.frechet_distance(mu1, zero, mu2, s2) == pytest.approx(
        np.sum((mu1 - mu2) ** 2) + np.trace(s2), rel=1e-9)


def test_failed_sqrtm_retries_with_eps_offset(monkeypatch):
    real_sqrtm, calls = scipy.linalg.sqrtm, []

    def flaky_sqrtm(a, *args, **kwargs):
        calls.append(a.copy())
        return np.full_like(a, np.nan) if len(calls) == 1 else real_sqrtm(a, *args, **kwargs)

    monkeypatch.setattr(scipy.linalg, "sqrtm", flaky_sqrtm)
    s = np.diag([1.0, 4.0])
    with pytest.warns(UserWarning, match="eps"):
        value = fid.frechet_distance(np.zeros(2), s, np.zeros(2), s, eps=1e-3)
    assert len(calls) == 2
    np.testing.assert_allclose(calls[1], (s + 1e-3 * np.eye(2)) @ (s + 1e-3 * np.eye(2)))
    assert value == pytest.approx(-2 * 2 * 1e-3, abs=1e-9)  # tr terms minus 2 tr(S + eps I)


def test_imaginary_component(monkeypatch):
    s = np.diag([1.0, 4.0])  # the fakes below are exact roots of this diagonal s @ s, plus imaginary noise
    monkeypatch.setattr(scipy.linalg, "sqrtm", lambda a, *_, **__: np.sqrt(a) + 1e-9j * np.eye(2))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert fid.frechet_distance(np.zeros(2), s, np.zeros(2), s) == pytest.approx(0.0, abs=1e-9)
    monkeypatch.setattr(scipy.linalg, "sqrtm", lambda a, *_, **__: np.sqrt(a) + 0.5j * np.eye(2))
    with pytest.raises(ValueError, match="imaginary component"), pytest.warns(UserWarning, match="eps"):
        fid.frechet_distance(np.zeros(2), s, np.zeros(2), s)


def test_frechet_rejects_bad_shapes():
    s = np.eye(3)
    with pytest.raises(ValueError, match="sigma must be"):
        fid.frechet_distance(np.zeros(3), np.eye(2), np.zeros(3), s)
    with pytest.raises(ValueError, match="different dimensions"):
        fid.frechet_distance(np.zeros(3), s, np.zeros(2), np.eye(2))
    with pytest.raises(ValueError, match="NaN"):
        fid.frechet_distance(np.array([0, np.nan, 0]), s, np.zeros(3), s)


def test_activation_statistics():
    acts = np.random.default_rng(5).normal(size=(5000, 7)).astype(np.float32)  # more than one chunk
    mu, sigma = fid.activation_statistics(acts)
    assert mu.dtype == sigma.dtype == np.float64
    np.testing.assert_allclose(mu, acts.astype(np.float64).mean(0), rtol=1e-12)
    np.testing.assert_allclose(sigma, np.cov(acts.astype(np.float64), rowvar=False), rtol=1e-10)
    with pytest.raises(ValueError, match="at least 2 samples"):
        fid.activation_statistics(acts[:1])
    with pytest.raises(ValueError, match="2-D"):
        fid.activation_statistics(acts[:, 0])
    with pytest.raises(ValueError, match="NaN"):
        fid.activation_statistics(np.array([[0.0, 1.0], [np.inf, 2.0]]))


# ----------------------------------------------------------------------------------------------------------
# Inception Score.

def test_inception_score_of_one_class_is_one():
    logits = np.zeros((100, 10))
    logits[:, 3] = 20.0
    mean, std = fid.inception_score(logits)
    assert mean == pytest.approx(1.0, abs=1e-6) and std == pytest.approx(0.0, abs=1e-6)


def test_inception_score_of_evenly_spread_confident_set_is_num_classes():
    classes = 10
    logits = 50.0 * np.eye(classes)[np.arange(200) % classes]  # every split holds every class equally
    mean, std = fid.inception_score(logits, splits=10)
    assert mean == pytest.approx(classes, rel=1e-6) and std == pytest.approx(0.0, abs=1e-6)
    assert fid.inception_score(logits, splits=1)[0] == pytest.approx(classes, rel=1e-6)


def test_inception_score_with_a_stand_in_classifier():
    # A fixed linear classifier over random "images": IS lies in [1, C], and uniform logits give 1.
    rng = np.random.default_rng(6)
    logits = rng.normal(size=(60, 16)) @ rng.normal(size=(16, 5))
    mean, _ = fid.inception_score(logits, splits=3)
    assert 1.0 < mean < 5.0
    assert fid.inception_score(np.zeros((30, 5)), splits=3)[0] == pytest.approx(1.0)


def test_inception_score_errors():
    with pytest.raises(ValueError, match="as many samples as splits"):
        fid.inception_score(np.zeros((5, 3)), splits=10)
    with pytest.raises(ValueError, match="2-D"):
        fid.inception_score(np.zeros(10))
    with pytest.raises(ValueError, match="positive integer"):
        fid.inception_score(np.zeros((10, 3)), splits=0)


# ----------------------------------------------------------------------------------------------------------
# The Inception port.

@pytest.fixture(scope="module")
def random_inception():
    torch.manual_seed(0)
    return inception.InceptionV3FID().eval().requires_grad_(False)


def test_state_dict_matches_pytorch_fid_file(random_inception):
    shapes = {k: list(v.shape) for k, v in random_inception.state_dict().items()}
    assert len(shapes) == 566
    assert sum(1 for k in shapes if k.endswith("num_batches_tracked")) == 94
    assert sum(math.prod(s) for s in shapes.values()) == 23_885_486
    for name, shape in [("Conv2d_1a_3x3.conv.weight", [32, 3, 3, 3]), ("fc.weight", [1008, 2048]),
                        ("Mixed_5b.branch_pool.conv.weight", [32, 192, 1, 1]),
                        ("Mixed_6e.branch7x7dbl_5.conv.weight", [192, 192, 1, 7]),
                        ("Mixed_7a.branch7x7x3_4.conv.weight", [192, 192, 3, 3]),
                        ("Mixed_7c.branch3x3dbl_3b.conv.weight", [384, 384, 3, 1]),
                        ("Mixed_7c.branch_pool.bn.running_var", [192])]:
        assert shapes[name] == shape
    # the full name -> shape listing of pytorch-fid's weights file
    assert shapes == json.loads(STATE_DICT_JSON.read_text())


def test_forward_shapes(random_inception):
    images = torch.randint(0, 256, (2, 8, 8, 3), dtype=torch.uint8)  # NHWC, resized to 299 inside
    feats, logits = random_inception(images)
    assert feats.shape == (2, 2048) and logits.shape == (2, 1008)
    assert feats.dtype == logits.dtype == torch.float32
    assert torch.isfinite(feats).all() and torch.isfinite(logits).all()
    assert (feats >= 0).all()  # average of ReLU outputs
    torch.testing.assert_close(logits, feats @ random_inception.fc.weight.T)  # unbiased logits by default


def test_preprocess_matches_pytorch_fid_convention():
    rng = np.random.default_rng(7)
    nhwc = torch.from_numpy(rng.integers(0, 256, size=(2, 5, 6, 3), dtype=np.uint8))
    nchw = nhwc.permute(0, 3, 1, 2)
    out = inception.preprocess(nchw)
    assert out.shape == (2, 3, 299, 299) and out.dtype == torch.float32
    torch.testing.assert_close(inception.preprocess(nhwc), out)
    expected = 2 * F.interpolate(nchw.float() / 255, size=(299, 299), mode="bilinear", align_corners=False) - 1
    torch.testing.assert_close(out, expected)
    assert out.min() >= -1 and out.max() <= 1
    ends = inception.preprocess(torch.tensor([0, 255], dtype=torch.uint8).view(2, 1, 1, 1).expand(2, 3, 4, 4))
    torch.testing.assert_close(ends, torch.tensor([-1.0, 1.0]).view(2, 1, 1, 1).expand(2, 3, 299, 299))
    with pytest.raises(ValueError, match="3 colour channels"):
        inception.preprocess(torch.zeros(1, 4, 8, 8, dtype=torch.uint8))


def test_load_inception_from_a_file_without_num_batches_tracked(random_inception, tmp_path):
    state = {k: v.half() for k, v in random_inception.state_dict().items() if not k.endswith("num_batches_tracked")}
    path = tmp_path / "weights.pth"
    torch.save(state, path)
    with pytest.warns(UserWarning, match="SHA-256"):
        model = inception.load_inception(path, device="cpu")
    assert not model.training and not any(p.requires_grad for p in model.parameters())
    torch.testing.assert_close(model.fc.weight, random_inception.fc.weight.half().float())
    torch.save({"fc.weight": torch.zeros(3)}, tmp_path / "bad.pth")
    with pytest.raises(ValueError, match="bad.pth.*FID Inception layout"):
        inception.load_inception(tmp_path / "bad.pth", device="cpu", check_hash=False)
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="junk.pth"):
        inception.load_inception(tmp_path / "junk.pth", device="cpu", check_hash=False)


def test_missing_weights_message_names_the_expected_location(monkeypatch, tmp_path):
    monkeypatch.delenv(inception.WEIGHTS_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    expected = tmp_path / "cache" / "pfgm" / "pt_inception-2015-12-05-6726825d.pth"
    assert inception.default_weights_path() == expected
    with pytest.raises(FileNotFoundError) as info:
        inception.load_inception()
    message = str(info.value)
    assert str(expected) in message and inception.WEIGHTS_URL in message and "PFGM_INCEPTION_WEIGHTS" in message
    monkeypatch.setenv(inception.WEIGHTS_ENV, str(tmp_path / "from_env.pth"))
    with pytest.raises(FileNotFoundError, match="from_env.pth"):
        inception.resolve_weights_path()
    with pytest.raises(FileNotFoundError, match="explicit.pth"):
        inception.resolve_weights_path(tmp_path / "explicit.pth")


def _real_weights():
    try:
        return inception.resolve_weights_path()
    except FileNotFoundError:
        return None


@pytest.mark.slow
@pytest.mark.skipif(_real_weights() is None, reason="FID Inception weights not present")
def test_real_weights_load_and_run():
    model = inception.load_inception(device="cpu")  # strict load, hash checked
    images = torch.from_numpy(np.random.default_rng(8).integers(0, 256, (2, 32, 32, 3), dtype=np.uint8))
    feats, logits = model(images)
    assert feats.shape == (2, 2048) and logits.shape == (2, 1008)
    assert torch.isfinite(feats).all() and (feats >= 0).all()


# ----------------------------------------------------------------------------------------------------------
# Feature extraction and data sources, with a stand-in feature extractor.

def stand_in(x):
    """A cheap 'network': per-channel mean and std as features, a fixed linear map as 4-class logits."""
    assert x.dtype == torch.uint8 and x.ndim == 4 and x.shape[1] == 3
    x = x.float() / 255
    feats = torch.cat([x.mean((2, 3)), x.std((2, 3))], dim=1)
    weight = torch.arange(24, dtype=torch.float32, device=x.device).view(6, 4).cos() * 10
    return feats, feats @ weight


@pytest.fixture()
def images():
    return np.random.default_rng(9).integers(0, 256, size=(12, 8, 8, 3), dtype=np.uint8)


@pytest.fixture()
def image_folder(tmp_path, images):
    from PIL import Image
    folder = tmp_path / "images"
    (folder / "sub").mkdir(parents=True)
    for i, img in enumerate(images):  # one in a subfolder; order is by sorted path
        target = folder / ("sub" if i == 11 else "") / f"{i:06d}.png"
        Image.fromarray(img).save(target)
    (folder / "notes.txt").write_text("not an image")
    return folder


def test_compute_activations_layouts_batches_and_truncation(images):
    feats, logits = fid.compute_activations(images, stand_in, batch_size=5, device="cpu", progress=False)
    assert feats.shape == (12, 6) and logits.shape == (12, 4)
    ref = stand_in(torch.from_numpy(images).permute(0, 3, 1, 2))[0].numpy()
    np.testing.assert_allclose(feats, ref, rtol=1e-6)
    nchw = fid.compute_activations(images.transpose(0, 3, 1, 2), stand_in, 7, "cpu", progress=False)[0]
    floats = fid.compute_activations(images / 255.0, stand_in, 4, "cpu", progress=False)[0]
    torch_in = fid.compute_activations(torch.from_numpy(images), stand_in, 12, "cpu", progress=False)[0]
    one_by_one = fid.compute_activations(iter(list(images)), stand_in, 5, "cpu", progress=False)[0]
    for other in (nchw, floats, torch_in, one_by_one):
        np.testing.assert_allclose(other, feats, rtol=1e-6)
    head, _ = fid.compute_activations(images, stand_in, 5, "cpu", num_samples=7, progress=False)
    np.testing.assert_allclose(head, feats[:7], rtol=1e-6)
    with pytest.raises(ValueError, match="20 samples requested but only 12"):
        fid.compute_activations(images, stand_in, 5, "cpu", num_samples=20, progress=False)
    only_feats = fid.compute_activations(images, lambda x: stand_in(x)[0], 5, "cpu", progress=False)
    assert only_feats[1] is None


def test_to_rgb_uint8_errors():
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\].*\(x \+ 1\) / 2"):
        to_rgb_uint8(np.full((2, 4, 4, 3), -0.5), name="x.npz")
    with pytest.raises(ValueError, match=r"x.npz: float images must lie in \[0, 1\]"):
        to_rgb_uint8(np.full((2, 4, 4, 3), 2.0), name="x.npz")
    with pytest.raises(ValueError, match="channels"):
        to_rgb_uint8(np.zeros((2, 5, 4, 4), dtype=np.uint8))
    with pytest.raises(ValueError, match="shaped"):
        to_rgb_uint8(np.zeros((2, 3), dtype=np.uint8))
    with pytest.raises(ValueError, match=r"\[0, 255\]"):
        to_rgb_uint8(np.full((1, 4, 4, 3), 300))
    gray = to_rgb_uint8(np.full((2, 4, 4, 1), 0.5))
    assert gray.shape == (2, 4, 4, 3) and gray.dtype == np.uint8 and (gray == 128).all()


def test_sources_agree_and_round_trip(tmp_path, images, image_folder):
    np.savez(tmp_path / "samples.npz", samples=images)
    np.savez(tmp_path / "floats.npz", images.transpose(0, 3, 1, 2) / 255.0)  # NCHW floats, key arr_0
    assert sources.source_kind(image_folder) == "folder"
    assert sources.source_kind(tmp_path / "samples.npz") == "samples"
    assert len(sources.iter_image_folder(image_folder)) == 12
    order = list(range(11)) + [11]  # 000000..000010, then sub/000011
    kw = dict(batch_size=5, device="cpu", progress=False)
    from_folder = sources.source_activations(image_folder, stand_in, **kw)[0]
    np.testing.assert_allclose(from_folder, fid.compute_activations(images[order], stand_in, **kw)[0])
    mu, sigma = sources.source_statistics(tmp_path / "samples.npz", stand_in, **kw)
    for other in (image_folder, tmp_path / "floats.npz"):
        mu2, sigma2 = sources.source_statistics(other, stand_in, **kw)
        np.testing.assert_allclose(mu2, mu, rtol=1e-6)
        np.testing.assert_allclose(sigma2, sigma, rtol=1e-5)
    sources.save_statistics(tmp_path / "stats.npz", mu, sigma)
    assert sources.source_kind(tmp_path / "stats.npz") == "stats"
    loaded = sources.load_statistics(tmp_path / "stats.npz")
    np.testing.assert_array_equal(loaded[0], mu)
    np.testing.assert_array_equal(loaded[1], sigma)
    assert abs(sources.fid_from_sources(image_folder, tmp_path / "stats.npz", stand_in, **kw)) < 1e-6
    # score_sde/PFGM-style raw activations under pool_3
    acts = np.random.default_rng(10).normal(size=(50, 6))
    np.savez(tmp_path / "pool3.npz", pool_3=acts[:, None, None, :])
    assert sources.source_kind(tmp_path / "pool3.npz") == "activations"
    np.testing.assert_allclose(sources.load_statistics(tmp_path / "pool3.npz")[1], np.cov(acts, rowvar=False))


def test_source_errors_name_the_path(tmp_path, image_folder):
    kw = dict(batch_size=4, device="cpu", progress=False)
    missing = tmp_path / "missing.npz"
    with pytest.raises(FileNotFoundError, match="missing.npz"):
        sources.source_statistics(missing, stand_in, **kw)
    (tmp_path / "corrupt.npz").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="corrupt.npz"):
        sources.source_statistics(tmp_path / "corrupt.npz", stand_in, **kw)
    np.savez(tmp_path / "bad_shape.npz", samples=np.zeros((4, 8, 8), dtype=np.uint8))
    with pytest.raises(ValueError, match="bad_shape.npz"):
        sources.source_statistics(tmp_path / "bad_shape.npz", stand_in, **kw)
    np.savez(tmp_path / "range.npz", samples=np.full((4, 8, 8, 3), 200.0))  # generated floats are clipped
    with pytest.warns(UserWarning, match=r"range.npz \[samples\]: 768 of 768 values .* clipped .*save them as uint8"):
        clipped = sources.source_statistics(tmp_path / "range.npz", stand_in, **kw)
    np.savez(tmp_path / "white.npz", samples=np.full((4, 8, 8, 3), 255, dtype=np.uint8))
    assert np.array_equal(clipped[0], sources.source_statistics(tmp_path / "white.npz", stand_in, **kw)[0])
    np.savez(tmp_path / "nan.npz", samples=np.full((4, 8, 8, 3), np.nan))
    with pytest.raises(ValueError, match=r"nan.npz \[samples\]: 768 of 768 values are not finite"):
        sources.source_statistics(tmp_path / "nan.npz", stand_in, **kw)
    np.savez(tmp_path / "one.npz", samples=np.zeros((1, 8, 8, 3), dtype=np.uint8))
    with pytest.raises(ValueError, match="at least 2 samples"):
        sources.source_statistics(tmp_path / "one.npz", stand_in, **kw)
    (image_folder / "broken.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match="broken.png"):
        sources.source_statistics(image_folder, stand_in, **kw)
    (image_folder / "broken.png").unlink()
    from PIL import Image
    Image.fromarray(np.zeros((9, 9, 3), dtype=np.uint8)).save(image_folder / "zz_big.png")
    with pytest.raises(ValueError, match="zz_big.png.*share one size"):
        sources.source_statistics(image_folder, stand_in, **kw)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="empty: no image files"):
        sources.source_statistics(tmp_path / "empty", stand_in, **kw)
    np.savez(tmp_path / "mu_only.npz", mu=np.zeros(3))
    with pytest.raises(ValueError, match="mu_only.npz: not a statistics file"):
        sources.load_statistics(tmp_path / "mu_only.npz")


# ----------------------------------------------------------------------------------------------------------
# The CLI.

@pytest.fixture(scope="module")
def cli():
    spec = importlib.util.spec_from_file_location("fid_cli", REPO / "tools" / "fid.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _fid_value(out):
    line = next(line for line in out.splitlines() if line.startswith("FID:"))
    return float(line.split()[1])


@pytest.mark.filterwarnings("ignore:.*singular covariance")
def test_cli_stats_and_fid(cli, tmp_path, images, image_folder, capsys):
    np.savez(tmp_path / "samples.npz", samples=images)
    np.savez(tmp_path / "other.npz", samples=images[::-1] // 2)
    stats = tmp_path / "out" / "stats.npz"
    common = ["--batch_size", "5", "--device", "cpu", "--quiet"]
    assert cli.main(["stats", str(image_folder), "-o", str(stats), *common], model=stand_in) == 0
    with np.load(stats) as f:
        assert f["mu"].shape == (6,) and f["sigma"].shape == (6, 6)
    assert cli.main(["fid", str(tmp_path / "samples.npz"), str(stats), *common], model=stand_in) == 0
    assert abs(_fid_value(capsys.readouterr().out)) < 1e-6
    assert cli.main(["fid", str(image_folder), str(tmp_path / "other.npz"), "--is", *common], model=stand_in) == 0
    out = capsys.readouterr().out
    assert _fid_value(out) > 0.01
    assert out.count("IS ") == 2 and "(10 splits)" in out
    assert cli.main(["stats", str(tmp_path / "samples.npz"), "-o", str(tmp_path / "head.npz"),
                     "--num_samples", "4", *common], model=stand_in) == 0
    assert "N=4" in capsys.readouterr().out


def test_cli_errors(cli, tmp_path, image_folder, monkeypatch, capsys):
    monkeypatch.delenv(inception.WEIGHTS_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert cli.main(["stats", str(image_folder), "-o", str(tmp_path / "s.npz"), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "weights not found" in err and str(tmp_path / "cache" / "pfgm" / inception.WEIGHTS_NAME) in err
    assert cli.main(["fid", str(tmp_path / "nope.npz"), str(image_folder)], model=stand_in) == 1
    assert "nope.npz" in capsys.readouterr().err


@pytest.mark.e2e
def test_cli_runs_as_a_script_on_stats_files_without_weights(tmp_path):
    sources.save_statistics(tmp_path / "a.npz", np.zeros(3), np.eye(3))
    sources.save_statistics(tmp_path / "b.npz", np.ones(3), 4 * np.eye(3))  # FID = 3 + 3 * (2 - 1)^2 = 6
    env = {**os.environ, "PFGM_INCEPTION_WEIGHTS": str(tmp_path / "absent.pth"), "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "tools/fid.py", "fid", str(tmp_path / "a.npz"), str(tmp_path / "b.npz")],
                            cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert _fid_value(result.stdout) == pytest.approx(6.0)


# ----------------------------------------------------------------------------------------------------------
# A config's data set as a source.

DIGITS_CONFIG = REPO / "configs" / "poisson" / "digits_ddpmpp.py"
CIFAR_CONFIG = REPO / "configs" / "poisson" / "cifar10_ddpmpp.py"
TOY_CONFIG = REPO / "configs" / "poisson" / "toy2d.py"
CPU = ["--batch_size", "64", "--device", "cpu", "--quiet"]


def _digits_split(split):
    """The digits config's split as float NCHW in [0, 1], read straight from the data layer."""
    from pfgm import run_utils
    from pfgm.datasets import get_dataset
    config = run_utils.load_config_file(DIGITS_CONFIG)
    return torch.cat(list(get_dataset(config).split_batches(split, 500))).numpy()


def _write_fake_cifar_archive(path, per_batch=8, seed=0):
    """A tiny cifar-10-python.tar.gz (as tests/test_images_data.py builds it): 5 train batches and a test
    batch of `per_batch` random images each. Returns {batch name: (per_batch, 3072) uint8}."""
    import io
    import pickle
    import tarfile
    rng = np.random.default_rng(seed)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    arrays = {name: rng.integers(0, 256, size=(per_batch, 3072), dtype=np.uint8) for name in names}
    with tarfile.open(path, "w:gz") as tar:
        for name, data in arrays.items():
            raw = pickle.dumps({b"batch_label": name.encode(), b"labels": [0] * per_batch, b"data": data},
                               protocol=2)
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(raw)
            tar.addfile(info, io.BytesIO(raw))
    return arrays


def test_config_images_are_rounded_rgb_batches_in_order():
    images = sources.config_images(DIGITS_CONFIG, "test", batch_size=100)
    assert sources.source_kind(DIGITS_CONFIG) == "config"
    assert len(images) == 297 and len(sources.config_images(DIGITS_CONFIG)) == 1500
    batches = list(images)
    assert [b.shape for b in batches] == [(100, 8, 8, 3)] * 2 + [(97, 8, 8, 3)]
    got = np.concatenate(batches)
    assert got.dtype == np.uint8
    expected = np.rint(_digits_split("test").transpose(0, 2, 3, 1) * 255).astype(np.uint8)  # grey, NHWC
    np.testing.assert_array_equal(got, np.repeat(expected, 3, axis=-1))
    assert got.max() == 255 and (got[..., 0] == got[..., 2]).all()
    with pytest.raises(ValueError, match="split must be"):
        sources.config_images(DIGITS_CONFIG, "valid")


def test_cli_digits_config_matches_its_images_as_samples(cli, tmp_path, capsys):
    np.savez(tmp_path / "train.npz", samples=_digits_split("train"))  # NCHW floats, rounded on load
    from_config, from_samples = tmp_path / "config_stats.npz", tmp_path / "samples_stats.npz"
    assert cli.main(["stats", str(DIGITS_CONFIG), "-o", str(from_config), *CPU], model=stand_in) == 0
    assert "N=1500" in capsys.readouterr().out
    assert cli.main(["stats", str(tmp_path / "train.npz"), "-o", str(from_samples), *CPU], model=stand_in) == 0
    (mu1, s1), (mu2, s2) = sources.load_statistics(from_config), sources.load_statistics(from_samples)
    np.testing.assert_allclose(mu1, mu2, rtol=1e-12)
    np.testing.assert_allclose(s1, s2, rtol=1e-10)
    assert cli.main(["fid", str(DIGITS_CONFIG), str(from_samples), *CPU], model=stand_in) == 0
    assert abs(_fid_value(capsys.readouterr().out)) < 1e-8

    test_stats = tmp_path / "test_stats.npz"
    assert cli.main(["stats", str(DIGITS_CONFIG), "--split", "test", "-o", str(test_stats), *CPU],
                    model=stand_in) == 0
    assert "N=297" in capsys.readouterr().out
    mu3, s3 = sources.load_statistics(test_stats)
    assert not np.allclose(mu3, mu1)
    mu4, _ = sources.source_statistics(DIGITS_CONFIG, stand_in, split="test", device="cpu", progress=False)
    np.testing.assert_allclose(mu4, mu3, rtol=1e-12)
    assert cli.main(["stats", str(DIGITS_CONFIG), "-o", str(tmp_path / "head.npz"), "--num_samples", "40", *CPU],
                    model=stand_in) == 0
    assert "N=40" in capsys.readouterr().out
    head = stand_in(torch.from_numpy(np.rint(_digits_split("train")[:40] * 255).astype(np.uint8)).repeat(1, 3, 1, 1))[0]
    np.testing.assert_allclose(sources.load_statistics(tmp_path / "head.npz")[0], head.double().mean(0).numpy(),
                               rtol=1e-6)
    assert cli.main(["stats", str(DIGITS_CONFIG), "--split", "test", "--num_samples", "298",
                     "-o", str(tmp_path / "too_many.npz"), *CPU], model=stand_in) == 1
    assert "298 samples requested but only 297" in capsys.readouterr().err
    assert not (tmp_path / "too_many.npz").exists()


def test_cli_cifar10_config_reads_the_archive(cli, tmp_path, capsys):
    archive = tmp_path / "cifar-10-python.tar.gz"
    arrays = _write_fake_cifar_archive(archive)
    train = np.concatenate([arrays[f"data_batch_{i}"] for i in range(1, 6)]).reshape(-1, 3, 32, 32)
    np.savez(tmp_path / "train.npz", samples=train)  # uint8 NCHW
    out = tmp_path / "cifar_stats.npz"
    assert cli.main(["stats", str(CIFAR_CONFIG), "--data_root", str(archive), "-o", str(out), *CPU],
                    model=stand_in) == 0
    assert "N=40" in capsys.readouterr().out
    mu, sigma = sources.load_statistics(out)
    mu2, sigma2 = sources.source_statistics(tmp_path / "train.npz", stand_in, device="cpu", progress=False)
    np.testing.assert_allclose(mu, mu2, rtol=1e-12)
    np.testing.assert_allclose(sigma, sigma2, rtol=1e-10)
    test = arrays["test_batch"].reshape(-1, 3, 32, 32)
    feats, _ = sources.source_activations(CIFAR_CONFIG, stand_in, split="test", data_root=archive, device="cpu",
                                      progress=False)
    np.testing.assert_allclose(feats, stand_in(torch.from_numpy(test))[0].numpy(), rtol=1e-6)


def test_cli_config_source_errors(cli, tmp_path, capsys):
    out = tmp_path / "stats.npz"

    def fails(*argv, match):
        assert cli.main(["stats", *map(str, argv), "-o", str(out), *CPU], model=stand_in) == 1
        err = capsys.readouterr().err
        assert err.startswith("fid.py: error: ") and err.count("\n") == 1, err
        for part in match:
            assert part in err, err
        assert not out.exists()

    fails(TOY_CONFIG, match=[str(TOY_CONFIG), "data.dataset 'checkerboard'", "not an image data set"])
    missing = tmp_path / "nowhere" / "cifar-10-python.tar.gz"
    fails(CIFAR_CONFIG, "--data_root", missing, match=[str(CIFAR_CONFIG), "data.root", str(missing)])
    fails(CIFAR_CONFIG, match=["data.root", "--data_root"])  # the config's own data/cifar10 is absent
    (tmp_path / "broken.tar.gz").write_bytes(b"not an archive")
    fails(CIFAR_CONFIG, "--data_root", tmp_path / "broken.tar.gz", match=["broken.tar.gz", "CIFAR-10 archive"])
    (tmp_path / "no_config.py").write_text("X = 1\n")
    fails(tmp_path / "no_config.py", match=["no_config.py", "get_config()"])
    (tmp_path / "bad_import.py").write_text("import does_not_exist_anywhere\n")
    fails(tmp_path / "bad_import.py", match=["bad_import.py", "does_not_exist_anywhere"])
    fails(tmp_path / "absent.py", match=["absent.py"])
    np.savez(out, mu=np.zeros(3), sigma=np.eye(3))  # an existing output is left untouched on error
    before = out.read_bytes()
    assert cli.main(["stats", str(TOY_CONFIG), "-o", str(out), *CPU], model=stand_in) == 1
    assert out.read_bytes() == before


def test_statistics_that_are_no_gaussian_are_refused_by_name(cli, tmp_path, capsys):
    """Issue 18 case 9: a covariance with a negative eigenvalue gave a negative FID ("-64.000000"), a
    complex mu was cut to its real part, a pool_3 of strings crashed with a traceback: each is now a
    one-line error naming the file (exit 1)."""
    good = tmp_path / "good.npz"
    np.savez(good, mu=np.zeros(4), sigma=np.eye(4))
    bad = {"negative": dict(mu=np.zeros(4), sigma=-16 * np.eye(4)),
           "asymmetric": dict(mu=np.zeros(4), sigma=np.eye(4) + np.triu(np.ones((4, 4)), 1)),
           "complex_mu": dict(mu=np.array([1 + 2j, 0, 0, 0]), sigma=np.eye(4)),
           "string_pool": dict(pool_3=np.array([["a"] * 4] * 5))}
    for name, arrays in bad.items():
        np.savez(tmp_path / f"{name}.npz", **arrays)
        assert cli.main(["fid", str(good), str(tmp_path / f"{name}.npz")], model=stand_in) == 1, name
        out, err = capsys.readouterr()
        assert "FID:" not in out and err.startswith("fid.py: error: ") and f"{name}.npz" in err, (name, err)
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    with pytest.raises(ValueError, match="positive semi-definite"):
        fid.frechet_distance(np.zeros(4), np.eye(4), np.zeros(4), -16 * np.eye(4))
