"""The terminal's log handler of search.py and train.py (conf/hydra/*.yaml ``job_logging``), and the
``progress`` option's check (run before the heavy imports).

Its own module, importing nothing heavy: Hydra imports it while it configures logging, and a
``pytorch_lightning`` imported before that installs its own stderr handler and stops its loggers
from reaching Hydra's (the lines would miss ``search.log``).
"""

from __future__ import annotations

import logging

from fpnas.errors import ConfigError


class ProgressAwareHandler(logging.StreamHandler):
    """A line logged while a progress bar is drawn clears the bar, prints and redraws it
    (``tqdm.write``) instead of being glued to the bar's end; as tqdm's own handler in
    ``tqdm.contrib.logging``, which is private to that module."""

    def emit(self, record: logging.LogRecord) -> None:
        from tqdm import tqdm

        try:
            tqdm.write(self.format(record), file=self.stream)
            self.flush()
        except Exception:  # logging's contract: a failing handler reports, never raises
            self.handleError(record)


PROGRESS = ("auto", "bar", "lines")  # the `progress` key of search.yaml and train.yaml


def check_progress(progress) -> None:
    if progress not in PROGRESS:
        raise ConfigError(f"progress must be one of {list(PROGRESS)}, got {progress!r}; e.g. progress=lines")
