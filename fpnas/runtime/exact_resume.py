"""A fit resumed from any step continues exactly as the uninterrupted one, and reports the whole run.

Lightning's checkpoint holds the weights, optimizers, schedulers and loop counters, and the loaders' own state
(:class:`fpnas.data.sharding.ResumableLoader`: the epoch and the batches it has yielded). What it leaves out,
and :class:`ExactResume` (added to every trainer by :func:`fpnas.runtime.trainer.build_trainer`) supplies:

* **The loaders' state when ``configure_optimizers`` reads ``trainer.estimated_stepping_batches``** (train.py
  does: its schedule is counted in updates). That property sets up the training data before Lightning restores
  the loops, and Lightning then never hands the checkpoint's loader state to the loaders (Lightning issue
  #20550): a run resumed mid-epoch started its epoch over from the first batch. The state is handed over at
  ``on_train_start``, before the first batch is drawn.
* **Random draws of the step** (drop-path, dropout, anything drawing from the global generators): before every
  training step the global generators (torch, ``random``, NumPy) are seeded from (seed, step,
  rank) by :func:`seed_everything_for`, as the search's sampler draws from (seed, step); a resume at any step
  draws what the uninterrupted run drew. (Data augmentation is seeded per image by the loaders:
  :mod:`fpnas.data.sharding`.)
* **Epoch means of what the step logs** (``train/loss_epoch``): Lightning keeps their running sums outside the
  checkpoint, so the epoch cut by a resume averaged only its resumed batches. The sums of the cut epoch are
  carried in the checkpoint and added back once each metric is logged again.
* **Time**: ``wall_time_s`` and ``fit_time_s`` of all the segments of a run (each one up to its last save),
  for the summaries (:meth:`ExactResume.total_wall_time`).

Everything here is per process; the checkpoint is rank 0's, so a metric logged with ``sync_dist=True`` under
DDP gets rank 0's sums on every rank (fpnas logs none).
"""

from __future__ import annotations

import random
import time
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch


def derived_seed(seed: int, *keys: int) -> int:
    """A 32-bit seed derived from ``seed`` and ``keys`` (NumPy's ``SeedSequence``: well mixed, so that nearby
    steps or images get unrelated streams)."""
    return int(np.random.SeedSequence([int(seed), *(int(k) for k in keys)]).generate_state(1)[0])


def seed_everything_for(seed: int, *keys: int) -> None:
    """Seed the global generators (torch's CPU one and, once CUDA is in use, every GPU's; ``random``; NumPy) from
    ``seed`` and ``keys``, without touching ``PL_GLOBAL_SEED`` (the run's seed, which the samplers read)."""
    value = derived_seed(seed, *keys)
    seed_host_generators(value)
    if torch.cuda.is_initialized():  # torch.manual_seed would queue a lazy seeding with a stack trace: 0.4 ms
        torch.cuda.manual_seed_all(value)


def seed_host_generators(value: int) -> None:
    """Seed the CPU's global generators (torch's CPU one, ``random``, NumPy: what image transforms draw from)
    with ``value`` (< 2**32)."""
    torch.random.default_generator.manual_seed(value)
    random.seed(value)
    np.random.seed(value)


