"""The one base class of the search's data modules, and its contract.

Every data module of fpnas (``conf/data/*.yaml``) is a :class:`ThreeSplitDataModule`:

* ``__init__`` is cheap and checks every argument (all of them required: ``conf/data/<name>.yaml`` is the
  one home of their values): a bad value raises
  :class:`~fpnas.errors.ConfigError` naming the ``data.*`` key to change (one line, before any
  data is read). After ``__init__``, ``num_classes``, ``in_chans`` and ``input_size`` are known:
  the search fits its space to them before anything is loaded.
* ``setup()`` reads the data and fills ``self.datasets`` with three disjoint splits: ``omega``
  (ω, the super-net's weights), ``alpha`` (α, the architecture distribution) and ``test`` (held
  out, never seen by the search).
* ``train_dataloader()`` returns ``{"train": ω loader, "val": α loader}`` (the splits of
  ``train_splits``); Lightning zips them, so a training batch is ``{"train": (x, y), "val": (x, y)}``.
  ``val_dataloader()`` is α in a fixed order, ``test_dataloader()`` the test split.
* Every loader shards the same way with one process or many and resumes mid-epoch exactly
  (:mod:`fpnas.data.sharding`).

:class:`~fpnas.data.arrays.SearchDataModule` (small arrays in memory, split three ways) and
:class:`~fpnas.data.split.HalvedTrainDataModule` (an official train split halved into ω and α) are
the two ways of filling the splits.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset

from fpnas.data.sharding import SPLIT_STREAMS, TRAIN_LOADER_KEYS, ResumableLoader, shard_sampler
from fpnas.errors import ConfigError


def check_int(name: str, value: Any, minimum: int, hint: str) -> int:
    """Return ``value`` as int, raising :class:`ConfigError` naming ``name`` if it is invalid."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}, got {value!r}; {hint}")
    return int(value)


class ThreeSplitDataModule(pl.LightningDataModule):
    """The loaders every search data module shares: ω / α for training, α and test for scoring.

    Subclasses fill ``self.datasets`` (``omega``, ``alpha``, ``test``) in ``setup()``. Every argument is
    required: a data set's conf/data/<name>.yaml is the one home of its values (``data.*``).
    """

    def __init__(
        self,
        *,
        batch_size: int,
        val_batch_size: int | None,
        num_workers: int,
        image_size: int | None,
        split_seed: int,
    ) -> None:
        super().__init__()
        self.batch_size = check_int("batch_size", batch_size, 1, "set data.batch_size to a positive integer")
        self.val_batch_size = (
            self.batch_size
            if val_batch_size is None
            else check_int("val_batch_size", val_batch_size, 1, "set data.val_batch_size to a positive integer or null")
        )
        self.num_workers = check_int("num_workers", num_workers, 0, "set data.num_workers to 0 or more")
        self.image_size = (
            None
            if image_size is None
            else check_int("image_size", image_size, 1, "set data.image_size to a positive integer or null")
        )
        self.split_seed = check_int("split_seed", split_seed, 0, "set data.split_seed to a non-negative integer")
        self.datasets: dict[str, Dataset] = {}
        # the splits train_dataloader yields: the search needs both; retraining may use ω only, so
        # that α stays a validation split (train.py train_on=[omega])
        self.train_splits: tuple[str, ...] = ("omega", "alpha")

    def _loader(self, split: str, batch_size: int, shuffle: bool, drop_last: bool) -> DataLoader:
        if not self.datasets:
            self.setup()
        dataset = self.datasets[split]
        return ResumableLoader(
            dataset,
            batch_size=batch_size,
            sampler=shard_sampler(self, dataset, shuffle, drop_last, stream=SPLIT_STREAMS[split]),
            drop_last=drop_last,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            pin_memory=torch.cuda.is_available(),
        )

    def train_dataloader(self) -> dict[str, DataLoader]:
        """``{"train": ω loader, "val": α loader}`` (the splits of ``train_splits``), shuffled with
        ``drop_last``; Lightning zips them (max_size_cycle)."""
        return {
            TRAIN_LOADER_KEYS[split]: self._loader(split, self.batch_size, shuffle=True, drop_last=True)
            for split in self.train_splits
        }

    def val_dataloader(self) -> DataLoader:
        """α split in a fixed order, to score the current most likely architecture."""
        return self._loader("alpha", self.val_batch_size, shuffle=False, drop_last=False)

    def test_dataloader(self) -> DataLoader:
        """Held-out test split (official test / ``val/`` where there is one) in a fixed order."""
        return self._loader("test", self.val_batch_size, shuffle=False, drop_last=False)
