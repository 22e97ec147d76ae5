"""CIFAR-10, CIFAR-100, MNIST and Fashion-MNIST through ``torchvision.datasets``.

The official train split is halved into ω (weights) and α (architecture); the
official test split is held out. Nothing is downloaded unless ``download=True``
(then in :meth:`prepare_data`, on one process); without it, missing files raise a
:class:`~fpnas.errors.ConfigError` that names the expected path.

All four sets share one ``root`` (torchvision's layout keeps them apart):
``root/cifar-10-batches-py``, ``root/cifar-100-python``, ``root/MNIST/raw``,
``root/FashionMNIST/raw``.

Transforms: 3-channel sets use the standard CIFAR recipe for ω (random crop with
``image_size // 8`` zero padding + horizontal flip) and none for α/test; 1-channel
sets use no augmentation (flips and crops change digits). Images are resized first
when ``image_size`` differs from the native size, then normalized with the
published per-channel mean/std (``normalize=False``: values stay in [0, 1]).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from torchvision import transforms as T

from fpnas.data.split import HalvedTrainDataModule
from fpnas.errors import ConfigError


class TorchvisionDataModule(HalvedTrainDataModule):
    """A ``torchvision.datasets`` set with official train/test splits (see module docstring).

    Args (all required; conf/data/<name>.yaml is the one home of their values):
        root: directory torchvision reads from (and downloads into).
        download: download missing files in :meth:`prepare_data` (needs internet).
        batch_size, val_batch_size, num_workers, split_seed, alpha_augment: see
            :class:`fpnas.data.split.HalvedTrainDataModule`.
        image_size: resize to ``image_size``×``image_size`` (``None`` = native size).
        normalize: standardize with the data set's published mean/std.

    Subclasses set ``name``, ``num_classes``, ``in_chans``, ``native_size``, ``mean``, ``std``
    and ``tv_name`` (the ``torchvision.datasets`` class).
    """

    tv_name: str = ""
    num_classes: int = 0
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()

    def __init__(
        self,
        root: str,
        *,
        download: bool,
        batch_size: int,
        val_batch_size: int | None,
        num_workers: int,
        image_size: int | None,
        split_seed: int,
        alpha_augment: bool,
        normalize: bool,
    ) -> None:
        super().__init__(
            batch_size=batch_size,
            val_batch_size=val_batch_size,
            num_workers=num_workers,
            image_size=image_size,
            split_seed=split_seed,
            alpha_augment=alpha_augment,
        )
        if root is None or str(root) == "":
            raise ConfigError(f"{self.name}: data.root is empty; set it to the folder torchvision reads from")
        self.root = Path(os.path.expanduser(str(root)))
        self.download = bool(download)
        self.normalize = bool(normalize)
        if not self.download:
            missing = self.missing_files()
            if missing:
                raise ConfigError(
                    f"{self.name} not found: expected {', '.join(m.name for m in missing)} in "
                    f"{self.expected_dir()}; set data.download=true on a machine with internet, "
                    "or put the files there"
                )
        self.save_hyperparameters()

    # ------------------------------------------------------------ file layout
    @property
    def tv_class(self):
        import torchvision.datasets

        return getattr(torchvision.datasets, self.tv_name)

    def expected_dir(self) -> Path:
        """The folder torchvision reads this data set's files from."""
        raise NotImplementedError

    def expected_files(self) -> list[str]:
        """File names torchvision needs in :meth:`expected_dir`."""
        raise NotImplementedError

    def missing_files(self) -> list[Path]:
        """Expected files that do not exist (cheap: no checksums, nothing read)."""
        d = self.expected_dir()
        return [d / f for f in self.expected_files() if not (d / f).is_file()]

    # -------------------------------------------------------------------- data
    def prepare_data(self) -> None:
        """Download (one process only, called by Lightning) when ``download=True``."""
        if self.download:
            for train in (True, False):
                self._open(train, download=True)

    def _open(self, train: bool, download: bool = False):
        try:
            return self.tv_class(str(self.root), train=train, download=download)
        except (RuntimeError, OSError) as err:  # OSError covers urllib's URLError
            if download:
                raise ConfigError(
                    f"downloading {self.name} into {self.expected_dir()} failed ({err}); check the internet "
                    "connection, or put the files there and set data.download=false"
                ) from err
            raise ConfigError(
                f"torchvision could not read {self.name} from {self.expected_dir()} ({err}); "
                "set data.download=true on a machine with internet, or put the (uncorrupted) files there"
            ) from err

    def build_datasets(self):
        if self.download and self.missing_files():
            self.prepare_data()  # Lightning calls it before setup; this covers direct setup() calls
        return self._open(True), self._open(False)

    def _resize(self) -> list[Callable]:
        if self.image_size is not None and self.image_size != self.native_size:
            return [T.Resize((self.image_size, self.image_size), antialias=True)]
        return []

    def _to_tensor(self) -> list[Callable]:
        out: list[Callable] = [T.ToTensor()]
        if self.normalize:
            out.append(T.Normalize(self.mean, self.std))
        return out

    def train_transform(self) -> Callable:
        aug: list[Callable] = []
        if self.in_chans == 3:
            side = self.input_size
            aug = [T.RandomCrop(side, padding=max(1, side // 8)), T.RandomHorizontalFlip()]
        return T.Compose(self._resize() + aug + self._to_tensor())

    def eval_transform(self) -> Callable:
        return T.Compose(self._resize() + self._to_tensor())


class _CifarDataModule(TorchvisionDataModule):
    in_chans = 3
    native_size = 32

    def expected_dir(self) -> Path:
        return self.root / self.tv_class.base_folder

    def expected_files(self) -> list[str]:
        c = self.tv_class
        return [f for f, _ in c.train_list + c.test_list] + [c.meta["filename"]]


class _MnistDataModule(TorchvisionDataModule):
    in_chans = 1
    native_size = 28

    def expected_dir(self) -> Path:
        return self.root / self.tv_name / "raw"

    def expected_files(self) -> list[str]:
        return [os.path.splitext(os.path.basename(url))[0] for url, _ in self.tv_class.resources]

    def missing_files(self) -> list[Path]:
        legacy = self.root / self.tv_name / "processed"
        if all((legacy / f).is_file() for f in ("training.pt", "test.pt")):
            return []  # torchvision still reads the old processed/*.pt format
        return super().missing_files()


class CIFAR10DataModule(_CifarDataModule):
    """CIFAR-10: 50,000 train (halved into ω/α) + 10,000 test images, 3×32×32, 10 classes."""

    name = "cifar10"
    tv_name = "CIFAR10"
    num_classes = 10
    mean = (0.4914, 0.4822, 0.4465)
    std = (0.2470, 0.2435, 0.2616)


class CIFAR100DataModule(_CifarDataModule):
    """CIFAR-100 (fine labels): 50,000 train + 10,000 test images, 3×32×32, 100 classes."""

    name = "cifar100"
    tv_name = "CIFAR100"
    num_classes = 100
    mean = (0.5071, 0.4865, 0.4409)
    std = (0.2673, 0.2564, 0.2762)


class MNISTDataModule(_MnistDataModule):
    """MNIST: 60,000 train + 10,000 test digits, 1×28×28, 10 classes."""

    name = "mnist"
    tv_name = "MNIST"
    num_classes = 10
    mean = (0.1307,)
    std = (0.3081,)


class FashionMNISTDataModule(_MnistDataModule):
    """Fashion-MNIST: 60,000 train + 10,000 test images, 1×28×28, 10 classes."""

    name = "fashion_mnist"
    tv_name = "FashionMNIST"
    num_classes = 10
    mean = (0.2860,)
    std = (0.3530,)
