"""Import a released EDM / PFGM++ network without running the code its pickle carries (pfgm/published.py).

    python tools/import_checkpoint.py SRC --workdir DIR [--data_root PATH]

SRC: EDM's network-snapshot-*.pkl or PFGM++'s training-state-*.pt (its `ema`: EDMPrecond around SongUNet).
Writes DIR/config.py and DIR/checkpoints/checkpoint_<step>.pth, then

    python -m pfgm.main --config DIR/config.py --workdir DIR --mode eval

samples from it (D read from the file: PFGM++'s D, or inf for EDM). --data_root: the data set's folder or
archive written into the config (CIFAR-10 and image folders are read by the evaluation; 8x8 digits need none).
A file that is not such a network (another class, a global other than tensors, containers and
torch_utils.persistence, a truncated file) is refused with one line naming it, exit 2, nothing written.
"""
import argparse
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pfgm import published  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("source", help="network-snapshot-*.pkl or training-state-*.pt")
    parser.add_argument("--workdir", required=True, help="folder for config.py and checkpoints/ (new or empty)")
    parser.add_argument("--data_root", default="", help="data.root of the written config")
    args = parser.parse_args(argv)
    try:
        config_path, ckpt, s = published.import_checkpoint(args.source, args.workdir, args.data_root)
    except published.PublishedError as e:
        print(f"pfgm: error: {args.source}: {e}", file=sys.stderr)
        return 2
    d = "inf (EDM, the diffusion limit)" if math.isinf(s["D"]) else s["D"]
    print(f"imported SongUNet {s['resolution']}x{s['resolution']}x{s['channels']}, label_dim {s['label_dim']}, "
          f"augment_dim {s['arch']['augment_dim']}, D = {d}, sigma_data {s['sigma_data']}\n"
          f"wrote {config_path} and {ckpt}\nsample: python -m pfgm.main --config {config_path} "
          f"--workdir {args.workdir} --mode eval")
    return 0


if __name__ == "__main__":
    sys.exit(main())
