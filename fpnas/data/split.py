"""Shared machinery for data sets that ship an official train / test split on disk.

The official train split is cut in two halves with a fixed-seed random permutation:
ω (network weights) and α (architecture probabilities); the official test split
(ImageNet's ``val/``) is held out. ω and α are views of the *same* underlying data
set with different transforms (training augmentation for ω, evaluation transform for
α unless ``alpha_augment``), so they are wrapped in :class:`TransformSubset`.

Subclasses implement :meth:`HalvedTrainDataModule.build_datasets` (raw data sets that
return ``(PIL image, int label)``), :meth:`train_transform` and :meth:`eval_transform`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch.utils.data import Dataset

from fpnas.data.base import ThreeSplitDataModule
from fpnas.errors import ConfigError

SPLITS = ("omega", "alpha", "test")


def check_stats(name: str, value: Sequence[float] | None, channels: int) -> tuple[float, ...] | None:
    """Validate a per-channel mean/std list (``None`` passes through)."""
    if value is None:
        return None
    try:
        out = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a list of {channels} numbers, got {value!r}") from None
    if len(out) != channels:
        raise ConfigError(f"{name} must have {channels} entries (one per channel), got {value!r}")
    if name.endswith("std") and min(out) <= 0:
        raise ConfigError(f"{name} entries must be > 0, got {value!r}")
    return out


def split_halves(n: int, seed: int) -> dict[str, torch.Tensor]:
    """Halve ``range(n)`` with a ``seed``-ed random permutation: first half ω, second half α.

    Returns the indices *in permutation order* (not sorted), so the α split read in a
    fixed order still mixes classes (matters when architectures are scored with
    batch-norm batch statistics). α gets the extra sample when ``n`` is odd.
    """
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    half = n // 2
    return {"omega": perm[:half], "alpha": perm[half:]}


class TransformSubset(Dataset):
    """``dataset[indices[i]]`` with ``transform`` applied to the image (labels pass through)."""

    def __init__(self, dataset: Dataset, indices: Sequence[int], transform: Callable | None = None) -> None:
        self.dataset = dataset
        self.indices = torch.as_tensor(indices, dtype=torch.long)
        self.transform = transform

    def __len__(self) -> int:
        return int(self.indices.numel())

    def __getitem__(self, i: int):
        img, label = self.dataset[int(self.indices[i])]
        if self.transform is not None:
            img = self.transform(img)
        return img, int(label)


class HalvedTrainDataModule(ThreeSplitDataModule):
    """ω / α halves of an official train split, official test split held out.

    Args (all required; conf/data/<name>.yaml is the one home of their values):
        batch_size: images per ω and per α batch in ``train_dataloader``.
        val_batch_size: batch size of ``val_dataloader`` / ``test_dataloader`` (``None`` = ``batch_size``).
        num_workers: DataLoader worker processes per loader (0 = main process). With workers,
            ``persistent_workers`` is on; ``pin_memory`` is on whenever CUDA is available.
        image_size: side of the square images the loaders produce.
        split_seed: seed of the ω/α permutation (and of the fixed order of the test split).
        alpha_augment: give α the training augmentation instead of the evaluation transform.

    After :meth:`setup`: ``split_indices`` maps ``"omega"/"alpha"`` to sorted indices into
    the official train split and ``"test"`` to indices into the official test split;
    ``datasets`` maps the three split names to the transformed data sets.
    """

    name: str = "halved"
    in_chans: int = 3
    native_size: int | None = None

    def __init__(
        self,
        *,
        batch_size: int,
        val_batch_size: int | None,
        num_workers: int,
        image_size: int | None,
        split_seed: int,
        alpha_augment: bool,
    ) -> None:
        super().__init__(
            batch_size=batch_size,
            val_batch_size=val_batch_size,
            num_workers=num_workers,
            image_size=image_size,
            split_seed=split_seed,
        )
        self.alpha_augment = bool(alpha_augment)
        self.split_indices: dict[str, torch.Tensor] = {}
        self.datasets: dict[str, TransformSubset] = {}
        self.num_samples: int = 0

    # ------------------------------------------------------------ subclass API
    def build_datasets(self) -> tuple[Dataset, Dataset]:
        """Return ``(train, test)`` data sets yielding ``(PIL image, int label)`` without transforms."""
        raise NotImplementedError

    def train_transform(self) -> Callable:
        """PIL image -> float32 C×H×W tensor, with training augmentation (ω)."""
        raise NotImplementedError

    def eval_transform(self) -> Callable:
        """PIL image -> float32 C×H×W tensor, deterministic (α unless ``alpha_augment``, test)."""
        raise NotImplementedError

    # -------------------------------------------------------------------- data
    @property
    def input_size(self) -> int | None:
        """Side length of the images the loaders produce."""
        return self.image_size if self.image_size is not None else self.native_size

    def setup(self, stage: str | None = None) -> None:
        """Read the file lists / arrays, halve the train split, attach transforms; once."""
        if self.datasets:
            return
        train, test = self.build_datasets()
        n_train, n_test = len(train), len(test)
        halves = split_halves(n_train, self.split_seed)
        smallest = min(int(v.numel()) for v in halves.values())
        if self.batch_size > smallest:
            raise ConfigError(
                f"batch_size={self.batch_size} exceeds the smaller of the ω/α halves ({smallest} images of "
                f"{n_train} training images) and drop_last would yield no batches; lower data.batch_size"
            )
        if n_test == 0:
            raise ConfigError(f"{self.name}: the test split is empty")
        # The test split is read in a fixed random order too, so unshuffled batches mix classes
        # (ImageFolder lists files class by class).
        test_order = torch.randperm(n_test, generator=torch.Generator().manual_seed(self.split_seed + 1))
        train_tf, eval_tf = self.train_transform(), self.eval_transform()
        self.datasets = {
            "omega": TransformSubset(train, halves["omega"], train_tf),
            "alpha": TransformSubset(train, halves["alpha"], train_tf if self.alpha_augment else eval_tf),
            "test": TransformSubset(test, test_order, eval_tf),
        }
        self.split_indices = {
            "omega": torch.sort(halves["omega"]).values,
            "alpha": torch.sort(halves["alpha"]).values,
            "test": torch.arange(n_test),
        }
        self.num_samples = n_train + n_test

    # --------------------------------------------------------------- reporting
    def split_sizes(self) -> dict[str, int]:
        """Number of samples per split (sets the module up if needed)."""
        if not self.datasets:
            self.setup()
        return {k: len(self.datasets[k]) for k in SPLITS}

    def describe(self) -> str:
        """One-line human-readable summary of the data set and splits."""
        side = self.input_size
        size = f"{self.in_chans}x{side}x{side}" if side is not None else f"{self.in_chans} channels"
        if self.native_size is not None and side != self.native_size:
            size = f"{self.in_chans}x{self.native_size}x{self.native_size}->{side}x{side}"
        if not self.datasets:
            return f"{self.name}: {size}, {self.num_classes} classes (not set up)"
        s = self.split_sizes()
        return (
            f"{self.name}: {self.num_samples} images {size}, {self.num_classes} classes, "
            f"omega={s['omega']} alpha={s['alpha']} test={s['test']} (seed {self.split_seed}), "
            f"batch {self.batch_size}, workers {self.num_workers}, alpha_augment={self.alpha_augment}"
        )
