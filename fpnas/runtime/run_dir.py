"""The files of a run directory (``hydra.run.dir``), named in one place.

``search.py`` writes ``arch.yaml``, ``search_summary.json``, ``checkpoints/last.ckpt``, ``plots/``
and ``top_archs.yaml`` (+ ``top_archs/rank_<i>.yaml``); ``train.py`` writes ``arch.yaml``,
``train_summary.json`` and ``checkpoints/last.ckpt``; both log to ``csv/`` or ``tensorboard/``.
Beside ``last.ckpt``: ``previous.ckpt`` (the generation before it) and ``checksums.sha256``.
The callbacks' file paths in ``conf/callbacks/default.yaml`` are the same names.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class RunDir:
    root: Path

    def __init__(self, root: str | Path):
        object.__setattr__(self, "root", Path(root))

    @property
    def arch(self) -> Path:
        """The exported (search) or trained (train) architecture."""
        return self.root / "arch.yaml"

    @property
    def last_checkpoint(self) -> Path:
        """The full state, replaced atomically; ``ckpt_path=last`` resumes from it."""
        return self.root / "checkpoints" / "last.ckpt"

    @property
    def previous_checkpoint(self) -> Path:
        """The checkpoint saved before ``last.ckpt`` (one generation earlier): what a resume falls back to
        when ``last.ckpt`` fails its checksum (:func:`fpnas.runtime.checkpoint.previous_generation`)."""
        return self.root / "checkpoints" / "previous.ckpt"

    @property
    def checkpoint_checksums(self) -> Path:
        """SHA-256 of ``last.ckpt`` and ``previous.ckpt``, in ``sha256sum`` format (``cd checkpoints &&
        sha256sum -c checksums.sha256`` checks them by hand); a resume verifies the file against it."""
        return self.root / "checkpoints" / "checksums.sha256"

    @property
    def top_archs(self) -> Path:
        return self.root / "top_archs.yaml"

    @property
    def top_archs_dir(self) -> Path:
        """``rank_<i>.yaml``: each top-k entry as an ordinary architecture file."""
        return self.root / "top_archs"

    @property
    def search_summary(self) -> Path:
        return self.root / "search_summary.json"

    @property
    def train_summary(self) -> Path:
        return self.root / "train_summary.json"

    def outputs(self, kind: str) -> list[Path]:
        """The files a run of ``kind`` (``search`` | ``train``) may leave, in the order summaries list them."""
        summary = self.search_summary if kind == "search" else self.train_summary
        extra = [self.root / "plots", self.top_archs] if kind == "search" else []
        return [
            self.arch,
            summary,
            self.last_checkpoint,
            *extra,
            self.root / "csv" / "metrics.csv",
            self.root / "tensorboard",
        ]
