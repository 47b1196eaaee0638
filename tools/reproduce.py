"""Reproduce the paper's sample-quality / speed tables (the logic lives in experiments/).

  python tools/reproduce.py TABLE --workdir DIR [--scale gpu|cpu] [flags]

TABLE: cifar10, euler, weak, celeba64, bedroom, pfgmpp, pfgmpp_ffhq64 (gpu scale); cifar10, euler, pc, weak, convergence,
toy, pfgmpp, pfgmpp_toy, pfgmpp_convergence, pfgmpp_songunet[_convergence], conditional, conditional_convergence,
conditional_toy (cpu scale: 8x8 digits and 2-D toy data, trained here); several joined by commas;
or all. Checkpoints are read from DIR/<model>/checkpoints/; at
the cpu scale missing ones are trained (--n_iters for every model alike). Results are cached per
(checkpoint, sampling settings, number of samples) under DIR/<model>/reproduce/, so a second run only prints.
Writes DIR/<table>_<scale>.md, .csv, .tex and, where useful, DIR/<table>_<scale>_quality_vs_nfe.png.

  OMP_NUM_THREADS=1 python tools/reproduce.py all --scale cpu --workdir runs/study_cpu --n_iters 6000 \
      --report docs/reproduce_cpu.md
  OMP_NUM_THREADS=1 python tools/reproduce.py pfgmpp_toy,pfgmpp --scale cpu --workdir runs/study_cpu \
      --n_iters 6000 --toy_n_iters 10000 --report docs/pfgmpp_cpu.md
  OMP_NUM_THREADS=1 python tools/reproduce.py pfgmpp_songunet,pfgmpp_songunet_convergence --scale cpu \
      --workdir runs/pfgmpp_songunet_cpu --n_iters 6000 --report docs/pfgmpp_songunet_cpu.md
  python tools/reproduce.py cifar10 --scale cpu --workdir runs/reproduce_cpu --n_iters 600 --bpd   # + bits/dim
  python tools/reproduce.py toy --scale cpu --workdir runs/toy_rows --models toy_pfgm \
      --model_dir toy_pfgm=runs/toy2d        # PFGM's 9 toy rows from the quick start's model, nothing trained
  python tools/reproduce.py cifar10 --workdir runs/paper --fid_stats_cifar10 cifar10_stats.npz \
      --inception_weights pt_inception-2015-12-05-6726825d.pth
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "Folder holding DIR/<model>/checkpoints and the outputs.")
flags.DEFINE_enum("scale", "gpu", ["gpu", "cpu"], "gpu: the paper's tables; cpu: the digits/toy study.")
flags.DEFINE_integer("n_iters", None, "cpu: training steps of every digits model (the same for all).")
flags.DEFINE_integer("toy_n_iters", None, "cpu: training steps of every toy model (default: the config's).")
flags.DEFINE_integer("num_samples", None, "Samples per row (default 50000 gpu, 500 cpu).")
flags.DEFINE_integer("toy_num_samples", 5000, "cpu: samples per toy row (MMD's noise falls with n).")
flags.DEFINE_integer("batch_size", None, "Samples per sampler call (default: all at once).")
flags.DEFINE_float("rk45_tol", 1e-3, "cpu: RK45 rtol = atol of every method.")
flags.DEFINE_bool("train", None, "Train missing models (default: yes at cpu scale, no at gpu scale).")
flags.DEFINE_string("device", None, "Override config.device (cpu, cuda).")
flags.DEFINE_string("inception_weights", "", "FID Inception weights (pt_inception-2015-12-05-6726825d.pth).")
flags.DEFINE_string("fid_stats_cifar10", "", "FID statistics .npz of the CIFAR-10 training set.")
flags.DEFINE_string("fid_stats_celeba64", "", "FID statistics .npz of CelebA 64.")
flags.DEFINE_string("fid_stats_bedroom", "", "FID statistics .npz of LSUN bedroom 256.")
flags.DEFINE_string("fid_stats_ffhq64", "", "FID statistics .npz of FFHQ 64 (e.g. EDM's fid-refs/ffhq-64x64.npz).")
flags.DEFINE_bool("bpd", False, "Also the bits/dim of each model on the test split (probability-flow ODE).")
flags.DEFINE_integer("bpd_num_samples", 0, "Test images for bits/dim (0: the whole split).")
flags.DEFINE_integer("bpd_repeats", None, "Passes over them, fresh dequantization and probes (default 5 gpu, 1 cpu).")
flags.DEFINE_float("bpd_tol", 1e-5, "RK45 rtol = atol of the likelihood ODE.")
flags.DEFINE_string("report", None, "Also write every table of this run, with its plots, to this Markdown page "
                    "(e.g. docs/reproduce_cpu.md; the plots are copied beside it).")
flags.DEFINE_integer("snapshot_every", 1000, "cpu: checkpoint every this many training steps (the convergence "
                     "table evaluates each).")
flags.DEFINE_list("models", None, "Only the rows of these models (e.g. toy_pfgm); the others are neither trained "
                  "nor evaluated.")
flags.DEFINE_multi_string("model_dir", None, "MODEL=DIR: read MODEL's checkpoints from the run DIR instead of "
                          "DIR/<model> (e.g. toy_pfgm=runs/toy2d, the quick start's); such a model is never trained.")
flags.mark_flags_as_required(["workdir"])


def main(argv):
    from experiments import runner, tables
    from pfgm import workdir
    if len(argv) != 2:
        print(f"usage: reproduce.py TABLE --workdir DIR [--scale gpu|cpu]; TABLE in "
              f"{tables.table_names(FLAGS.scale) + ['all']}", file=sys.stderr)
        return 2
    command = "python tools/reproduce.py " + " ".join(sys.argv[1:])
    t0 = time.time()
    try:
        model_dirs = {}
        for item in FLAGS.model_dir or []:
            model, sep, folder = item.partition("=")
            if not sep or not model or not folder:
                raise ValueError(f"--model_dir {item!r}: expected MODEL=DIR, e.g. toy_pfgm=runs/toy2d")
            model_dirs[model] = folder
        out = runner.run_table(
            argv[1], FLAGS.workdir, command=command, scale=FLAGS.scale, n_iters=FLAGS.n_iters,
            toy_n_iters=FLAGS.toy_n_iters, num_samples=FLAGS.num_samples,
            toy_num_samples=FLAGS.toy_num_samples, batch_size=FLAGS.batch_size,
            rk45_tol=FLAGS.rk45_tol, train=FLAGS.train, device=FLAGS.device,
            inception_weights=FLAGS.inception_weights, fid_stats_cifar10=FLAGS.fid_stats_cifar10,
            fid_stats_celeba64=FLAGS.fid_stats_celeba64, fid_stats_bedroom=FLAGS.fid_stats_bedroom,
            fid_stats_ffhq64=FLAGS.fid_stats_ffhq64,
            bpd=FLAGS.bpd, bpd_num_samples=FLAGS.bpd_num_samples, bpd_repeats=FLAGS.bpd_repeats,
            bpd_tol=FLAGS.bpd_tol, report=FLAGS.report, snapshot_every=FLAGS.snapshot_every,
            models=FLAGS.models, model_dirs=model_dirs,
            log=lambda m: print(f"{time.strftime('%H:%M:%S')} {m}", flush=True))
    except (ValueError, workdir.WorkdirBusy) as e:  # bad input, or a model's workdir busy with a training
        print(f"reproduce: error: {e}", file=sys.stderr)
        return 2
    for name, (md, files, _) in out.items():
        print("\n" + md)
        print("wrote " + ", ".join(files))
    print(f"\ntotal wall time {time.time() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    app.run(main)
