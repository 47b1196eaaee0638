"""The FID Inception v3 network (the TF 2015-12-05 graph as ported by pytorch-fid), in plain PyTorch.

Parameter names and shapes equal those of pytorch-fid's `pt_inception-2015-12-05-6726825d.pth`, so that
file loads with `strict=True`. The FID-specific details of that port are kept: average pools in the
Mixed_5*/6b-e/7b blocks ignore padding (`count_include_pad=False`), Mixed_7c pools with a max pool, and
`fc` has 1008 outputs.

Preprocessing follows pytorch-fid: uint8 images -> [0, 1] floats -> bilinear resize to 299x299
(`align_corners=False`, no antialias) -> 2x - 1.

The weights are read from a local file only (never downloaded): an explicit path, else the file named by
$PFGM_INCEPTION_WEIGHTS, else `~/.cache/pfgm/pt_inception-2015-12-05-6726825d.pth`.
"""
import hashlib
import os
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "InceptionV3FID", "load_inception", "resolve_weights_path", "default_weights_path", "preprocess",
    "WEIGHTS_NAME", "WEIGHTS_URL", "WEIGHTS_ENV", "FEATURE_DIM", "NUM_CLASSES",
]

WEIGHTS_NAME = "pt_inception-2015-12-05-6726825d.pth"
WEIGHTS_URL = ("https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
               "pt_inception-2015-12-05-6726825d.pth")
WEIGHTS_ENV = "PFGM_INCEPTION_WEIGHTS"
WEIGHTS_SHA256_PREFIX = "6726825d"
FEATURE_DIM = 2048
NUM_CLASSES = 1008
INPUT_SIZE = 299


class BasicConv2d(nn.Module):
    """Conv (no bias) -> BatchNorm (eps 1e-3) -> ReLU."""

    def __init__(self, in_ch, out_ch, **conv_kwargs):
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, bias=False, **conv_kwargs)
        self.bn = nn.BatchNorm2d(out_ch, eps=0.001)

    def forward(self, x):
        return F.relu(self.bn(self.conv(x)))


def _avg_pool(x):
    # TF's average pool ignores the zero padding.
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)


