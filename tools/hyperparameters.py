"""Print PFGM's M, z_max and upper_norm from the appendix rule (App. B.1/B.2).

  python tools/hyperparameters.py --data_norm 30 --data_dim 3072          # CIFAR-10: M=287
  python tools/hyperparameters.py --config configs/poisson/digits_ddpmpp.py # norm and dim from the data

With --config the data norm is the mean L2 norm of up to --num_samples training samples in model
space (after data.centered scaling), and the dimension is that of one sample.
"""
import os
import sys

from absl import app, flags
from ml_collections import config_flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

FLAGS = flags.FLAGS
flags.DEFINE_float("data_norm", None, "Average L2 norm of the (scaled) data.")
flags.DEFINE_integer("data_dim", None, "Data dimension N.")
flags.DEFINE_float("sigma_end", 0.01, "Base scale of the perturbation kernel.")
flags.DEFINE_float("tau", 0.03, "Growth rate of the perturbation kernel.")
flags.DEFINE_integer("num_samples", 10000, "Samples used to measure the data norm with --config.")
config_flags.DEFINE_config_file("config", None, "Measure norm and dimension on this config's data set.")


def measure(config, n):
    import torch

    from pfgm import datasets

    ds = datasets.get_dataset(config)
    scaler = datasets.data_scaler(config)
    batch = scaler(next(ds.train_batches(min(n, getattr(ds, "num_train", n)), torch.Generator().manual_seed(0))))
    flat = batch.reshape(len(batch), -1).double()
    return flat.norm(dim=1).mean().item(), flat.shape[1]


def main(argv):
    from pfgm import config_checks, datasets, poisson

    def fail(message):
        print(f"hyperparameters.py: error: {message}", file=sys.stderr)
        return 2

    norm, dim = FLAGS.data_norm, FLAGS.data_dim
    if FLAGS.config is not None:
        try:
            m_norm, m_dim = measure(FLAGS.config, FLAGS.num_samples)
        except (datasets.DataError, config_checks.ConfigError, ValueError, OSError) as e:
            return fail(f"--config: {e}")
        norm, dim = norm or m_norm, dim or m_dim
        print(f"data set {FLAGS.config.data.dataset}: mean norm {m_norm:.4f}, dimension {m_dim}")
    if norm is None or dim is None:
        return fail("give --data_norm and --data_dim, or --config")
    try:
        hp = poisson.hyperparameters(norm, dim, FLAGS.sigma_end, FLAGS.tau)
    except ValueError as e:
        return fail(e)
    print(f"data_norm={norm:g} data_dim={dim} sigma_end={FLAGS.sigma_end:g} tau={FLAGS.tau:g}")
    print(f"M = {hp['M']}")
    print(f"z_max = {hp['z_max']:.4f}")
    print(f"upper_norm = {hp['upper_norm']:.4f}")
    if dim < 50:
        print(f"note: in {dim} dimensions the prior radius is heavy-tailed; upper_norm={hp['upper_norm']:.3g} clips "
              f"{100 * (1 - poisson.prior_radius_cdf(hp['upper_norm'], dim, hp['z_max'])):.0f}% of it "
              "(consider ~100 z_max, as configs/poisson/toy2d.py does)")
    return 0


if __name__ == "__main__":
    app.run(lambda argv: sys.exit(main(argv)))
