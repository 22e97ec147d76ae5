"""Samplers that give every process its shard, the same way with one process or many.

A single-process run over global batches of size B and a run of W processes with batches of
B / W see exactly the same images per step: both draw one permutation per epoch with
``DistributedSampler`` (seeded by the run seed and the epoch; Lightning calls ``set_epoch``)
and deal it out round-robin. Trainers set ``use_distributed_sampler: false`` so that Lightning
keeps these samplers.
"""
from __future__ import annotations

import os

from torch.utils.data import Dataset, DistributedSampler


def process_rank_and_count(datamodule) -> tuple[int, int]:
    trainer = getattr(datamodule, "_trainer", None) or getattr(datamodule, "trainer", None)
    if trainer is None:
        return 0, 1
    return int(trainer.global_rank), int(trainer.world_size)


def shard_sampler(datamodule, dataset: Dataset, shuffle: bool, drop_last: bool, stream: int = 0) -> DistributedSampler:
    """This process's sampler; ``stream`` separates the permutations of the ω and α loaders."""
    rank, world = process_rank_and_count(datamodule)
    seed = int(os.environ.get("PL_GLOBAL_SEED", 0)) + 7919 * stream
    return DistributedSampler(dataset, num_replicas=world, rank=rank, shuffle=shuffle, seed=seed, drop_last=drop_last)
