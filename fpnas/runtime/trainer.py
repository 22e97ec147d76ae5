"""The one place a ``pytorch_lightning.Trainer`` is built, for search and train alike."""

from __future__ import annotations

from fpnas.errors import ConfigError
from fpnas.runtime.checkpoint import AtomicCheckpointIO


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
