"""Data modules for FP-NAS: in-memory ω (weights) / α (architecture) / test splits."""

from fpnas.data.base import SearchDataModule
from fpnas.data.digits import DigitsDataModule
from fpnas.data.mnist5k import Mnist5kDataModule

DATAMODULES = {"mnist5k": Mnist5kDataModule, "digits": DigitsDataModule}

__all__ = ["SearchDataModule", "Mnist5kDataModule", "DigitsDataModule", "DATAMODULES"]
