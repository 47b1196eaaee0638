"""How much of PFGM++'s training kernel the original's clip of B to [clip, 1 - clip] moves (training.beta_clip).

    python tools/beta_clip_share.py --data_dim 2 --aug_dims 1,100,128,512,1024,2048 [--clip 1e-3] [--draws 1000000]

The radius of the perturbation is r sqrt(B / (1 - B)) with B ~ Beta(N/2, D/2); the original clips B to
[1e-3, 1 - 1e-3] in training (its loss.py), never when sampling. For each D this prints the share of draws
that the clip moves, exactly (the regularized incomplete beta function) and by drawing them by the inverse
CDF (pfgm.pfgmpp.sample_radius's way; training draws the same law from Gaussians, pfgm.pfgmpp.perturbation),
and the D at which the share below the clip passes one half.
"""
import argparse
import os
import sys

import numpy as np
import scipy.optimize
import scipy.special

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def clipped_share(data_dim, aug_dim, clip):
    """(P(B < clip), P(B > 1 - clip)) for B ~ Beta(N/2, D/2)."""
    a, b = data_dim / 2.0, aug_dim / 2.0
    return float(scipy.special.betainc(a, b, clip)), float(scipy.special.betainc(b, a, clip))


def drawn_share(data_dim, aug_dim, clip, draws, seed=0):
    """The same shares from `draws` samples of 1 - B drawn by the inverse CDF of uniforms."""
    u = np.random.default_rng(seed).random(draws)
    one_minus_b = scipy.special.betaincinv(aug_dim / 2.0, data_dim / 2.0, 1.0 - u)
    return float(np.mean(one_minus_b > 1 - clip)), float(np.mean(one_minus_b < clip))


def half_point(data_dim, clip):
    """The D at which half the draws fall below the clip (None if none in [1, 1e7])."""
    f = lambda d: clipped_share(data_dim, d, clip)[0] - 0.5  # noqa: E731
    if f(1.0) > 0 or f(1e7) < 0:
        return None
    return scipy.optimize.brentq(f, 1.0, 1e7)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data_dim", type=int, default=2)
    p.add_argument("--aug_dims", default="1,100,128,512,1024,2048")
    p.add_argument("--clip", type=float, default=1e-3)
    p.add_argument("--draws", type=int, default=1_000_000)
    args = p.parse_args(argv)
    print(f"N = {args.data_dim}, B ~ Beta(N/2, D/2) clipped to [{args.clip:g}, 1 - {args.clip:g}]")
    print("D        below (exact)  above (exact)  below (drawn)  above (drawn)")
    for d in (float(x) for x in args.aug_dims.split(",")):
        lo, hi = clipped_share(args.data_dim, d, args.clip)
        dlo, dhi = drawn_share(args.data_dim, d, args.clip, args.draws)
        print(f"{d:<8g} {lo:>13.4f}  {hi:>13.4f}  {dlo:>13.4f}  {dhi:>13.4f}")
    half = half_point(args.data_dim, args.clip)
    print("half the draws are below the clip from D = " + (f"{half:.0f}" if half else "(none in [1, 1e7])"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
