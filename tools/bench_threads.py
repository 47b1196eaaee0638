"""Training speed against the number of CPU threads (config.num_threads), side by side.

Each variant trains STEPS steps of a shipped config (no snapshots, a temporary workdir) in its own
process, after torch.set_num_threads(N), and reports wall and CPU time; --busy adds a busy loop on one
core for the whole run, as another job on a shared machine would.

  python tools/bench_threads.py                                  # toy quick start, 1 and 2 threads
  python tools/bench_threads.py --config poisson/digits_ddpmpp --steps 50 --threads 1 2 --busy
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def child(name, threads, steps):
    import torch

    from pfgm import train
    from pfgm.run_utils import load_config_file

    torch.set_num_threads(threads)
    config = load_config_file(os.path.join(ROOT, "configs", f"{name}.py"))
    config.device = "cpu"
    config.training.update(n_iters=steps, snapshot_freq=steps, snapshot_freq_for_preemption=steps, log_freq=steps,
                           eval_freq=10**9, snapshot_sampling=False)
    with tempfile.TemporaryDirectory() as work:
        trainer = train.Trainer(config, work)
        t0, r0 = time.time(), resource.getrusage(resource.RUSAGE_SELF)
        trainer.run()
        r1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime
    print(json.dumps(dict(wall=time.time() - t0, cpu=cpu)))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="poisson/toy2d", help="configs/<NAME>.py (default poisson/toy2d)")
    p.add_argument("--steps", type=int, default=400)
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--busy", action="store_true", help="a busy loop on one core during the runs")
    p.add_argument("--_child", type=int, default=None, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a._child is not None:
        return child(a.config, a._child, a.steps)
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if a.busy else None
    try:
        print(f"{a.config}, {a.steps} training steps on the CPU{', one core kept busy' if a.busy else ''}; "
              f"load average before: {os.getloadavg()[0]:.1f}\n")
        print("| threads | wall (s) | CPU time (s) |")
        print("|---|---|---|")
        results = {}
        for n in a.threads:
            env = dict(os.environ, OMP_NUM_THREADS=str(n), MKL_NUM_THREADS=str(n))
            r = subprocess.run([sys.executable, __file__, "--config", a.config, "--steps", str(a.steps),
                                "--_child", str(n)], capture_output=True, text=True, env=env)
            if r.returncode != 0:
                print(f"| {n} | failed: {(r.stderr.strip().splitlines() or ['?'])[-1]} | |")
                continue
            results[n] = json.loads(r.stdout.strip().splitlines()[-1])
            print(f"| {n} | {results[n]['wall']:.1f} | {results[n]['cpu']:.1f} |", flush=True)
    finally:
        if busy is not None:
            busy.kill()
    if len(results) > 1:
        base = min(results)
        print()
        for n in sorted(results):
            if n != base:
                print(f"{n} threads / {base}: wall {results[n]['wall'] / results[base]['wall']:.2f}x, "
                      f"CPU {results[n]['cpu'] / results[base]['cpu']:.2f}x")


if __name__ == "__main__":
    main()
