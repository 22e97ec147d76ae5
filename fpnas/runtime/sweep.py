"""``-m`` sweeps: every job's config is checked before the first job runs (a Hydra callback)."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import Any

from hydra import compose
from hydra.experimental.callback import Callback
from hydra.utils import get_method
from omegaconf import DictConfig, OmegaConf

from fpnas.runtime.cli import find_user_error, full_error

log = logging.getLogger("fpnas")


def sweep_jobs(config) -> list[list[str]]:
    """The override list of every job of the ``-m`` sweep ``config`` describes (Hydra's basic sweeper's
    expansion of the command line and ``hydra.sweeper.params``)."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    params = [f"{k}={v}" for k, v in (OmegaConf.select(config, "hydra.sweeper.params") or {}).items()]
    parsed = OverridesParser.create().parse_overrides([*params, *config.hydra.overrides.task])
    return [job for batch in BasicSweeper.split_arguments(parsed, None) for job in batch]


def job_error(config_name: str, overrides: list[str], check: Callable[[DictConfig], None] | None = None) -> str | None:
    """Why the job with ``overrides`` would stop at its checks (None: it would start), as one line: its config
    composed, then ``check(config)`` (the entry point's own checks, raising :class:`~fpnas.errors.ConfigError`)."""
    try:
        cfg = compose(config_name=config_name, overrides=overrides)
        if check is not None:
            check(cfg)
    except Exception as exc:  # noqa: BLE001 - a composition error or a user error: both stop that job
        user = find_user_error(exc)
        return " ".join(str(user if user is not None else exc).split())
    return None


class ValidateSweep(Callback):
    """Before the first job of a ``-m`` sweep, every job's config is composed and checked as the job
    itself would check it (``check``: the dotted path of the entry point's check, e.g.
    ``fpnas.search.run.validate_search_config``); each bad one is named in one line. Then the sweep stops
    (exit 2) before any job has run, or, with ``skip_invalid_jobs=true``, runs the good jobs and skips the
    bad ones. Built from ``hydra.callbacks.validate_sweep`` of conf/hydra/default.yaml, the one home of ``check``."""

    def __init__(self, check: str | None):
        self.check = check  # resolved only when a sweep starts: a single run must not import what it names

    def on_multirun_start(self, config, **kwargs: Any) -> None:
        jobs = sweep_jobs(config)
        check = get_method(self.check) if self.check else None
        values: dict[str, set] = {}
        for job in jobs:
            for o in job:
                values.setdefault(o.split("=", 1)[0], set()).add(o)
        varying = {k for k, v in values.items() if len(v) > 1}  # the swept keys: name a job by them
        bad = []
        for num, job in enumerate(jobs):
            reason = job_error(config.hydra.job.config_name, job, check)
            if reason is not None:
                shown = " ".join(o for o in job if o.split("=", 1)[0] in varying) or " ".join(job)
                bad.append(f"sweep job {num} ({shown}): {reason}")
        if not bad:
            return
        if config.get("skip_invalid_jobs") is True:
            for line in bad:
                log.warning("skipping %s (skip_invalid_jobs=true)", line)
            return
        if full_error():
            raise ValueError("; ".join(bad))
        for line in bad:
            print(f"error: {line}", file=sys.stderr)
        print(
            f"error: {len(bad)} of {len(jobs)} sweep jobs would fail, so none was started; fix them, or add "
            "skip_invalid_jobs=true to run the others",
            file=sys.stderr,
        )
        sys.exit(2)
