"""Benchmark the PFGM training target at CIFAR-10 width against the original broadcast formulation.

For each reference-batch size L it measures, side by side in one run and each in a fresh process
(so peak memory is its own):
  pfgm       pfgm.poisson.field_target (matrix products, O(B·L) memory)
  broadcast  the original code's formulation with (B, L, N+1) difference tensors
  matmul     the floor: the two matrix products alone, (B, N)·(N, L) and (B, L)·(L, N)
and prints time and extra peak memory, with the ratios the project's goals are stated in.

  python tools/bench_field.py                 # B=128, L=1024 and 4096, N=3072
  python tools/bench_field.py --L 1024 --repeats 3

Defaults suit a shared machine: one thread per child (two threads that wait on each other lose most
when another job holds a core) and the median of 21 timed calls, or of as many as fit in --max_seconds
(at least 3) for the slow broadcast; with 5 calls a busy neighbour moved one figure from 14 to 254 ms.
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def broadcast_target(x, data, gamma):
    """The original formulation (its losses.py): two (B, L, N+1) broadcasts and their product."""
    import torch

    n = data.shape[1]
    real = torch.cat([data, torch.zeros(len(data), 1, dtype=data.dtype, device=data.device)], 1)
    dist = (x.unsqueeze(1) - real).norm(dim=-1)
    ratio = (dist.min(dim=1, keepdim=True).values / (dist + 1e-7)) ** (n + 1)
    coeff = ratio / (ratio.sum(dim=1, keepdim=True) + 1e-7)
    diff = -(x.unsqueeze(1) - real)
    v = (coeff.unsqueeze(-1) * diff).sum(1)
    return n**0.5 * v / (v.norm(dim=1, keepdim=True) + gamma)


def current_rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def child(variant, B, L, N, repeats, device, max_seconds):
    import torch

    from pfgm import poisson

    dev = torch.device(device)
    g = torch.Generator(device=dev).manual_seed(0)
    data = torch.rand(L, N, generator=g, device=dev) * 2 - 1
    x = poisson.perturb(data[:B], 291, 0.03, 0.01, generator=g)
    w = torch.softmax(torch.randn(B, L, generator=g, device=dev), 1)
    fns = {
        "pfgm": lambda: poisson.field_target(x, data, 5.0),
        "broadcast": lambda: broadcast_target(x, data, 5.0),
        "matmul": lambda: (x[:, :N] @ data.t(), w @ data),
    }
    fn = fns[variant]
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    with torch.no_grad():
        base = current_rss()
        if dev.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
            base_cuda = torch.cuda.memory_allocated()
        fn()  # warm-up; its peak is the peak
        sync()
        if dev.type == "cuda":
            extra = torch.cuda.max_memory_allocated() - base_cuda
        else:
            extra = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - base
        times, start = [], time.perf_counter()
        while len(times) < repeats and (len(times) < 3 or time.perf_counter() - start < max_seconds):
            t = time.perf_counter()
            fn()
            sync()
            times.append(time.perf_counter() - t)
    times.sort()
    print(json.dumps(dict(time=times[len(times) // 2], calls=len(times), extra_bytes=max(extra, 0))))


def run_child(variant, B, L, N, repeats, device, threads, max_seconds):
    cmd = [sys.executable, __file__, "--_child", variant, "--B", str(B), "--L", str(L), "--N", str(N),
           "--repeats", str(repeats), "--device", device, "--max_seconds", str(max_seconds)]
    env = dict(os.environ)
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if r.returncode != 0:
        return None, (r.stderr.strip().splitlines() or ["killed (out of memory?)"])[-1]
    return json.loads(r.stdout.strip().splitlines()[-1]), None


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--B", type=int, default=128)
    p.add_argument("--L", type=int, nargs="+", default=[1024, 4096])
    p.add_argument("--N", type=int, default=3072)
    p.add_argument("--repeats", type=int, default=21, help="timed calls per variant (the median is reported)")
    p.add_argument("--max_seconds", type=float, default=20.0,
                   help="stop timing a variant after this long (at least 3 calls)")
    p.add_argument("--device", default=None)
    p.add_argument("--threads", type=int, default=1,
                   help="OMP_NUM_THREADS for the children (default 1; 0: torch's default, all cores)")
    p.add_argument("--_child", default=None, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.device is None:
        import torch

        a.device = "cuda" if torch.cuda.is_available() else "cpu"
    if a._child:
        return child(a._child, a.B, a.L[0], a.N, a.repeats, a.device, a.max_seconds)

    print(f"field target, B={a.B}, N={a.N}, float32, device {a.device}, threads {a.threads or 'default'}, "
          f"median of up to {a.repeats} calls ({a.max_seconds:g} s cap)\n")
    print("| L | variant | time (ms) | calls | extra peak memory (MiB) |")
    print("|---|---|---|---|---|")
    summary = []
    for L in a.L:
        res = {}
        for variant in ("pfgm", "matmul", "broadcast"):
            r, err = run_child(variant, a.B, L, a.N, a.repeats, a.device, a.threads, a.max_seconds)
            res[variant] = r
            if r is None:
                print(f"| {L} | {variant} | failed: {err} | | |")
            else:
                print(f"| {L} | {variant} | {1e3 * r['time']:.1f} | {r['calls']} | {r['extra_bytes'] / 2**20:.1f} |")
        summary.append((L, res))
    print()
    for L, res in summary:
        p_, m, b = res["pfgm"], res["matmul"], res["broadcast"]
        if p_ and m:
            print(f"L={L}: pfgm / matmul floor time = {p_['time'] / m['time']:.2f}x (goal <= 2x)")
        if p_ and b:
            print(f"L={L}: broadcast / pfgm time = {b['time'] / p_['time']:.1f}x (goal >= 50x), "
                  f"extra memory = {b['extra_bytes'] / max(p_['extra_bytes'], 1):.1f}x (goal >= 20x)")


if __name__ == "__main__":
    main()
