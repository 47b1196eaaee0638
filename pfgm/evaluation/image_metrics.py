"""FID and Inception Score of generated images against a statistics file, for the eval loop."""
import os

import numpy as np

from pfgm.evaluation import fid, inception, sources
from pfgm.images import to_rgb_uint8


class InceptionMetrics:
    """Callable on samples (n, C, H, W) in [0, 1]; returns {'fid', 'inception_score', 'is_std'}.

    Built before any sampling, so a missing statistics or weights file is reported at once.
    """

    def __init__(self, stats_path, weights=None, device=None, batch_size=50, uint8="nearest"):
        if not os.path.isfile(stats_path):
            raise FileNotFoundError(f"eval.fid_stats: no such file {stats_path!r} (make it with "
                                    "`python tools/fid.py stats DATA -o stats.npz`)")
        self.mu, self.sigma = sources.load_statistics(stats_path)
        self.model = inception.load_inception(weights or None, device=device)
        self.device, self.batch_size, self.uint8 = device, batch_size, uint8

    def __call__(self, samples, uint8=None):
        # generated images are clipped to the valid range, as every FID protocol does before uint8
        samples = np.clip(np.asarray(samples), 0.0, 1.0)
        if samples.shape[1] == 1:  # grey images: the Inception network wants RGB
            samples = np.repeat(samples, 3, axis=1)
        images = to_rgb_uint8(samples.transpose(0, 2, 3, 1), name="samples", mode=uint8 or self.uint8)  # eval.uint8
        feats, logits = fid.compute_activations(images, self.model, self.batch_size, self.device)
        mu, sigma = fid.activation_statistics(feats)
        out = dict(fid=fid.frechet_distance(mu, sigma, self.mu, self.sigma))
        if logits is not None:
            # 10 splits as the standard; fewer only for tiny sample sets
            out["inception_score"], out["is_std"] = fid.inception_score(logits, splits=min(10, len(logits)))
        return out