class MixedA(nn.Module):
    """35x35 block (Mixed_5b/5c/5d): 1x1, 5x5, double 3x3 and pooled branches."""

    def __init__(self, in_ch, pool_features):
        super().__init__()
        self.branch1x1 = BasicConv2d(in_ch, 64, kernel_size=1)
        self.branch5x5_1 = BasicConv2d(in_ch, 48, kernel_size=1)
        self.branch5x5_2 = BasicConv2d(48, 64, kernel_size=5, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(in_ch, 64, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, kernel_size=3, padding=1)
        self.branch_pool = BasicConv2d(in_ch, pool_features, kernel_size=1)

    def forward(self, x):
        b1 = self.branch1x1(x)
        b5 = self.branch5x5_2(self.branch5x5_1(x))
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        bp = self.branch_pool(_avg_pool(x))
        return torch.cat([b1, b5, b3, bp], dim=1)


class MixedB(nn.Module):
    """35x35 -> 17x17 reduction (Mixed_6a)."""

    def __init__(self, in_ch):
        super().__init__()
        self.branch3x3 = BasicConv2d(in_ch, 384, kernel_size=3, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(in_ch, 64, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, kernel_size=3, stride=2)

    def forward(self, x):
        b3 = self.branch3x3(x)
        bd = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        bp = F.max_pool2d(x, kernel_size=3, stride=2)
        return torch.cat([b3, bd, bp], dim=1)


class MixedC(nn.Module):
    """17x17 block with factorised 7x7 convolutions (Mixed_6b..6e)."""

    def __init__(self, in_ch, c7):
        super().__init__()
        self.branch1x1 = BasicConv2d(in_ch, 192, kernel_size=1)
        self.branch7x7_1 = BasicConv2d(in_ch, c7, kernel_size=1)
        self.branch7x7_2 = BasicConv2d(c7, c7, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7_3 = BasicConv2d(c7, 192, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = BasicConv2d(in_ch, c7, kernel_size=1)
        self.branch7x7dbl_2 = BasicConv2d(c7, c7, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = BasicConv2d(c7, c7, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = BasicConv2d(c7, c7, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = BasicConv2d(c7, 192, kernel_size=(1, 7), padding=(0, 3))
        self.branch_pool = BasicConv2d(in_ch, 192, kernel_size=1)

    def forward(self, x):
        b1 = self.branch1x1(x)
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        bd = self.branch7x7dbl_1(x)
        for layer in (self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4, self.branch7x7dbl_5):
            bd = layer(bd)
        bp = self.branch_pool(_avg_pool(x))
        return torch.cat([b1, b7, bd, bp], dim=1)


class MixedD(nn.Module):
    """17x17 -> 8x8 reduction (Mixed_7a)."""

    def __init__(self, in_ch):
        super().__init__()
        self.branch3x3_1 = BasicConv2d(in_ch, 192, kernel_size=1)
        self.branch3x3_2 = BasicConv2d(192, 320, kernel_size=3, stride=2)
        self.branch7x7x3_1 = BasicConv2d(in_ch, 192, kernel_size=1)
        self.branch7x7x3_2 = BasicConv2d(192, 192, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7x3_3 = BasicConv2d(192, 192, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7x3_4 = BasicConv2d(192, 192, kernel_size=3, stride=2)

    def forward(self, x):
        b3 = self.branch3x3_2(self.branch3x3_1(x))
        b7 = self.branch7x7x3_1(x)
        for layer in (self.branch7x7x3_2, self.branch7x7x3_3, self.branch7x7x3_4):
            b7 = layer(b7)
        bp = F.max_pool2d(x, kernel_size=3, stride=2)
        return torch.cat([b3, b7, bp], dim=1)


class MixedE(nn.Module):
    """8x8 block with split 1x3/3x1 convolutions (Mixed_7b with an average pool, Mixed_7c with a max pool)."""

    def __init__(self, in_ch, pool):
        super().__init__()
        if pool not in ("avg", "max"):
            raise ValueError(f"pool must be 'avg' or 'max', got {pool!r}")
        self.pool = pool
        self.branch1x1 = BasicConv2d(in_ch, 320, kernel_size=1)
        self.branch3x3_1 = BasicConv2d(in_ch, 384, kernel_size=1)
        self.branch3x3_2a = BasicConv2d(384, 384, kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3_2b = BasicConv2d(384, 384, kernel_size=(3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = BasicConv2d(in_ch, 448, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(448, 384, kernel_size=3, padding=1)
        self.branch3x3dbl_3a = BasicConv2d(384, 384, kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = BasicConv2d(384, 384, kernel_size=(3, 1), padding=(1, 0))
        self.branch_pool = BasicConv2d(in_ch, 192, kernel_size=1)

    def forward(self, x):
        b1 = self.branch1x1(x)
        b3 = self.branch3x3_1(x)
        b3 = torch.cat([self.branch3x3_2a(b3), self.branch3x3_2b(b3)], dim=1)
        bd = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        bd = torch.cat([self.branch3x3dbl_3a(bd), self.branch3x3dbl_3b(bd)], dim=1)
        if self.pool == "avg":
            pooled = _avg_pool(x)
        else:  # the TF graph max-pools here (Mixed_7c)
            pooled = F.max_pool2d(x, kernel_size=3, stride=1, padding=1)
        bp = self.branch_pool(pooled)
        return torch.cat([b1, b3, bd, bp], dim=1)


def preprocess(images):
    """uint8 images (B,3,H,W) or (B,H,W,3) -> float32 (B,3,299,299) in [-1, 1], as pytorch-fid.

    Floating-point input is taken to be in [0, 1] already.
    """
    if not torch.is_tensor(images):
        images = torch.as_tensor(images)
    if images.ndim != 4:
        raise ValueError(f"expected a batch of images (B,3,H,W) or (B,H,W,3), got shape {tuple(images.shape)}")
    if images.shape[1] != 3:
        if images.shape[-1] != 3:
            raise ValueError(f"expected 3 colour channels (NCHW or NHWC), got shape {tuple(images.shape)}")
        images = images.permute(0, 3, 1, 2)
    if images.dtype == torch.uint8:
        x = images.float() / 255.0
    elif images.is_floating_point():
        x = images.float()
    else:
        raise TypeError(f"expected uint8 or floating-point images, got {images.dtype}")
    if x.shape[-2:] != (INPUT_SIZE, INPUT_SIZE):
        x = F.interpolate(x, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False)
    return 2.0 * x - 1.0


class InceptionV3FID(nn.Module):
    """FID Inception v3. `forward(images) -> (pool3 (B, 2048), logits (B, 1008))`.

    Args:
        logits_bias: add `fc.bias` to the logits. The default (False) gives the "unbiased" logits
            pool3 @ fc.weight^T that OpenAI's Inception Score code, TTUR and torch-fidelity use for IS.
    """

    def __init__(self, logits_bias=False):
        super().__init__()
        self.logits_bias = logits_bias
        self.Conv2d_1a_3x3 = BasicConv2d(3, 32, kernel_size=3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, kernel_size=3)
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, kernel_size=3, padding=1)
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, kernel_size=1)
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, kernel_size=3)
        self.Mixed_5b = MixedA(192, pool_features=32)
        self.Mixed_5c = MixedA(256, pool_features=64)
        self.Mixed_5d = MixedA(288, pool_features=64)
        self.Mixed_6a = MixedB(288)
        self.Mixed_6b = MixedC(768, c7=128)
        self.Mixed_6c = MixedC(768, c7=160)
        self.Mixed_6d = MixedC(768, c7=160)
        self.Mixed_6e = MixedC(768, c7=192)
        self.Mixed_7a = MixedD(768)
        self.Mixed_7b = MixedE(1280, pool="avg")
        self.Mixed_7c = MixedE(2048, pool="max")
        self.fc = nn.Linear(FEATURE_DIM, NUM_CLASSES)

    def pool3(self, x):
        """Preprocessed (B,3,299,299) input in [-1, 1] -> pool3 features (B, 2048)."""
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        for block in (self.Mixed_5b, self.Mixed_5c, self.Mixed_5d, self.Mixed_6a, self.Mixed_6b,
                      self.Mixed_6c, self.Mixed_6d, self.Mixed_6e, self.Mixed_7a, self.Mixed_7b,
                      self.Mixed_7c):
            x = block(x)
        return torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)

    def forward(self, images):
        """uint8 images (B,3,H,W) or (B,H,W,3) -> (pool3 (B, 2048), logits (B, 1008)), float32."""
        device = self.fc.weight.device
        images = images.to(device) if torch.is_tensor(images) else torch.as_tensor(images, device=device)
        x = preprocess(images)
        if device.type != "cuda":
            return self._features_and_logits(x)
        # TF32 convolutions and matmuls (evaluate turns them on for the sampler) would cost about three
        # significant digits of the features and the logits.
        previous = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
        torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
        try:
            return self._features_and_logits(x)
        finally:
            torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = previous

    def _features_and_logits(self, x):
        feats = self.pool3(x)
        return feats, F.linear(feats, self.fc.weight, self.fc.bias if self.logits_bias else None)


def default_weights_path():
    """The cache location: $XDG_CACHE_HOME/pfgm/<name>, by default ~/.cache/pfgm/<name>."""
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "pfgm" / WEIGHTS_NAME


def _missing_message(what):
    return (f"FID Inception weights not found: {what}.\n"
            f"Get {WEIGHTS_NAME} (about 91 MB, pytorch-fid's GitHub release) on a machine with network "
            f"access:\n  {WEIGHTS_URL}\n"
            f"and put it at {default_weights_path()}, or pass its path explicitly (--weights PATH), "
            f"or set ${WEIGHTS_ENV}=PATH. pfgm never downloads it.")


def resolve_weights_path(path=None):
    """The weights file: `path` if given, else $PFGM_INCEPTION_WEIGHTS, else the cache location.

    Raises FileNotFoundError naming the place looked at and where the file comes from.
    """
    if path is not None:
        path, what = Path(path).expanduser(), f"no file at the given path {path}"
    elif os.environ.get(WEIGHTS_ENV):
        path = Path(os.environ[WEIGHTS_ENV]).expanduser()
        what = f"no file at {path} (from ${WEIGHTS_ENV})"
    else:
        path = default_weights_path()
        what = f"no file at the default location {path} and ${WEIGHTS_ENV} is not set"
    if not path.is_file():
        raise FileNotFoundError(_missing_message(what))
    return path


def _sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def load_inception(weights=None, device=None, *, logits_bias=False, check_hash=True):
    """Build `InceptionV3FID`, load the weights strictly, and return it in eval mode without gradients.

    Args:
        weights: path of `pt_inception-2015-12-05-6726825d.pth`; None looks in $PFGM_INCEPTION_WEIGHTS,
            then in `default_weights_path()`.
        device: torch device; None picks CUDA when available, else CPU.
        logits_bias: see `InceptionV3FID`.
        check_hash: warn when the file's SHA-256 does not start with 6726825d.
    """
    path = resolve_weights_path(weights)
    if check_hash and not _sha256(path).startswith(WEIGHTS_SHA256_PREFIX):
        warnings.warn(f"{path}: SHA-256 does not start with {WEIGHTS_SHA256_PREFIX}; this is not the "
                      f"pytorch-fid file {WEIGHTS_NAME}, so scores may not be comparable.")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - torch raises many types for a bad file
        raise ValueError(f"{path}: could not be read as a PyTorch state_dict ({type(e).__name__}: {e})") from e
    if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
        raise ValueError(f"{path}: expected a state_dict (a dict of tensors), got {type(state).__name__}")
    model = InceptionV3FID(logits_bias=logits_bias)
    state = dict(state)
    for name, buf in model.state_dict().items():  # older saves lack BatchNorm's counter
        if name.endswith("num_batches_tracked") and name not in state:
            state[name] = torch.zeros_like(buf)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise ValueError(f"{path}: does not match the FID Inception layout:\n{e}") from e
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return model.to(device).eval().requires_grad_(False)
