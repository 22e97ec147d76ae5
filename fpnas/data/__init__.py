"""Data modules for FP-NAS: ω (weights) / α (architecture) / test splits.

Every one is a :class:`~fpnas.data.base.ThreeSplitDataModule`; its contract is written in
:mod:`fpnas.data.base`.

* ``mnist5k``, ``digits``: small bundled sets held in memory (:class:`SearchDataModule`);
  ``mnist5k_clutter``: the same digits at random places on a cluttered canvas (a harder task).
* ``imagefolder``: ImageNet-layout folders, optionally the ImageNet-100 class-subset protocol.
* ``cifar10``, ``cifar100``, ``mnist``, ``fashion_mnist``: torchvision data sets.

The last two kinds halve the official train split into ω/α and hold out the official
test split (:class:`HalvedTrainDataModule`).
"""

from fpnas.data.arrays import SearchDataModule
from fpnas.data.base import ThreeSplitDataModule
from fpnas.data.cluttered import ClutteredMnist5kDataModule
from fpnas.data.digits import DigitsDataModule
from fpnas.data.imagefolder import ImageFolderDataModule
from fpnas.data.mnist5k import Mnist5kDataModule
from fpnas.data.split import HalvedTrainDataModule
from fpnas.data.torchvision_sets import (
    CIFAR10DataModule,
    CIFAR100DataModule,
    FashionMNISTDataModule,
    MNISTDataModule,
    TorchvisionDataModule,
)

DATAMODULES = {
    "mnist5k": Mnist5kDataModule,
    "mnist5k_clutter": ClutteredMnist5kDataModule,
    "digits": DigitsDataModule,
    "imagefolder": ImageFolderDataModule,
    "cifar10": CIFAR10DataModule,
    "cifar100": CIFAR100DataModule,
    "mnist": MNISTDataModule,
    "fashion_mnist": FashionMNISTDataModule,
}

__all__ = [
    "ThreeSplitDataModule",
    "SearchDataModule",
    "Mnist5kDataModule",
    "ClutteredMnist5kDataModule",
    "DigitsDataModule",
    "HalvedTrainDataModule",
    "ImageFolderDataModule",
    "TorchvisionDataModule",
    "CIFAR10DataModule",
    "CIFAR100DataModule",
    "MNISTDataModule",
    "FashionMNISTDataModule",
    "DATAMODULES",
]
