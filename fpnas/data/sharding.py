"""Samplers that give every process its shard, the same way with one process or many, and loaders
that resume mid-epoch exactly.

A single-process run over global batches of size B and a run of W processes with batches of
B / W see exactly the same images per step: both draw one permutation per epoch with
``DistributedSampler`` (seeded by the run seed and the epoch; Lightning calls ``set_epoch``)
and deal it out round-robin. Trainers set ``use_distributed_sampler: false`` so that Lightning
keeps these samplers.

Every loader is a :class:`ResumableLoader`: Lightning stores its ``state_dict`` (the epoch and the
batches it has yielded) in every checkpoint and hands it back on resume, so a search interrupted in
the middle of an epoch continues with the very batch the uninterrupted run would have drawn next.

Random augmentation draws from generators seeded per image, from (run seed, split, epoch, image index), in
whichever process loads the image (:class:`SeededImages`): an image gets the same augmentation whether the
pass was resumed or not, with any number of worker processes or training processes. The iterator of a
loader draws its workers' base seed from a generator of its own, seeded by (run seed, split, epoch), so
that no loader ever draws from the global generators (the training step's, see
:mod:`fpnas.runtime.exact_resume`).
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from fpnas.runtime.exact_resume import derived_seed, seed_host_generators

SPLIT_STREAMS = {"omega": 0, "alpha": 1, "test": 2}  # separate shuffling streams
TRAIN_LOADER_KEYS = {"omega": "train", "alpha": "val"}  # split -> key of the training batch dict


def process_rank_and_count(datamodule) -> tuple[int, int]:
    trainer = getattr(datamodule, "_trainer", None) or getattr(datamodule, "trainer", None)
    if trainer is None:
        return 0, 1
    return int(trainer.global_rank), int(trainer.world_size)


class ResumableSampler(DistributedSampler):
    """``DistributedSampler`` whose next pass can start after the first ``skip`` indices; with ``seeded``, it
    yields ``(seed, index)`` pairs for :class:`SeededImages`, the seed derived from (seed, epoch, index)."""

    skip = 0
    seeded = False

    def __iter__(self) -> Iterator[Any]:
        skip, self.skip = self.skip, 0
        indices = itertools.islice(super().__iter__(), skip, None)
        if not self.seeded:
            return indices
        seed, epoch = int(self.seed), int(self.epoch)
        return ((derived_seed(seed, epoch, i), i) for i in indices)


class SeededImages(Dataset):
    """``dataset[index]`` for a key ``(seed, index)``, drawn with the process's generators (torch, ``random``,
    NumPy: what torchvision's and timm's transforms use) seeded by ``seed`` first."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int] | int) -> Any:
        if isinstance(key, tuple):  # from a seeded ResumableSampler
            seed, key = key
            seed_host_generators(seed)
        return self.dataset[key]


def has_random_transforms(dataset: Dataset) -> bool:
    """Whether ``dataset`` transforms its images (``transform``, as torchvision's data sets and
    :class:`~fpnas.data.split.TransformSubset` have): possibly at random. In-memory tensors have none."""
    return getattr(dataset, "transform", None) is not None


def shard_sampler(datamodule, dataset: Dataset, shuffle: bool, drop_last: bool, stream: int = 0) -> ResumableSampler:
    """This process's sampler; ``stream`` separates the permutations of the ω and α loaders."""
    rank, world = process_rank_and_count(datamodule)
    seed = int(os.environ.get("PL_GLOBAL_SEED", 0)) + 7919 * stream
    return ResumableSampler(dataset, num_replicas=world, rank=rank, shuffle=shuffle, seed=seed, drop_last=drop_last)


class ResumableLoader(DataLoader):
    """A ``DataLoader`` with Lightning's stateful-loader interface (``state_dict`` / ``load_state_dict``).

    The state is (epoch, batches yielded in this pass). Lightning saves it in every checkpoint and
    gives it back before the resumed epoch starts; the next pass of that epoch then skips those
    batches in the sampler (no image is loaded for them). Skipping by index, not by replaying the
    loader, keeps resuming cheap and works with worker processes: the epoch's permutation depends
    only on (seed, epoch). Lightning's fetcher does not prefetch from sized loaders, so "yielded" is
    exactly "consumed by the training step". The underlying iterator is created at the first
    ``next()``, after Lightning's ``set_epoch`` (worker processes would otherwise draw indices from the
    previous epoch's permutation when a run resumes).
    (torchdata's ``StatefulDataLoader`` does the same for any sampler, at the price of a dependency.)
    """

    def __init__(self, dataset: Dataset, *args, **kwargs) -> None:
        sampler = kwargs.get("sampler")
        if isinstance(sampler, ResumableSampler) and sampler.shuffle and has_random_transforms(dataset):
            sampler.seeded = True  # a training split's augmentation: seeded per image
            dataset = SeededImages(dataset)
        kwargs.setdefault("generator", torch.Generator())  # workers' base seed: never the global generator
        super().__init__(dataset, *args, **kwargs)
        self._yielded = 0
        self._resume: dict[str, int] | None = None

    def __iter__(self) -> Iterator[Any]:
        return self._batches()

    def _batches(self) -> Iterator[Any]:
        epoch = int(getattr(self.sampler, "epoch", 0))
        skip = 0
        if self._resume is not None and self._resume.get("epoch") == epoch:
            skip = int(self._resume.get("batches", 0))
        self._resume = None
        self._yielded = skip
        if skip:
            self.sampler.skip = skip * int(self.batch_size)
        seed = int(getattr(self.sampler, "seed", 0))
        self.generator.manual_seed(derived_seed(seed, epoch))
        for batch in DataLoader.__iter__(self):
            self._yielded += 1
            yield batch

    def state_dict(self) -> dict[str, int]:
        return {"epoch": int(getattr(self.sampler, "epoch", 0)), "batches": self._yielded}

    def load_state_dict(self, state_dict: dict[str, int]) -> None:
        self._resume = dict(state_dict)
