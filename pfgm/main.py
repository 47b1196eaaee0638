"""Command line: absl flags -> config -> train or evaluate. No logic lives here.

  python -m pfgm.main --config configs/poisson/toy2d.py --workdir runs/toy2d --mode train
  python -m pfgm.main --config configs/poisson/toy2d.py --workdir runs/toy2d --mode eval \
      --config.sampling.ode_solver=euler --config.sampling.N=50
"""
import sys

from absl import app, flags
from ml_collections import config_flags

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "Training/evaluation config file.", lock_config=True)
flags.DEFINE_string("workdir", None, "Folder for checkpoints, samples and logs.")
flags.DEFINE_enum("mode", None, ["train", "eval"], "Train (or resume) or evaluate.")
flags.DEFINE_string("eval_folder", "eval", "Subfolder of the workdir for evaluation outputs.")
flags.mark_flags_as_required(["config", "workdir", "mode"])


def main(argv):
    del argv
    from pfgm import checkpoint, config_checks, datasets, evaluate, run_utils, train

    try:
        if FLAGS.mode == "train":
            train.train(FLAGS.config, FLAGS.workdir)
        else:
            evaluate.evaluate(FLAGS.config, FLAGS.workdir, FLAGS.eval_folder)
    except (config_checks.ConfigError, datasets.DataError, checkpoint.CheckpointError, FloatingPointError,
            run_utils.WorkdirBusy) as e:
        print(f"pfgm: error: {e}", file=sys.stderr)
        sys.exit(2)


def parse_flags(argv):
    """absl's parser, with a bad `--config.key=value` reported as one line instead of a traceback."""
    try:
        return FLAGS(argv)
    except (flags.Error, AttributeError, KeyError, TypeError, ValueError) as e:
        print(f"pfgm: error: bad flag in {' '.join(argv[1:])!r}: {type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(2)


def run():
    app.run(main, flags_parser=parse_flags)


if __name__ == "__main__":
    run()
