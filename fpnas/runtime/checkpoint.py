"""Never lose a run: ``last.ckpt`` kept current and written atomically, and the exit status of an interrupt.

Lightning 2.6's ``ModelCheckpoint`` is not used: with ``save_top_k: 0`` it writes ``last.ckpt`` only
at the end of the fit, it takes one trigger (epochs, steps or time), and it versions file names
(``last-v1.ckpt``) instead of replacing the run's checkpoint. Lightning's own atomic save goes through
a temporary file in the system's temp directory and ``shutil.move``, which is a plain copy when that
directory is on another file system (a cluster's local ``/tmp`` vs the shared run directory).
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO
from pytorch_lightning.callbacks import Checkpoint
from pytorch_lightning.utilities import rank_zero_info

from fpnas.errors import ConfigError

# exit statuses of an interrupted run, as a shell reports a process killed by the signal (128 + signal)
EXIT_SIGINT, EXIT_SIGTERM = 128 + signal.SIGINT, 128 + signal.SIGTERM


class AtomicCheckpointIO(TorchCheckpointIO):
    """``torch.save`` to a temporary file beside the target, flushed to disk, then ``os.replace``:
    a kill at any moment leaves either the previous checkpoint or the new one, never a damaged file."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        if storage_options is not None:
            raise TypeError("AtomicCheckpointIO.save_checkpoint takes no storage_options")
        atomic_torch_save(checkpoint, path)


def atomic_torch_save(obj: Any, path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    try:  # the rename itself survives a power cut once the directory entry is on disk
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        pass


class LastCheckpoint(Checkpoint):
    """Keeps ``path`` (``<run dir>/checkpoints/last.ckpt``) the full state of the run: after every epoch,
    every ``every_n_steps`` training steps, every ``every_n_minutes`` minutes, at the end, and when Ctrl-C
    or SIGTERM (a cluster's preemption) stops the run; always the same file, replaced atomically.

    A run stopped by a signal exits with 130 (Ctrl-C) or 143 (SIGTERM) after the save, so that a
    scheduler requeues it instead of treating it as finished (:func:`exit_status_of_interrupt`).
    A :class:`~pytorch_lightning.callbacks.Checkpoint`, so Lightning runs it after the other callbacks
    (the state it saves includes theirs for the step) and adds no checkpoint callback of its own.
    """

    def __init__(self, path: str, every_n_steps: int = 0, every_n_minutes: float = 0.0):
        for key, value, kind in (("every_n_steps", every_n_steps, int), ("every_n_minutes", every_n_minutes, float)):
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or value < 0
                or (kind is int and int(value) != value)
            ):
                raise ConfigError(
                    f"callbacks.checkpoint.{key}={value!r} is invalid: it must be "
                    f"{'an integer' if kind is int else 'a number'} >= 0 (0 = off)"
                )
        self.path = Path(path)
        self.every_n_steps = int(every_n_steps)
        self.every_n_minutes = float(every_n_minutes)
        self._last_time = time.monotonic()
        self.interrupted_by: str | None = None  # "SIGINT" | "SIGTERM" once a signal stopped the run
        self.saves: list[float] = []  # seconds per save (the checkpoint overhead, for the benchmarks)
        self._saved_at: int | None = None  # global step of the last save

    def save(self, trainer: pl.Trainer) -> None:
        start = time.perf_counter()
        trainer.save_checkpoint(self.path)  # every rank takes part; rank 0 writes
        self.saves.append(time.perf_counter() - start)
        self._last_time = time.monotonic()
        self._saved_at = trainer.global_step

    def on_fit_start(self, trainer, pl_module) -> None:
        self._last_time = time.monotonic()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        done = trainer.fit_loop.epoch_loop.batch_progress.total.processed  # training steps so far, resumes too
        due = bool(self.every_n_steps) and done % self.every_n_steps == 0
        if self.every_n_minutes and not due:
            due = time.monotonic() - self._last_time >= 60 * self.every_n_minutes
            due = bool(trainer.strategy.broadcast(due, src=0))  # rank 0's clock decides for everyone
        last_of_epoch = batch_idx + 1 >= trainer.num_training_batches  # the epoch end saves anyway
        if due and not last_of_epoch:
            self.save(trainer)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.save(trainer)

    def on_train_end(self, trainer, pl_module) -> None:
        if self._saved_at != trainer.global_step:  # stopped inside an epoch (max_steps, a time limit)
            self.save(trainer)

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        from pytorch_lightning.utilities.exceptions import SIGTERMException

        if trainer.state.fn != "fit":
            return
        if isinstance(exception, (KeyboardInterrupt, SIGTERMException)):
            self.interrupted_by = "SIGINT" if isinstance(exception, KeyboardInterrupt) else "SIGTERM"
            self.save(trainer)
            rank_zero_info(
                f"[fpnas] interrupted ({self.interrupted_by}) at step "
                f"{trainer.fit_loop.epoch_loop.batch_progress.total.completed}: saved {self.path}; "
                "resume with ckpt_path=last (same hydra.run.dir)"
            )


