"""FID / Inception Score from the command line (the logic lives in pfgm.evaluation.fid and .sources).

    python tools/fid.py stats DATA -o stats.npz [--weights PATH] [--batch_size 50] [--num_samples N] [--is]
                              [--split train|test] [--data_root PATH]
    python tools/fid.py fid A B [--weights PATH] [--batch_size 50] [--num_samples N] [--is]
                                [--split train|test] [--data_root PATH] [--uint8 nearest|truncate|round]

DATA, A and B are image folders, samples .npz files (uint8 NHWC, or floats in [0, 1]: the samples.npz of
`--mode eval` as it is; values outside [0, 1] are clipped with a note, as the eval's FID does), statistics .npz
files (mu/sigma, or score_sde's pool_3) or config files (.py) whose image data set is read directly: its
--split (train, the FID convention, or test), with data.root replaced by --data_root when given, e.g.

    python tools/fid.py stats configs/poisson/cifar10_ddpmpp.py --data_root cifar-10-python.tar.gz -o cifar10_stats.npz
    python tools/fid.py stats configs/poisson/digits_ddpmpp.py --split test -o digits_test_stats.npz

Float samples become uint8 by --uint8: each paper's protocol is the config's eval.uint8 ('truncate' for
the PFGM and score-SDE tables, 'round' for PFGM++ / EDM). EDM's reference statistics (fid-refs/*.npz, keys
mu and sigma) are read as they are.

`--is` also prints the Inception Score (10 splits, and the single
split of TF-GAN/score_sde) of every source that has samples. The FID Inception weights
(pt_inception-2015-12-05-6726825d.pth) come from --weights, $PFGM_INCEPTION_WEIGHTS or
~/.cache/pfgm/; they are never downloaded.
"""
import argparse
import sys
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pfgm.evaluation import fid as fidlib  # noqa: E402
from pfgm.evaluation import sources  # noqa: E402
from pfgm.datasets import DataError  # noqa: E402
from pfgm.images import UINT8_MODES  # noqa: E402


def _parser():
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--weights", metavar="PATH", default=None,
                        help="FID Inception weights file (default: $PFGM_INCEPTION_WEIGHTS, then ~/.cache/pfgm/)")
    common.add_argument("--batch_size", "--batch-size", type=int, default=50, help="images per forward pass")
    common.add_argument("--num_samples", "--num-samples", type=int, default=None,
                        help="use the first N samples of each sample source (default: all)")
    common.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    common.add_argument("--is", dest="inception_score", action="store_true",
                        help="also print the Inception Score of sample sources")
    common.add_argument("--splits", type=int, default=10, help="Inception Score splits (default 10)")
    common.add_argument("--quiet", action="store_true", help="no progress bar")
    common.add_argument("--data_root", "--data-root", metavar="PATH", default=None,
                        help="config sources: data set location, replaces config.data.root (CIFAR-10's "
                             "cifar-10-python.tar.gz or cifar-10-batches-py/, an image folder)")
    common.add_argument("--uint8", choices=UINT8_MODES, default="nearest",
                        help="how float samples become uint8: 'truncate' (score_sde / PFGM tables), 'round' "
                             "(EDM / PFGM++), 'nearest' (default; exact for data); the config's eval.uint8")
    common.add_argument("--split", choices=sources.SPLITS, default="train",
                        help="config sources: the data set's split (default train)")

    parser = argparse.ArgumentParser(prog="fid.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    stats = sub.add_parser("stats", parents=[common], help="write the mu/sigma statistics of DATA")
    stats.add_argument("data", metavar="DATA")
    stats.add_argument("-o", "--output", required=True, metavar="STATS.npz")
    fid = sub.add_parser("fid", parents=[common], help="FID between two sources")
    fid.add_argument("a", metavar="A")
    fid.add_argument("b", metavar="B")
    return parser


def _evaluate(path, model, args):
    """(mu, sigma, n) of a source; prints its Inception Score when asked and available."""
    if sources.source_kind(path) == "stats":
        mu, sigma = sources.load_statistics(path)
        return mu, sigma, None, model
    if model is None and sources.source_kind(path) != "activations":
        model = sources.LazyInception(args.weights, args.device)  # loaded after the source is opened
    feats, logits = sources.source_activations(path, model, batch_size=args.batch_size, device=args.device,
                                               num_samples=args.num_samples, progress=not args.quiet,
                                               split=args.split, data_root=args.data_root, uint8=args.uint8)
    if args.inception_score:
        if logits is None:
            print(f"IS {path}: not available (no logits)")
        else:
            mean, std = fidlib.inception_score(logits, splits=args.splits)
            single, _ = fidlib.inception_score(logits, splits=1)
            print(f"IS {path}: {mean:.4f} +- {std:.4f} ({args.splits} splits), {single:.4f} (1 split), "
                  f"N={len(logits)}")
    mu, sigma = fidlib.activation_statistics(feats)
    return mu, sigma, len(feats), model


def _note(message, *args, **kwargs):
    print(f"fid.py: note: {message}", file=sys.stderr)


def main(argv=None, model=None):
    """Run the CLI. `model` injects a feature extractor in place of the Inception network (for tests)."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "stats":
            mu, sigma, n, _ = _evaluate(args.data, model, args)
            sources.save_statistics(args.output, mu, sigma)
            print(f"wrote {args.output}: mu {mu.shape}, sigma {sigma.shape}" + (f", N={n}" if n else ""))
        else:
            mu1, sigma1, n1, model = _evaluate(args.a, model, args)
            mu2, sigma2, n2, _ = _evaluate(args.b, model, args)
            value = fidlib.frechet_distance(mu1, sigma1, mu2, sigma2)
            sizes = ", ".join(f"{name} N={n}" for name, n in (("A", n1), ("B", n2)) if n)
            print(f"FID: {value:.6f}" + (f"  ({sizes})" if sizes else ""))
    except (FileNotFoundError, ValueError) as e:
        hint = " (set the data set's location with --data_root)" if (
            isinstance(e, DataError) and "data.root" in str(e) and args.data_root is None) else ""
        message = " ".join(line.strip() for line in str(e).splitlines() if line.strip())  # one line
        print(f"fid.py: error: {message}{hint}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    warnings.showwarning = _note  # notes (clipped samples, a singular covariance) as one line each
    sys.exit(main())
