"""What ``search.py`` and ``train.py`` show on the terminal: their own lines, a progress bar that fits
80 columns, and none of the third-party noise a user cannot act on.

The filters are installed by the entry points (:func:`quiet_third_party`), never on import of the
library: a program that imports fpnas keeps every warning it would see otherwise.
"""

from __future__ import annotations

import logging
import shutil
import warnings

from pytorch_lightning.callbacks import TQDMProgressBar

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


def progress_callbacks(trainer_cfg) -> list:
    """The progress bar of ``trainer_cfg`` (``trainer.enable_progress_bar``): the compact one."""
    return [CompactProgressBar()] if trainer_cfg.get("enable_progress_bar", True) else []
