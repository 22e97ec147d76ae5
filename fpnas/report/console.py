"""What ``search.py`` and ``train.py`` show on the terminal: their own lines, a progress bar that fits
80 columns, and none of the third-party noise a user cannot act on.

The filters are installed by the entry points (:func:`quiet_third_party`), never on import of the
library: a program that imports fpnas keeps every warning it would see otherwise.
"""

from __future__ import annotations

import logging
import shutil
import sys
import time
import warnings

from pytorch_lightning.callbacks import ProgressBar, TQDMProgressBar
from pytorch_lightning.utilities import rank_zero_info

from fpnas.report.log_handler import check_progress

# Warnings users cannot act on: (message regex, why it is noise here)
NOISE_WARNINGS = (
    # Lightning 2.6's own use of torch's pytree API; nothing in fpnas or a user's config triggers it
    (r"`isinstance\(treespec, LeafSpec\)` is deprecated", "Lightning internals"),
    # train.py's EMA copy of the model is in eval mode on purpose (timm's ModelEmaV3)
    (r"Found \d+ module\(s\) in eval mode at the start of training", "the EMA copy"),
    # train.py scores its held-out splits once, at the end (trainer.test), not after every epoch
    (r"You passed in a `val_dataloader` but have no `validation_step`", "train.py evaluates at the end"),
    # train.py's channels-last hook lives in the module, which is what Lightning then uses
    (r"You have overridden `on_after_batch_transfer` in `LightningModule`", "the module's hook is the one"),
)
NOISE_LOGS = (
    "💡 Tip:",  # Lightning's advertisements for its cloud services, printed at every fit
    "`weights_only` was not set",  # Lightning loading its own checkpoints (fpnas checks them before)
)


class _DropAdvertisements(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.getMessage()).startswith(NOISE_LOGS)


def one_line_warning(message, category, filename, lineno, line=None) -> str:
    """A warning as the entry points print it: ``warning: <message>`` on one line (Python's default
    shows the file, the line number and the source line of the call, which a user cannot act on)."""
    return f"warning: {' '.join(str(message).split())}\n"


def quiet_third_party() -> None:
    """Filter the warnings and log lines of :data:`NOISE_WARNINGS` / :data:`NOISE_LOGS` in this process,
    and print the other warnings as one line each (:func:`one_line_warning`)."""
    warnings.formatwarning = one_line_warning  # after Lightning's import, which installs its own format
    for pattern, _why in NOISE_WARNINGS:
        warnings.filterwarnings("ignore", message=pattern)
    drop = _DropAdvertisements()
    for name in (
        "pytorch_lightning.utilities.rank_zero",
        "lightning.pytorch.utilities.rank_zero",
        "pytorch_lightning.trainer.connectors.checkpoint_connector",
    ):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropAdvertisements) for f in logger.filters):
            logger.addFilter(drop)


class CompactProgressBar(TQDMProgressBar):
    """Lightning's progress bar with four short metrics and no rate, so that a line fits 80 columns
    (everything else is in the loggers): entropy ``H``, ``K``, the most likely architecture's
    ``MFLOPs`` and the training ``loss``."""

    SHOWN = {"search/entropy": "H", "search/K": "K", "search/flops_argmax": "MFLOPs", "train/loss_step": "loss"}
    BAR_FORMAT = (
        "{desc}{percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}{postfix}]"  # desc ends ": "
    )

    def init_train_tqdm(self):
        bar = super().init_train_tqdm()
        if bar.disable:  # ranks > 0: a disabled tqdm has none of a live bar's attributes (ncols, ...)
            return bar
        bar.bar_format = self.BAR_FORMAT
        if not bar.ncols:  # not a terminal (a pipe, a log file): $COLUMNS, else 80; tqdm fits the bar to it
            bar.dynamic_ncols, bar.ncols = False, shutil.get_terminal_size((80, 24)).columns
        return bar

    def get_metrics(self, trainer, pl_module) -> dict:
        items = super().get_metrics(trainer, pl_module)
        shown = {short: items[key] for key, short in self.SHOWN.items() if key in items}
        if "K" in shown:
            shown["K"] = int(shown["K"])
        return shown


