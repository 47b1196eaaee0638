"""Evaluation: FID / Inception Score with the FID Inception network, and sample metrics.

- `pfgm.evaluation.inception`: a pure-PyTorch port of the 2015-12-05 TF Inception graph in pytorch-fid's
  layout (`InceptionV3FID`, `load_inception`). Weights come from a local file only; nothing is downloaded.
- `pfgm.evaluation.fid`: Fréchet distance, activation statistics, Inception Score, batched feature
  extraction and loaders for image folders, sample `.npz` files and statistics `.npz` files.

Submodules are imported on demand, so `import pfgm.evaluation` stays cheap.
"""
