"""Errors that mean "the user asked for something wrong" (shown as one line with a hint), and the
checks that raise them."""

from __future__ import annotations

import math
from typing import Any


class ConfigError(ValueError):
    """Bad configuration, space file, architecture file or argument."""


class DataFileError(ConfigError):
    """A data file found broken while the run reads it: fixed or removed, the run can go on from its
    last checkpoint (the entry points add how, since only they know whether one was written)."""


def user_message(exc: BaseException) -> str:
    """The message of a user error, on one line; raised in a DataLoader worker, the loader re-raises it
    with the worker's traceback in the message, whose last exception line is the message."""
    text = str(exc)
    if "Original Traceback" in text:
        for line in reversed(text.splitlines()):
            if line.split(": ", 1)[0].endswith("Error") and ": " in line:
                text = line.split(": ", 1)[1]
                break
    return " ".join(text.split())


def find_cause(exc: BaseException | None, kind: type[BaseException] = ConfigError) -> BaseException | None:
    """The first exception of type ``kind`` in ``exc``'s chain of causes (also when wrapped, e.g. by
    ``hydra.utils.instantiate`` or a DataLoader worker), or None."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, kind):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


def find_data_file_error(exc: BaseException | None) -> DataFileError | None:
    """The :class:`DataFileError` behind ``exc`` (also when wrapped), or None."""
    return find_cause(exc, DataFileError)


def data_file_advice(message: str, last_checkpoint, output_dir) -> str:
    """``message`` of a :class:`DataFileError` with how to go on: resume when a checkpoint exists, else
    run the command again."""
    if last_checkpoint.is_file():
        return f"{message}, then resume with ckpt_path=last hydra.run.dir={output_dir}"
    return f"{message}, then run the same command again (no checkpoint was written yet)"


class NonFiniteLossError(ConfigError):
    """The search diverged (a NaN or infinite loss / log-likelihood): a user error, since the fix is a
    setting (learning rates, search.importance_temperature) or the data, reported as one line naming
    the step and the last good checkpoint."""


class MissingExtraError(ConfigError):
    """An optional dependency is not installed; the message names the pip extra that installs it."""


def require_extra(extra: str, modules: tuple[str, ...], needed_for: str) -> None:
    """Import ``modules``, else a :class:`MissingExtraError` saying ``pip install -e ".[<extra>]"``."""
    import importlib

    missing = []
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    if missing:
        raise MissingExtraError(
            f"{needed_for} needs {' and '.join(missing)}, which {'is' if len(missing) == 1 else 'are'} not "
            f'installed: pip install -e ".[{extra}]"'
        )


def check_option(
    key: str,
    value: Any,
    kind: type,
    minimum: float | None = None,
    maximum: float | None = None,
    *,
    exclusive: bool = False,
    example: Any = None,
    none_ok: bool = False,
):
    """``value`` of config key ``key`` as ``kind`` (``int``, ``float`` or ``bool``), else a :class:`ConfigError`
    saying what the key must be and, with ``example``, a value that works.

    ``minimum`` / ``maximum`` bound numbers (``exclusive`` makes the minimum a strict bound).
    Written here rather than as Hydra structured configs so that every message says how to fix it
    in one line, and other modules keep their plain YAML groups.
    """
    if value is None and none_ok:
        return None
    if kind is bool:
        ok = isinstance(value, bool)
        what = "true or false"
    else:
        numeric = (int,) if kind is int else (int, float)
        ok = isinstance(value, numeric) and not isinstance(value, bool) and (kind is int or math.isfinite(value))
        bounds = []
        if minimum is not None:
            bounds.append(f"{'>' if exclusive else '>='} {minimum:g}")
            ok = ok and (value > minimum if exclusive else value >= minimum)
        if maximum is not None:
            bounds.append(f"<= {maximum:g}")
            ok = ok and value <= maximum
        what = " ".join(["an integer" if kind is int else "a number", " and ".join(bounds)]).strip()
    if not ok:
        hint = f"; e.g. {key}={example}" if example is not None else ""
        null = " (or null)" if none_ok else ""
        shown = "null" if value is None else repr(value)
        raise ConfigError(f"{key}={shown} is invalid: it must be {what}{null}{hint}")
    return kind(value)


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


def check_required(cfg, prefix: str = "") -> None:
    """Every ``???`` (required) value of ``cfg`` is set, else a :class:`ConfigError` naming the key.

    Walks the config without resolving interpolations (``${hydra:...}`` needs a running Hydra).
    """
    from omegaconf import DictConfig, OmegaConf

    for key in cfg:
        full = f"{prefix}{key}"
        if OmegaConf.is_missing(cfg, key):
            raise ConfigError(
                f"{full} is required and has no value: give it on the command line, "
                f"e.g. {full}=<value> (see the comment next to it in conf/)"
            )
        if not OmegaConf.is_interpolation(cfg, key) and isinstance(cfg[key], DictConfig):
            check_required(cfg[key], f"{full}.")


def instantiate_checked(node, group: str, **kwargs):
    """``hydra.utils.instantiate(node, **kwargs)``, but an unknown key names itself and the allowed
    ones (Hydra would report a TypeError from deep inside the call)."""
    import inspect

    from hydra.utils import get_method, instantiate

    target = node.get("_target_")
    try:
        params = inspect.signature(get_method(target)).parameters
    except Exception:  # noqa: BLE001 - not importable: let instantiate report it
        params = None
    if params is not None and not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        unknown = sorted(k for k in node if not str(k).startswith("_") and k not in params)
        if unknown:
            raise ConfigError(
                f"{group}.{unknown[0]} is not an option of {target}; "
                f"known: {sorted(k for k in params if k != 'self' and k not in kwargs)}"
            )
    return instantiate(node, **kwargs)


def instantiate_trainer(node, **kwargs):
    """``pytorch_lightning.Trainer`` from the ``trainer`` node; Lightning's own argument checks
    (``trainer.devices=abc``, ``trainer.precision=17``, an accelerator this machine lacks) become one
    :class:`ConfigError` line instead of Hydra's instantiation report."""
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate
    from pytorch_lightning.utilities.exceptions import MisconfigurationException

    from fpnas.checkpointing import AtomicCheckpointIO

    kwargs.setdefault("plugins", [AtomicCheckpointIO()])  # every checkpoint written atomically
    try:
        return instantiate(node, **kwargs)
    except InstantiationException as exc:
        cause = exc.__cause__
        if isinstance(cause, (ValueError, TypeError, ImportError, MisconfigurationException)):
            reason = " ".join(str(cause).split())
            raise ConfigError(f"trainer: pytorch_lightning.Trainer rejects the trainer.* settings: {reason}") from exc
        raise
