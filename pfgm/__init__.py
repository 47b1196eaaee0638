"""pfgm: Poisson Flow Generative Models in PyTorch."""
__version__ = "0.1.0"
