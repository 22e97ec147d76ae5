"""ImageNet-layout image folders (``root/train/<class>/*``, ``root/val/<class>/*``).

The train images are halved into ω (weights) and α (architecture); the official
``val/`` images are the held-out test split. Optionally only ``num_classes_subset``
classes are used (the ImageNet-100 protocol: 100 of the 1000 classes drawn with
``subset_seed``), relabelled 0..n-1 in sorted order; the class list is written to
``classes_file`` (one name per line, line i = label i).

Note: this draws the 100 classes at random from the seed; it is not the fixed
class list of the CMC paper's ImageNet-100.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import torch
from pytorch_lightning.utilities import rank_zero_only
from torchvision.datasets import ImageFolder
from torchvision.datasets.folder import IMG_EXTENSIONS

from fpnas.data.base import check_int
from fpnas.data.split import HalvedTrainDataModule, check_stats
from fpnas.errors import ConfigError, DataFileError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def list_class_dirs(directory: Path) -> list[str]:
    """Sorted names of the sub-directories of ``directory`` (hidden ones skipped)."""
    with os.scandir(directory) as it:
        return sorted(e.name for e in it if e.is_dir() and not e.name.startswith("."))


def has_image(directory: Path) -> bool:
    """Whether ``directory`` (searched recursively, as ImageFolder does) holds an image file.

    Stops at the first image, so it stays cheap on full ImageNet class directories.
    """
    subdirs = []
    with os.scandir(directory) as it:
        for e in it:
            if e.is_file() and e.name.lower().endswith(IMG_EXTENSIONS):
                return True
            if e.is_dir():
                subdirs.append(e.path)
    return any(has_image(Path(d)) for d in subdirs)


def select_classes(classes: Sequence[str], n: int | None, seed: int) -> list[str]:
    """``n`` classes drawn from sorted ``classes`` with ``torch.Generator().manual_seed(seed)``, sorted.

    ``n=None`` keeps all classes.
    """
    classes = sorted(classes)
    if n is None:
        return classes
    perm = torch.randperm(len(classes), generator=torch.Generator().manual_seed(seed))[:n]
    return sorted(classes[i] for i in perm.tolist())


class ClassListImageFolder(ImageFolder):
    """``torchvision.datasets.ImageFolder`` restricted to ``classes`` (label = position in the list).

    Files of other class directories are not listed at all.
    """

    def __init__(self, root: str, classes: Sequence[str], **kwargs) -> None:
        self._class_list = list(classes)
        super().__init__(root, **kwargs)

    def find_classes(self, directory) -> tuple[list[str], dict[str, int]]:
        return list(self._class_list), {c: i for i, c in enumerate(self._class_list)}

    def __getitem__(self, index: int):
        """A file that cannot be read as an image names itself (files are only opened when used)."""
        try:
            return super().__getitem__(index)
        except (OSError, SyntaxError) as exc:  # PIL: UnidentifiedImageError and truncated files are OSErrors
            path = self.samples[index][0]
            raise DataFileError(
                f"image file {path} cannot be read ({type(exc).__name__}: {exc}); remove or replace it"
            ) from None


class ImageFolderDataModule(HalvedTrainDataModule):
    """ImageNet-style folders: ω/α = halves of ``train/``, test = ``val/``.

    Args (all required; conf/data/imagefolder.yaml is the one home of their values):
        root: directory holding ``train/<class>/*`` and ``val/<class>/*`` images.
        batch_size, val_batch_size, num_workers, split_seed, alpha_augment: see
            :class:`fpnas.data.split.HalvedTrainDataModule`.
        image_size: side of the square crops (train: random-resized crop; eval: resize
            to ``image_size / crop_pct`` then center crop).
        num_classes_subset: use only this many classes (``None`` = all), drawn with ``subset_seed``.
        subset_seed: seed of the class draw.
        classes_file: where :meth:`setup` writes the used class names, one per line
            (global rank zero only); ``None`` writes nothing.
        mean, std: per-channel normalization (``None`` = ImageNet statistics).
        crop_pct: center-crop fraction of the evaluation transform.
        scale: area range of the training random-resized crop.
        color_jitter: training color-jitter strength (0 = off).
        auto_augment: timm auto-augment policy for training images, e.g. ``rand-m9-mstd0.5``
            (RandAugment) or ``original`` (AutoAugment); ``None`` = off.

    ``num_classes``, ``classes`` and ``in_chans`` are known right after construction
    (only the class directories are listed); images are listed in :meth:`setup`.
    """

    name = "imagefolder"
    in_chans = 3
    native_size = None

    def __init__(
        self,
        root: str,
        *,
        batch_size: int,
        val_batch_size: int | None,
        num_workers: int,
        image_size: int,
        split_seed: int,
        alpha_augment: bool,
        num_classes_subset: int | None,
        subset_seed: int,
        classes_file: str | None,
        mean: Sequence[float] | None,
        std: Sequence[float] | None,
        crop_pct: float,
        scale: Sequence[float],
        color_jitter: float,
        auto_augment: str | None,
    ) -> None:
        if image_size is None:
            raise ConfigError(
                "image_size is required for image folders (they have no native size); "
                "set data.image_size, e.g. to the space's input_size"
            )
        super().__init__(
            batch_size=batch_size,
            val_batch_size=val_batch_size,
            num_workers=num_workers,
            image_size=image_size,
            split_seed=split_seed,
            alpha_augment=alpha_augment,
        )
        self.subset_seed = check_int("subset_seed", subset_seed, 0, "set data.subset_seed to a non-negative integer")
        self.mean = check_stats("mean", mean, 3) or IMAGENET_MEAN
        self.std = check_stats("std", std, 3) or IMAGENET_STD
        if isinstance(crop_pct, bool) or not isinstance(crop_pct, (int, float)) or not 0.0 < crop_pct <= 1.0:
            raise ConfigError(f"crop_pct must be a number in (0, 1], got {crop_pct!r}; set data.crop_pct, e.g. 0.875")
        self.crop_pct = float(crop_pct)
        try:
            lo, hi = (float(s) for s in scale)
        except (TypeError, ValueError):
            raise ConfigError(
                f"scale must be two numbers [min, max], got {scale!r}; e.g. data.scale=[0.08,1.0]"
            ) from None
        if not 0.0 < lo <= hi <= 1.0:
            raise ConfigError(f"scale must satisfy 0 < min <= max <= 1, got {scale!r}; e.g. data.scale=[0.08,1.0]")
        self.scale = (lo, hi)
        if isinstance(color_jitter, bool) or not isinstance(color_jitter, (int, float)) or color_jitter < 0:
            raise ConfigError(f"color_jitter must be a number >= 0, got {color_jitter!r}")
        self.color_jitter = float(color_jitter)
        if auto_augment is not None and not (
            isinstance(auto_augment, str)
            and auto_augment.split("-")[0] in ("rand", "original", "v0", "augmix", "3a", "originalr", "v0r")
        ):
            raise ConfigError(
                f"auto_augment={auto_augment!r}: use a timm policy like 'rand-m9-mstd0.5' "
                "(RandAugment) or 'original' (AutoAugment), or null"
            )
        self.auto_augment = auto_augment
        self.classes_file = None if classes_file is None else Path(classes_file)

        self.root = Path(os.path.expanduser(str(root)))
        if not self.root.is_dir():
            raise ConfigError(
                f"data.root={str(root)!r} is not a directory; point data.root at a folder "
                "holding train/<class>/* and val/<class>/* images"
            )
        for sub in ("train", "val"):
            if not (self.root / sub).is_dir():
                raise ConfigError(
                    f"{self.root / sub} is missing: data.root must hold train/<class>/* "
                    "and val/<class>/* images (ImageNet layout)"
                )
        self.all_classes = list_class_dirs(self.root / "train")
        if not self.all_classes:
            raise ConfigError(f"{self.root / 'train'} has no class sub-directories; expected train/<class>/*")
        if num_classes_subset is not None:
            num_classes_subset = check_int(
                "num_classes_subset", num_classes_subset, 1, "set data.num_classes_subset to a positive integer or null"
            )
            if num_classes_subset > len(self.all_classes):
                raise ConfigError(
                    f"num_classes_subset={num_classes_subset} but {self.root / 'train'} has only "
                    f"{len(self.all_classes)} classes; lower data.num_classes_subset or set it to null"
                )
        self.num_classes_subset = num_classes_subset
        self.classes = select_classes(self.all_classes, num_classes_subset, self.subset_seed)
        self.num_classes = len(self.classes)
        if self.num_classes < 2:
            raise ConfigError(
                f"{self.root / 'train'} has {self.num_classes} class used ({self.classes}); classifying "
                "needs at least 2 class directories (raise data.num_classes_subset, or add classes)"
            )

        val_classes = set(list_class_dirs(self.root / "val"))
        unknown = sorted(val_classes - set(self.all_classes))
        if unknown:
            raise ConfigError(
                f"{self.root / 'val'} has class directories that train/ lacks: {unknown[:5]}"
                f"{' ...' if len(unknown) > 5 else ''}; train/ and val/ must use the same class names"
            )
        for sub in ("train", "val"):
            missing = [
                c for c in self.classes if not (self.root / sub / c).is_dir() or not has_image(self.root / sub / c)
            ]
            if missing:
                raise ConfigError(
                    f"{len(missing)} class(es) have no images under {self.root / sub}: {missing[:5]}"
                    f"{' ...' if len(missing) > 5 else ''}; every used class needs images in "
                    f"train/ and val/ (extensions {', '.join(IMG_EXTENSIONS)})"
                )
        self.save_hyperparameters()

    # -------------------------------------------------------------------- data
    def build_datasets(self):
        train = ClassListImageFolder(str(self.root / "train"), self.classes)
        test = ClassListImageFolder(str(self.root / "val"), self.classes)
        return train, test

    def train_transform(self):
        from timm.data import create_transform

        return create_transform(
            self.image_size,
            is_training=True,
            scale=self.scale,
            hflip=0.5,
            color_jitter=self.color_jitter or None,
            auto_augment=self.auto_augment,
            mean=self.mean,
            std=self.std,
        )

    def eval_transform(self):
        from timm.data import create_transform

        return create_transform(
            self.image_size, is_training=False, crop_pct=self.crop_pct, mean=self.mean, std=self.std
        )

    def setup(self, stage: str | None = None) -> None:
        """List the images, halve train/, and write ``classes_file`` (global rank zero only)."""
        first = not self.datasets
        super().setup(stage)
        if first:
            self.write_classes_file()

    def write_classes_file(self) -> Path | None:
        """Write the used class names, one per line (line i = label i), on global rank zero."""
        if self.classes_file is None:
            return None
        trainer = getattr(self, "trainer", None)
        is_zero = trainer.is_global_zero if trainer is not None else getattr(rank_zero_only, "rank", 0) == 0
        if not is_zero:
            return None
        self.classes_file.parent.mkdir(parents=True, exist_ok=True)
        self.classes_file.write_text("".join(f"{c}\n" for c in self.classes))
        return self.classes_file

    def describe(self) -> str:
        text = super().describe()
        if self.num_classes_subset is not None:
            text += f", {self.num_classes} of {len(self.all_classes)} classes (subset seed {self.subset_seed})"
        return text