class ExactResume(pl.Callback):
    """See the module's description. ``seed``: the run's seed; ``started``: when this segment of the run
    started (``time.time()``; default: now)."""

    def __init__(self, seed: int = 0, started: float | None = None):
        self.seed = int(seed)
        self.started = time.time() if started is None else float(started)
        self.earlier_wall_s = 0.0  # wall time of the run's earlier segments (0 for a run that never resumed)
        self.earlier_fit_s = 0.0  # their time in the fit
        self.segments = 1  # this one included
        self._fit_started: float | None = None
        self._trainer: pl.Trainer | None = None
        self._sums: dict[str, dict[str, torch.Tensor]] = {}  # of the cut epoch, until each metric is logged
        self._sums_epoch: int | None = None

    # ---------------------------------------------------------------- time
    def total_wall_time(self, now: float | None = None, started: float | None = None) -> float:
        """Seconds of all segments: the earlier ones (up to their last save) and this one, from ``started``
        (default: this segment's start) to ``now``."""
        now = time.time() if now is None else now
        return self.earlier_wall_s + now - (self.started if started is None else started)

    def total_fit_time(self, fit_time: float | None = None) -> float:
        """Seconds in the fit, all segments: the earlier ones and ``fit_time`` (default: since this fit began)."""
        if fit_time is None:
            fit_time = 0.0 if self._fit_started is None else time.time() - self._fit_started
        return self.earlier_fit_s + fit_time

    def setup(self, trainer, pl_module, stage: str) -> None:
        self._trainer = trainer
        if stage == "fit":
            self._fit_started = time.time()

    # ---------------------------------------------------------------- checkpoint
    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {
            "wall_time_s": self.total_wall_time(),
            "fit_time_s": self.total_fit_time(),
            "segments": self.segments,
        }
        trainer = self._trainer
        if trainer is not None and trainer.state.fn == "fit":
            self._add_back_sums(trainer)
            metrics = epoch_sums(trainer)
            if self._sums_epoch == trainer.current_epoch:  # of a cut epoch, not logged again since: still due
                metrics = self._sums | metrics
            state["epoch_sums"] = {"epoch": int(trainer.current_epoch), "metrics": metrics}
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.earlier_wall_s = float(state_dict.get("wall_time_s", 0.0))
        self.earlier_fit_s = float(state_dict.get("fit_time_s", 0.0))
        self.segments = int(state_dict.get("segments", 1)) + 1
        sums = state_dict.get("epoch_sums") or {}
        self._sums = dict(sums.get("metrics") or {})
        self._sums_epoch = sums.get("epoch")

    # ---------------------------------------------------------------- the fit
    def on_train_start(self, trainer, pl_module) -> None:
        hand_over_loader_states(trainer)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self._add_back_sums(trainer)
        step = trainer.fit_loop.epoch_loop.batch_progress.total.started  # steps before this one, resumes too
        seed_everything_for(self.seed, step, trainer.global_rank)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._add_back_sums(trainer)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self._add_back_sums(trainer)  # before Lightning computes the epoch's means
        self._sums = {}

    def _add_back_sums(self, trainer) -> None:
        """The cut epoch's sums added to each metric once it has been logged again in that epoch (addition is
        commutative, so the sum is bit for bit the uninterrupted run's)."""
        if not self._sums:
            return
        if self._sums_epoch != trainer.current_epoch:  # saved at an epoch's end: the resume starts a new one
            self._sums = {}
            return
        results = trainer.fit_loop.epoch_loop._results
        for key in list(self._sums):
            metric = results.get(key)
            if metric is None or not getattr(metric, "_update_count", 0):
                continue
            add_sums(metric, self._sums.pop(key))


def epoch_sums(trainer) -> dict[str, dict[str, torch.Tensor]]:
    """The running sums of the training epoch's ``on_epoch`` tensor metrics (Lightning's results collection of
    the training loop), as CPU tensors: the ``value`` (sum, max or min) and, for means, the ``cumulated_batch_size``."""
    out = {}
    for key, metric in trainer.fit_loop.epoch_loop._results.items():
        if not (metric.is_tensor and metric.meta.on_epoch) or not getattr(metric, "_update_count", 0):
            continue
        state = {"value": metric.value.detach().cpu().clone()}
        if metric.meta.is_mean_reduction:
            state["cumulated_batch_size"] = metric.cumulated_batch_size.detach().cpu().clone()
        out[key] = state
    return out


def add_sums(metric, saved: dict[str, torch.Tensor]) -> None:
    """Fold ``saved`` (:func:`epoch_sums` of one metric) into ``metric``'s running state."""
    value = saved["value"].to(device=metric.value.device, dtype=metric.value.dtype)
    meta = metric.meta
    if meta.is_max_reduction:
        metric.value = torch.maximum(metric.value, value)
    elif meta.is_min_reduction:
        metric.value = torch.minimum(metric.value, value)
    else:  # mean (a weighted sum and its weights) or sum
        metric.value = metric.value + value
        if meta.is_mean_reduction and "cumulated_batch_size" in saved:
            size = metric.cumulated_batch_size
            metric.cumulated_batch_size = size + saved["cumulated_batch_size"].to(size.device, size.dtype)


def hand_over_loader_states(trainer) -> None:
    """Give the training loaders the state of the checkpoint when Lightning did not (it set the loaders up
    before restoring the loops: ``trainer.estimated_stepping_batches`` in ``configure_optimizers``), and draw
    their iterator again: nothing has been drawn from it yet."""
    loop = trainer.fit_loop
    if not (loop.restarting and getattr(loop, "_combined_loader_states_to_load", None)):
        return
    if loop._combined_loader is None or loop._data_fetcher is None:
        return
    loop._load_combined_loader_states()
    iter(loop._data_fetcher)
