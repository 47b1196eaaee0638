"""Train the small CNN behind the digits FID and write pfgm/evaluation/digits_classifier.pt.

  python tools/train_digits_classifier.py        # ~20 s on a CPU; prints the held-out accuracy

Deterministic (seed 0); trained on the training split of the digits data set only, so the held-out
split used by the samplers' evaluation stays unseen.
"""
import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from pfgm.evaluation.digits import WEIGHTS, DigitsClassifier, digits_data  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--out", default=WEIGHTS)
    a = p.parse_args()
    torch.manual_seed(0)
    xtr, ytr, xev, yev = digits_data()
    model = DigitsClassifier()
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    gen = torch.Generator().manual_seed(0)
    for epoch in range(a.epochs):
        model.train()
        for idx in torch.randperm(len(xtr), generator=gen).split(64):
            # one-pixel random shifts: features that do not hinge on exact pixel positions
            x = torch.roll(xtr[idx], shifts=tuple(torch.randint(-1, 2, (2,), generator=gen).tolist()), dims=(2, 3))
            loss = torch.nn.functional.cross_entropy(model(x)[1], ytr[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        acc = (model(xev)[1].argmax(1) == yev).float().mean().item()
    torch.save(model.state_dict(), a.out)
    print(f"held-out accuracy {acc:.4f} ({len(xev)} images); weights written to {a.out}")


if __name__ == "__main__":
    main()
