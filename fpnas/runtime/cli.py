"""Thin helpers for the Hydra entry points: user errors become one clear line."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from fpnas.errors import ConfigError, NonFiniteLossError, find_cause


def full_error() -> bool:
    """``HYDRA_FULL_ERROR=1``: show the traceback of user errors too."""
    return os.environ.get("HYDRA_FULL_ERROR") == "1"


def report(message) -> None:
    """Print ``error: <message>`` on one line to stderr and exit with status 2."""
    from fpnas.errors import user_message

    try:  # a live progress bar (tqdm, on stdout) has no newline yet: the error goes on a line of its own
        from tqdm import tqdm

        if getattr(tqdm, "_instances", None) and sys.stdout.isatty():
            print(file=sys.stdout, flush=True)
    except ImportError:
        pass
    print(
        "error: " + user_message(message if isinstance(message, BaseException) else ValueError(message)),
        file=sys.stderr,
    )
    sys.exit(2)


def run_reporting_user_errors(fn: Callable, *args, skipped=None):
    """Call ``fn(*args)``; a :class:`ConfigError` exits with status 2 and one line (full trace with
    ``HYDRA_FULL_ERROR=1``). When ``args[0]`` is a run's config, a run directory that holds nothing but
    this run's log is removed, and in a ``-m`` sweep with ``skip_invalid_jobs=true`` the job is skipped
    instead (one line) and ``skipped`` returned, so that the sweep goes on."""
    cfg = args[0] if args and isinstance(args[0], DictConfig) else None
    try:
        return fn(*args)
    except Exception as exc:  # noqa: BLE001 - re-raised unless it is a user error
        user_error = find_user_error(exc)
        if user_error is None or full_error():
            raise
        if isinstance(user_error, NonFiniteLossError) and global_rank() != 0:
            sys.exit(2)  # every process stops at the same step with the same message: print it once
        if cfg is not None:
            remove_unused_run_dir(cfg)
        if cfg is not None and cfg.get("skip_invalid_jobs") is True and in_sweep():
            import logging

            logging.getLogger("fpnas").warning(
                "skipped this sweep job (skip_invalid_jobs=true): %s", " ".join(str(user_error).split())
            )
            return skipped
        report(user_error)


def in_sweep() -> bool:
    """Whether this process runs a job of a Hydra ``-m`` sweep."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def remove_unused_run_dir(cfg: DictConfig) -> None:
    """A run refused before it started leaves no directory behind: the run directory is removed when
    it holds nothing but this run's log file (its handler closed first); anything else stays."""
    import logging

    out = Path(str(cfg.get("paths", {}).get("output_dir", ""))).absolute() if cfg.get("paths") else None
    if out is None or not out.is_dir():
        return
    logs = [h for h in logging.getLogger().handlers if Path(getattr(h, "baseFilename", "/")).parent == out]
    if not set(out.iterdir()) <= {Path(h.baseFilename) for h in logs}:
        return  # something else is there
    for handler in logs:  # the log (opened at its first line, maybe never) goes with the directory
        logging.getLogger().removeHandler(handler)
        handler.close()
        Path(handler.baseFilename).unlink(missing_ok=True)
    try:
        out.rmdir()
    except OSError:
        pass


def compose_checked(config_dir: str | Path, config_name: str, overrides: list[str]) -> DictConfig:
    """Hydra's ``compose`` of ``conf/<config_name>.yaml`` with ``overrides``, its composition errors (an
    unknown option or key, a malformed override) turned into a one-line :class:`ConfigError` that lists
    the available options."""
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException

    try:
        with initialize_config_dir(version_base="1.3", config_dir=str(config_dir)):
            return compose(config_name, overrides=list(overrides))
    except HydraException as exc:
        text = str(exc)
        head = " ".join(text.split("\n\n", 1)[0].split())
        options = [line.strip() for line in text.split("Available options in", 1)[-1].splitlines()[1:]]
        options = [o for o in options if o and not o.startswith(("Config search path", "provider="))]
        available = f"; available: {', '.join(options)}" if "Available options in" in text and options else ""
        raise ConfigError(f"{head}{available}") from None


def global_rank() -> int:
    """This process's rank in a multi-process run (Lightning's view; 0 in a single process)."""
    from pytorch_lightning.utilities.rank_zero import rank_zero_only

    return int(getattr(rank_zero_only, "rank", 0) or 0)


def find_user_error(exc: BaseException | None) -> ConfigError | None:
    """The :class:`ConfigError` behind ``exc``, also when wrapped (e.g. by ``hydra.utils.instantiate``)."""
    return find_cause(exc, ConfigError)


def unwritable_reason(directory: str | Path) -> str | None:
    """Why ``directory`` cannot be created or written (None if it can): checks its nearest existing
    ancestor, also where ``chmod`` would not stop root (a path below a regular file)."""
    path = Path(directory).expanduser().absolute()
    ancestor = path
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        return f"{ancestor} is a file, not a directory"
    if not os.access(ancestor, os.W_OK | os.X_OK):
        return f"{ancestor} is not writable"
    return None


class CheckOutputDir(Callback):
    """Hydra callback: an output directory that cannot be created stops the run with one line,
    before Hydra tries to create it (which would end in a traceback)."""

    def _check(self, key: str, directory: str) -> None:
        reason = unwritable_reason(directory)
        if reason is not None and not full_error():
            report(
                f"{key}={directory} cannot be created: {reason}; choose a writable directory, e.g. {key}=outputs/my_run"
            )

    def on_run_start(self, config: DictConfig, **kwargs) -> None:
        self._check("hydra.run.dir", config.hydra.run.dir)

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        self._check("hydra.sweep.dir", config.hydra.sweep.dir)
