"""The files of a run directory (``hydra.run.dir``), named in one place.

``search.py`` writes ``arch.yaml``, ``search_summary.json``, ``checkpoints/last.ckpt``, ``plots/``
and ``top_archs.yaml`` (+ ``top_archs/rank_<i>.yaml``); ``train.py`` writes ``arch.yaml``,
``train_summary.json`` and ``checkpoints/last.ckpt``; both log to ``csv/`` or ``tensorboard/``.
Beside ``last.ckpt``: ``previous.ckpt`` (the generation before it) and ``checksums.sha256``.
The callbacks' file paths in ``conf/callbacks/default.yaml`` are the same names.

A search for a family of targets (``cost.target_mflops=[a,b,c]``) writes what one search writes for each
member into ``target_<i>/`` (:func:`member_path`, :meth:`RunDir.member`), and ``family_summary.csv`` /
``family.png`` / ``search_summary.json`` of the whole family at the top; the checkpoints and logs stay at the top.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


def member_path(path: str | Path, index: int, members: int) -> Path:
    """Where member ``index`` of a search with ``members`` targets writes the file a single search writes at
    ``path``: the same name in ``target_<index>/`` beside it (``path`` itself for a single target)."""
    path = Path(path)
    return path if members == 1 else path.parent / f"target_{index}" / path.name


@dataclass(frozen=True)
class RunDir:
    root: Path

    def __init__(self, root: str | Path):
        object.__setattr__(self, "root", Path(root))

    def member(self, index: int) -> RunDir:
        """The folder of member ``index`` of a family search: ``target_<index>/``."""
        return RunDir(self.root / f"target_{index}")

    @property
    def family_summary(self) -> Path:
        """One row per member of a family search (target, MFLOPs, params, val acc, entropy...)."""
        return self.root / "family_summary.csv"

    @property
    def family_picture(self) -> Path:
        """Validation accuracy against MFLOPs of the members of a family search."""
        return self.root / "family.png"

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
