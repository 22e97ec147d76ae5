"""Loggers whose history survives a resume.

Lightning's ``CSVLogger`` deletes ``metrics.csv`` when its writer starts in a directory that has one,
so a resumed run kept only the rows after the resume, and a run that failed early could delete an
earlier run's history. Here the file is kept: at the first save, rows of the steps being logged
again (work done after the checkpoint that a kill lost) are dropped and the new rows appended.
"""

from __future__ import annotations

import csv
from typing import Any

from pytorch_lightning.loggers import CSVLogger as _CSVLogger
from pytorch_lightning.loggers.csv_logs import ExperimentWriter
from pytorch_lightning.loggers.logger import rank_zero_experiment

from fpnas.errors import require_extra


class _ContinuingWriter(ExperimentWriter):
    """``ExperimentWriter`` that continues an existing ``metrics.csv`` instead of deleting it."""

    def __init__(self, log_dir: str) -> None:
        self._continued = False
        super().__init__(log_dir)

    def _check_log_dir_exists(self) -> None:  # Lightning's deletes the previous metrics.csv here
        pass

    def save(self) -> None:
        if not self._continued and self.metrics and self._fs.isfile(self.metrics_file_path):
            self._continued = True
            first_step = min(m["step"] for m in self.metrics)
            with self._fs.open(self.metrics_file_path, "r", newline="") as f:
                reader = csv.DictReader(f)
                keys = list(reader.fieldnames or [])
                kept = [row for row in reader if _step(row) < first_step]
            self.metrics_keys = sorted(set(self.metrics_keys) | set(keys))
            with self._fs.open(self.metrics_file_path, "w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=self.metrics_keys)
                writer.writeheader()
                writer.writerows(kept)
        self._continued = self._continued or bool(self.metrics)  # an early save() of no metrics does not count
        super().save()


def _step(row: dict[str, Any]) -> float:
    try:
        return float(row.get("step") or 0)
    except ValueError:
        return 0.0


class CSVLogger(_CSVLogger):
    """Lightning's ``CSVLogger``, continuing the run's ``metrics.csv`` across resumes."""

    @property
    @rank_zero_experiment
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _ContinuingWriter(log_dir=self.log_dir)
        return self._experiment


class MLFlowLogger:
    """Lightning's ``MLFlowLogger`` (built on first use, so that a missing ``mlflow`` is one clear line:
    ``pip install -e ".[mlflow]"``). ``tracking_uri`` a local ``file:`` store by default: every run
    of a sweep lands in one experiment there, to compare them in ``mlflow ui``."""

    def __new__(cls, *args, **kwargs):

        require_extra("mlflow", ("mlflow",), "logger=mlflow")
        import os

        from pytorch_lightning.loggers import MLFlowLogger as _MLFlowLogger

        if str(kwargs.get("tracking_uri") or "").startswith("file:"):
            # MLflow 3 keeps the file store in maintenance mode and refuses it unless told; it needs no
            # database or server, which is what a local sweep wants (sqlite:///... is the alternative)
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")

        return _MLFlowLogger(*args, **kwargs)
