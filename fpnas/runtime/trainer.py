"""The one place a ``pytorch_lightning.Trainer`` is built, for search and train alike."""

from __future__ import annotations

import time

from omegaconf import DictConfig

from fpnas.errors import ConfigError, data_file_advice, find_data_file_error, user_message
from fpnas.runtime.checkpoint import AtomicCheckpointIO, exit_status_of_interrupt
from fpnas.runtime.exact_resume import ExactResume
from fpnas.runtime.resume import continue_logs
from fpnas.runtime.run_dir import RunDir
from fpnas.runtime.settings import RecordSettings
from fpnas.runtime.threads import ThreadPolicy


def build_trainer(cfg: DictConfig, progress: list, ckpt_path: str | None = None, started: float | None = None):
    """The run's ``pytorch_lightning.Trainer``, for ``search.py`` and ``train.py`` alike: the ``trainer``
    node with the config's ``callbacks`` and ``logger`` groups, the thread policy, the ``progress`` callbacks
    (what the console shows, :func:`fpnas.report.console.progress_callbacks`), atomic checkpoint writes and
    :class:`~fpnas.runtime.exact_resume.ExactResume` (a resume from any step continues exactly, and the
    summaries count the time of every segment; ``started``: when this run's program started, default now);
    the loggers of a run resumed from ``ckpt_path`` continue its history."""
    from hydra.utils import instantiate

    callbacks = [instantiate(c) for c in (cfg.get("callbacks") or {}).values() if c is not None]
    callbacks.append(ThreadPolicy(cfg.threads))
    callbacks.append(ExactResume(seed=int(cfg.get("seed") or 0), started=started))
    callbacks.append(RecordSettings(cfg))  # what each checkpoint was computed with, compared on resume
    callbacks += progress
    loggers = [instantiate(c) for c in (cfg.get("logger") or {}).values() if c is not None]
    if ckpt_path:
        continue_logs(loggers, ckpt_path)
    return instantiate_trainer(cfg.trainer, callbacks=callbacks, logger=loggers or False)


def instantiate_trainer(node, **kwargs):
    """``pytorch_lightning.Trainer`` from the ``trainer`` node; Lightning's own argument checks
    (``trainer.devices=abc``, ``trainer.precision=17``, an accelerator this machine lacks) become one
    :class:`ConfigError` line instead of Hydra's instantiation report."""
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate
    from pytorch_lightning.utilities.exceptions import MisconfigurationException

    kwargs.setdefault("plugins", [AtomicCheckpointIO()])  # every checkpoint written atomically
    try:
        return instantiate(node, **kwargs)
    except InstantiationException as exc:
        cause = exc.__cause__
        if isinstance(cause, (ValueError, TypeError, ImportError, MisconfigurationException)):
            reason = " ".join(str(cause).split())
            raise ConfigError(f"trainer: pytorch_lightning.Trainer rejects the trainer.* settings: {reason}") from exc
        raise


def fit(trainer, module, datamodule, ckpt_path: str | None, run: RunDir) -> float:
    """``trainer.fit`` as ``search.py`` and ``train.py`` run it; returns its seconds. A fit stopped by Ctrl-C or
    SIGTERM (after :class:`~fpnas.runtime.checkpoint.LastCheckpoint` saved) exits with 130 / 143; a broken data
    file becomes one :class:`ConfigError` line saying how to go on (resume, or run again)."""
    start = time.time()
    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)
    except SystemExit as exc:
        code = exit_status_of_interrupt(trainer)
        raise SystemExit(code if code is not None else exc.code) from None
    except Exception as exc:
        broken = find_data_file_error(exc)
        if broken is None:
            raise
        raise ConfigError(data_file_advice(user_message(broken), run.last_checkpoint, run.root)) from None
    return time.time() - start


def end_distributed() -> None:
    """Close the process group a DDP fit opened (a process that exits with it open may abort at exit)."""
    import torch

    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
