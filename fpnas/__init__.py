"""fpnas: FP-NAS (Fast Probabilistic Neural Architecture Search) with PyTorch Lightning and Hydra."""

__version__ = "0.1.0"
