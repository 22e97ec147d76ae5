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


class DamagedCheckpointError(ConfigError):
    """No intact checkpoint to resume from: the file fails its checksum (and so does the one saved before
    it, or there is none); the message names the files and what to do."""


class CheckpointWriteError(ConfigError):
    """A checkpoint could not be written (a full disk, a quota, a read-only or failing file system): one line
    naming the file, the error, the free space and the size of the last checkpoint; the earlier checkpoint
    is kept as it was."""


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
