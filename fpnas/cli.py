"""Thin helpers for the Hydra entry points: user errors become one clear line."""
from __future__ import annotations

import os
import sys
from typing import Callable

from fpnas.errors import ConfigError


def run_reporting_user_errors(fn: Callable, *args):
    """Call ``fn``; a :class:`ConfigError` exits with status 2 and one line (full trace with
    ``HYDRA_FULL_ERROR=1``)."""
    try:
        return fn(*args)
    except Exception as exc:  # noqa: BLE001 - re-raised unless it is a user error
        user_error = find_user_error(exc)
        if user_error is None or os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        print(f"error: {user_error}", file=sys.stderr)
        sys.exit(2)


def find_user_error(exc: BaseException | None) -> ConfigError | None:
    """The :class:`ConfigError` behind ``exc``, also when wrapped (e.g. by ``hydra.utils.instantiate``)."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, ConfigError):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None
