"""The one place a ``pytorch_lightning.Trainer`` is built, for search and train alike."""

from __future__ import annotations

from omegaconf import DictConfig

from fpnas.errors import ConfigError
from fpnas.runtime.checkpoint import AtomicCheckpointIO
from fpnas.runtime.resume import continue_logs
from fpnas.runtime.threads import ThreadPolicy


def build_trainer(cfg: DictConfig, progress: list, ckpt_path: str | None = None):
    """The run's ``pytorch_lightning.Trainer``, for ``search.py`` and ``train.py`` alike: the ``trainer``
    node with the config's ``callbacks`` and ``logger`` groups, the thread policy, the ``progress`` callbacks
    (what the console shows, :func:`fpnas.report.console.progress_callbacks`) and atomic checkpoint writes;
    the loggers of a run resumed from ``ckpt_path`` continue its history."""
    from hydra.utils import instantiate

    callbacks = [instantiate(c) for c in (cfg.get("callbacks") or {}).values() if c is not None]
    callbacks.append(ThreadPolicy(cfg.threads))
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
