"""Command line: absl flags -> config -> train or evaluate. No logic lives here.

  python -m pfgm.main --config configs/poisson/toy2d.py --workdir runs/toy2d --mode train
  python -m pfgm.main --config configs/poisson/toy2d.py --workdir runs/toy2d --mode eval \
      --config.sampling.ode_solver=euler --config.sampling.N=50
"""
import os
import signal
import sys

from pfgm import stop


def mode_flag(argv):
    """The value of the last --mode flag in `argv` (absl's spellings: --mode X, --mode=X, -mode X, -mode=X),
    None without one; read before absl parses the flags, from the flag itself, never from any word."""
    mode = None
    for i, word in enumerate(argv[1:], 1):
        if word == "--":
            break
        for name in ("--mode", "-mode"):
            if word == name and i + 1 < len(argv):
                mode = argv[i + 1]
            elif word.startswith(name + "="):
                mode = word[len(name) + 1:]
    return mode


def _note_stop_signals_during_start_up():
    """A SIGTERM or Ctrl-C during a training's start-up ends the run cleanly at its first step (exit 0);
    a second one ends the process at once (`pfgm.stop`)."""
    if mode_flag(sys.argv) == "train":
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, stop.request)


if __name__ == "__main__":
    _note_stop_signals_during_start_up()  # before the slow imports below

from absl import app, flags  # noqa: E402
from ml_collections import config_flags  # noqa: E402

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "Training/evaluation config file.", lock_config=True)
flags.DEFINE_string("workdir", None, "Folder for checkpoints, samples and logs.")
flags.DEFINE_enum("mode", None, ["train", "eval"], "Train (or resume) or evaluate.")
flags.DEFINE_string("eval_folder", "eval", "Subfolder of the workdir for evaluation outputs.")
flags.mark_flags_as_required(["config", "workdir", "mode"])


def _fail(message):
    print(f"pfgm: error: {message}", file=sys.stderr)
    sys.exit(2)


def check_workdir(workdir, mode):
    """A clear error, before any work, for a --workdir that cannot serve (a file, unwritable, missing)."""
    if os.path.exists(workdir) and not os.path.isdir(workdir):
        _fail(f"--workdir {workdir!r} is a file, not a folder")
    if mode == "eval" and not os.path.isdir(workdir):
        _fail(f"--workdir {workdir!r} does not exist: train first (--mode train)")
    probe = workdir
    while not os.path.exists(probe):  # the nearest existing parent must let us create the folder
        probe = os.path.dirname(os.path.abspath(probe))
    if not os.access(probe, os.W_OK | os.X_OK):
        _fail(f"--workdir {workdir!r}: {probe!r} is not writable")


def main(argv):
    del argv
    from pfgm import checkpoint, config_checks, datasets, evaluate, run_utils, train, workdir

    check_workdir(FLAGS.workdir, FLAGS.mode)
    folder = os.path.normpath(FLAGS.eval_folder)
    if os.path.isabs(folder) or folder in (".", "..") or folder.startswith(".." + os.sep):
        _fail(f"--eval_folder {FLAGS.eval_folder!r} must be a sub-folder of --workdir (a relative path, not the workdir itself)")
    try:
        run_utils.set_num_threads(config_checks.number(FLAGS.config, "num_threads", low=0, integer=True))
        if FLAGS.mode == "train":
            train.train(FLAGS.config, FLAGS.workdir)
        else:
            evaluate.evaluate(FLAGS.config, FLAGS.workdir, FLAGS.eval_folder)
    except (config_checks.ConfigError, datasets.DataError, checkpoint.CheckpointError, FloatingPointError,
            workdir.WorkdirBusy, workdir.WorkdirError) as e:
        _fail(e)
    except OSError as e:  # EACCES, a full disk, a name too long: every write is atomic, so nothing is lost
        where = e.filename or FLAGS.workdir
        _fail(f"{where}: {e.strerror or e} (errno {e.errno}); files already written are intact (every write is "
              "atomic): fix this and run the same command again")
    finally:
        run_utils.finish_distributed()


def parse_flags(argv):
    """absl's parser, with a bad `--config.key=value` reported as one line instead of a traceback."""
    try:
        args = FLAGS(argv)
        FLAGS.config.keys()  # ml_collections reports a missing or broken config file only on first use
        return args
    except Exception as e:  # noqa: BLE001 - any failure to read the flags or the config file is a usage error
        _fail(f"bad flag or config file in {' '.join(argv[1:])!r}: {type(e).__name__}: {str(e).strip()}")


def run():
    _note_stop_signals_during_start_up()  # the console script `pfgm` enters here
    app.run(main, flags_parser=parse_flags)


if __name__ == "__main__":
    run()