def exit_status_of_interrupt(trainer: pl.Trainer) -> int | None:
    """130 / 143 when a signal stopped ``trainer``'s fit (after :class:`LastCheckpoint` saved), else None."""
    for callback in trainer.callbacks:
        if isinstance(callback, LastCheckpoint) and callback.interrupted_by:
            return EXIT_SIGINT if callback.interrupted_by == "SIGINT" else EXIT_SIGTERM
    return None


def check_checkpoint(key: str, path, module=None, ignore: tuple[str, ...] = (), resumes: str | None = None) -> None:
    """``path`` (config key ``key``) must be a readable PyTorch checkpoint; with ``module``, its
    ``state_dict`` must hold exactly ``module``'s tensors with the same shapes (a checkpoint of another
    space or architecture would otherwise fail deep inside Lightning).

    Tensors whose name starts with one of ``ignore`` are not compared. ``resumes`` ("search.py" or
    "train.py"): the program that resumes it, so that the other one's checkpoint is named as such, with
    what to do instead. Memory-maps the file, so tensors are not read.
    """
    import zipfile
    from pathlib import Path

    import torch

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{key}={path}: no such file; give a checkpoint file (e.g. <run dir>/checkpoints/last.ckpt)")
    damaged = (
        f"{key}={path} is not a readable PyTorch checkpoint ({{}}); it is damaged (e.g. a copy cut short) "
        "or another kind of file: give another checkpoint, e.g. the run's checkpoints/last.ckpt"
    )
    if not zipfile.is_zipfile(path):  # torch.save (and so Lightning) writes zip archives
        raise ConfigError(damaged.format("not a torch.save zip archive"))
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False, mmap=True)
    except Exception as exc:  # noqa: BLE001 - any failure to read means the file is not a checkpoint
        raise ConfigError(damaged.format(f"{type(exc).__name__}: {' '.join(str(exc).split())[:120]}")) from None
    state = ckpt.get("state_dict") if isinstance(ckpt, dict) else None
    if module is None:
        return
    if state is None:
        raise ConfigError(f"{key}={path} holds no 'state_dict': it is not a Lightning checkpoint of fpnas")
    mine = {k: tuple(v.shape) for k, v in module.state_dict().items() if not k.startswith(ignore)}
    theirs = {k: tuple(v.shape) for k, v in state.items() if hasattr(v, "shape") and not k.startswith(ignore)}
    missing, extra = sorted(set(mine) - set(theirs)), sorted(set(theirs) - set(mine))
    wrong = sorted(k for k in set(mine) & set(theirs) if mine[k] != theirs[k])
    if missing or extra or wrong:
        detail = (
            f"{wrong[0]} has shape {list(theirs[wrong[0]])} there but {list(mine[wrong[0]])} here"
            if wrong
            else f"{len(missing)} tensor(s) missing (e.g. {missing[0]})"
            if missing
            else f"{len(extra)} unexpected tensor(s) (e.g. {extra[0]})"
        )
        kind = (
            "a search.py checkpoint"
            if "fpnas" in ckpt
            else "a train.py checkpoint"
            if "arch" in (ckpt.get("hyper_parameters") or {})
            else "a checkpoint"
        )
        if resumes == "train.py" and kind == "a search.py checkpoint":
            raise ConfigError(
                f"{key}={path} is a search.py checkpoint: train.py resumes only its own; to start training "
                f"from the search's super-net weights give init.from_search={path} (with arch=<run dir>/arch.yaml)"
            )
        if resumes == "search.py" and kind == "a train.py checkpoint":
            raise ConfigError(
                f"{key}={path} is a train.py checkpoint: search.py resumes only search checkpoints "
                "(<search run dir>/checkpoints/last.ckpt)"
            )
        raise ConfigError(
            f"{key}={path} is {kind} of another space or architecture ({detail}); resume with the "
            "settings it was written with (space=, data=, arch=) or start a new run"
        )
