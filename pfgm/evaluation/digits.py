"""A "digits FID" that needs no download: Fréchet distance in the feature space of a small CNN
trained on scikit-learn's 8x8 digits (the training split of pfgm.datasets.digits.make_digits).

The weights ship with the package (`digits_classifier.pt`, made by tools/train_digits_classifier.py).
"""
import os

import numpy as np
import torch
from torch import nn

from pfgm.evaluation import fid

WEIGHTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "digits_classifier.pt")
FEATURE_DIM = 64


class DigitsClassifier(nn.Module):
    """(n, 1, 8, 8) in [0, 1] -> (features (n, 64), logits (n, 10))."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 32, 3, padding=1),
                                  nn.ReLU(), nn.MaxPool2d(2), nn.Flatten())
        self.hidden = nn.Sequential(nn.Linear(32 * 4 * 4, FEATURE_DIM), nn.ReLU())
        self.head = nn.Linear(FEATURE_DIM, 10)

    def forward(self, x):
        feats = self.hidden(self.conv(x))
        return feats, self.head(feats)


def digits_data():
    """(train images, train labels, held-out images, held-out labels) with make_digits' split."""
    from sklearn.datasets import load_digits

    from pfgm.datasets.digits import DIGITS_NUM_EVAL, DIGITS_SPLIT_SEED

    d = load_digits()
    images = torch.as_tensor(d.images, dtype=torch.float32).unsqueeze(1) / 16.0
    labels = torch.as_tensor(d.target)
    perm = torch.randperm(len(images), generator=torch.Generator().manual_seed(DIGITS_SPLIT_SEED))
    ev, tr = perm[:DIGITS_NUM_EVAL], perm[DIGITS_NUM_EVAL:]
    return images[tr], labels[tr], images[ev], labels[ev]


_CACHE = {}


def load_digits_classifier(path=None):
    path = path or WEIGHTS
    if path not in _CACHE:
        if not os.path.isfile(path):
            raise FileNotFoundError(f"digits classifier weights {path!r} are missing: run "
                                    "`python tools/train_digits_classifier.py`")
        model = DigitsClassifier()
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        _CACHE[path] = model.eval()
    return _CACHE[path]


@torch.no_grad()
def digits_features(images, model=None):
    """images (n, 1, 8, 8) in [0, 1] (clipped) -> (features (n, 64), logits (n, 10)) as numpy."""
    x = torch.as_tensor(np.asarray(images), dtype=torch.float32)
    if x.ndim != 4 or tuple(x.shape[1:]) != (1, 8, 8):
        raise ValueError(f"digits images must be (n, 1, 8, 8), got {tuple(x.shape)}")
    feats, logits = (model or load_digits_classifier())(x.clamp(0, 1))
    return feats.numpy().astype(np.float64), logits.numpy().astype(np.float64)


def digits_fid(samples, reference, model=None):
    """Fréchet distance between two image sets in the classifier's 64-d feature space."""
    f1, _ = digits_features(samples, model)
    f2, _ = digits_features(reference, model)
    return fid.frechet_distance(*fid.activation_statistics(f1), *fid.activation_statistics(f2))


def digits_is(samples, splits=10, model=None):
    """Inception-Score analogue with the digits classifier: (mean, std) over splits; at most 10."""
    _, logits = digits_features(samples, model)
    return fid.inception_score(logits, splits=min(splits, len(logits)))
