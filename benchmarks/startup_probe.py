"""The clock ``benchmarks/startup.py`` adds to a real ``search.py`` run (a Hydra override, never a default).

    PYTHONPATH=<a directory holding only this file> python search.py \
        +callbacks.startup_probe._target_=startup_probe.FirstStepProbe +callbacks.startup_probe.path=probe.json

Records wall-clock times (``time.time()``, the clock the parent's launch time and the log's
timestamps use) when the search's callbacks are built, after the data module's ``setup`` and
around the first training step; writes them to ``path`` as JSON after the first step. Prints
``MARKER`` to stderr when built, so that ``-X importtime`` lines before it are the start-up's imports.
Imports nothing beyond Lightning, which the search has loaded already.
"""

from __future__ import annotations

import json
import sys
import time

import pytorch_lightning as pl

MARKER = "startup_probe: callbacks built"


class FirstStepProbe(pl.Callback):
    """Timestamps of the start-up phases of the run it is passed to; see the module docstring."""

    def __init__(self, path: str):
        self.times = {"callbacks_built": time.time()}
        # ends the imports that count as start-up imports in `python -X importtime` output (same stream)
        print(MARKER, file=sys.stderr, flush=True)
        self.path = str(path)

    def setup(self, trainer, pl_module, stage) -> None:  # Lightning calls it after the data module's setup
        self.times.setdefault("data_setup_done", time.time())

    def on_train_start(self, trainer, pl_module) -> None:
        self.times.setdefault("train_start", time.time())

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.times.setdefault("first_step_start", time.time())

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if "first_step_end" not in self.times:
            self.times["first_step_end"] = time.time()
            with open(self.path, "w") as f:
                json.dump({**self.times, "fpnas": sys.modules["fpnas"].__file__}, f)
