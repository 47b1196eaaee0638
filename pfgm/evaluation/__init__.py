"""Evaluation: FID / Inception Score with the FID Inception network, likelihoods, and sample metrics.

- `pfgm.evaluation.inception`: a pure-PyTorch port of the 2015-12-05 TF Inception graph in pytorch-fid's
  layout (`InceptionV3FID`, `load_inception`). Weights come from a local file only; nothing is downloaded.
- `pfgm.evaluation.fid`: the maths only: activation statistics, Fréchet distance, Inception Score,
  batched feature extraction.
- `pfgm.evaluation.sources`: where images and statistics come from (image folders, sample `.npz` files,
  statistics `.npz` files, a config's data set); the image basics are in `pfgm.images`.
- `likelihood`, `sample_metrics` (sliced Wasserstein, MMD), `digits` (the digits-FID), `prior_paths`.

Submodules are imported on demand, so `import pfgm.evaluation` stays cheap.
"""
