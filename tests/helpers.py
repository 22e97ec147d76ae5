"""Test-only callbacks, importable by the entry points' subprocesses (``+callbacks.x._target_=tests.helpers.X``)."""
from __future__ import annotations

import os
import signal

import pytorch_lightning as pl


class SignalAtStep(pl.Callback):
    """Sends ``signal`` (SIGTERM, SIGINT or SIGKILL) to this process after training step ``step``: a real
    signal at a chosen point, e.g. in the middle of an epoch."""

    def __init__(self, step: int, signal: str = "SIGTERM"):
        self.step, self.signal = int(step), str(signal)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.fit_loop.epoch_loop.batch_progress.total.processed == self.step:
            os.kill(os.getpid(), getattr(signal, self.signal))


class ReverseWithinBatch(pl.Callback):
    """Reverses the order of the images inside every training batch: mathematically a no-op, so a search
    run with it differs from one without only by floating-point summation order (a control for how much
    rounding alone makes two runs drift apart)."""

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        for part in batch.values():
            for t in part:
                t.copy_(t.flip(0))