class ProgressLines(ProgressBar):
    """Progress for a log file or a pipe (``python search.py > log 2>&1``, SLURM, nohup): one line per
    epoch, and one every ``every_seconds`` inside a long epoch, instead of a bar whose every redraw a file
    keeps. Each line: epoch, step, the loss, the α-split accuracy when there is one, entropy, K and
    MFLOPs of the most likely architecture (a search; each member's, ``a/b/c``, in a search for several
    targets), elapsed time and the time left."""

    SHOWN = (  # (metric, label, format)
        ("train/loss_epoch", "loss", ".4f"),
        ("val/acc", "val acc", ".4f"),
        ("search/entropy", "H", ".2f"),
        ("search/K", "K", ".0f"),
        ("search/flops_argmax", "MFLOPs", ".4g"),
    )

    def __init__(self, every_seconds: float = 60.0):
        super().__init__()
        self.every_seconds = float(every_seconds)
        self._enabled = True
        self._start = self._last = 0.0

    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    def on_train_start(self, trainer, pl_module) -> None:
        self._start = self._last = time.monotonic()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self._enabled and time.monotonic() - self._last >= self.every_seconds:
            self._emit(trainer, f"batch {batch_idx + 1}/{_count(self.total_train_batches)}", "train/loss_step")

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if self._enabled:
            self._emit(trainer, "done", "train/loss_epoch")

    def _emit(self, trainer, where: str, loss_key: str) -> None:
        now = time.monotonic()
        self._last = now
        metrics = trainer.callback_metrics
        epochs = trainer.max_epochs if trainer.max_epochs and trainer.max_epochs > 0 else None
        parts = [f"epoch {trainer.current_epoch + 1}" + (f"/{epochs}" if epochs else "") + f" {where}"]
        parts.append(f"step {trainer.fit_loop.epoch_loop._batches_that_stepped}")
        for key, label, fmt in ((loss_key, "loss", ".4f"), *self.SHOWN[1:]):
            values = _member_values(metrics, key)
            if values:
                parts.append(f"{label} " + "/".join(f"{float(v):{fmt}}" for v in values))
        elapsed = now - self._start
        parts.append(f"elapsed {_clock(elapsed)}")
        done = _fraction_done(trainer, self.total_train_batches)
        if epochs and done > 0:
            parts.append(f"ETA {_clock(elapsed * (1 - done) / done)}")
        rank_zero_info(" | ".join(parts))


def _member_values(metrics, key: str) -> list:
    """``metrics[key]``, or in a search for several targets each member's value of it in order
    (``val/acc/target_<i>``, ``search/target_<i>/entropy``); empty when there is none."""
    if key in metrics:
        return [metrics[key]]
    group, _, name = key.partition("/")
    values = []
    while True:
        i = len(values)
        member = f"{key}/target_{i}" if group == "val" else f"{group}/target_{i}/{name}"
        if member not in metrics:
            return values
        values.append(metrics[member])


def _count(n) -> str:
    return "?" if n == float("inf") else str(int(n))


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}" if h else f"{rest // 60}:{rest % 60:02d}"


def _fraction_done(trainer, batches_per_epoch) -> float:
    epochs = trainer.max_epochs or 0
    if epochs <= 0 or not batches_per_epoch or batches_per_epoch == float("inf"):
        return 0.0
    in_epoch = trainer.fit_loop.epoch_loop.batch_progress.current.processed
    return min(1.0, (trainer.current_epoch + in_epoch / batches_per_epoch) / epochs)


def progress_callbacks(trainer_cfg, progress: str = "auto") -> list:
    """The progress display (``progress``, when ``trainer.enable_progress_bar`` is on): ``bar`` the compact
    live bar, ``lines`` one :class:`ProgressLines` line per epoch, ``auto`` the bar in a terminal and lines
    when stdout is a file or a pipe."""
    check_progress(progress)
    if not trainer_cfg.get("enable_progress_bar", True):
        return []
    bar = progress == "bar" or (progress == "auto" and sys.stdout.isatty())
    return [CompactProgressBar()] if bar else [ProgressLines()]
