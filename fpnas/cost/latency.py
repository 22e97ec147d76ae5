"""Measured latency look-up tables as an additive metric: load a table and predict an architecture's latency.

A table (built by :mod:`fpnas.tools.latency`) holds the time of every distinct block configuration of a
space, the stem and the head for every last width. A network's predicted latency is the sum of its
entries plus two correction terms fitted on a few architectures measured end to end (the network's own
call, and its weights not staying in the cache between blocks, per parameter). Both are additive, so the
table stays an additive metric. FBNet's ``mobile_cv/lut`` and Once-for-All's ``latency_table.py`` do the
same; the table is keyed by what the numbers depend on (space, input size, batch, device, dtype, torch
version, threads).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import platform
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from fpnas.errors import ConfigError
from fpnas.space.complexity import additive_tables, head_complexity, stem_complexity
from fpnas.space.spec import BlockConfig, SearchSpace

log = logging.getLogger("fpnas")

FORMAT = 1
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
SPACE_FIELDS = ("space", "spec_sha256", "input_size", "in_chans", "num_classes")


def space_key(space: SearchSpace) -> dict[str, Any]:
    """What identifies a space's networks: a table measured for another is refused."""
    spec = json.dumps(space.spec, sort_keys=True, default=str)
    return {
        "space": space.name,
        "spec_sha256": hashlib.sha256(spec.encode()).hexdigest()[:16],
        "input_size": space.input_size,
        "in_chans": space.in_chans,
        "num_classes": space.num_classes,
    }


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return platform.processor() or platform.machine() or "cpu"


def _config_key(cfg: BlockConfig) -> str:
    return json.dumps(asdict(cfg), sort_keys=True)


@dataclass
class LatencyTable:
    """Milliseconds per batch of every block configuration, the stem, the head per last width, and
    the correction terms (an additive metric: :meth:`additive_table`)."""

    key: dict[str, Any]
    blocks: dict[str, float] = field(default_factory=dict)  # BlockConfig as JSON -> ms
    stem_ms: float | None = None
    head_ms: dict[int, float] = field(default_factory=dict)  # last width -> ms
    overhead_ms: float = 0.0  # per network: its own call
    ms_per_mparam: float = 0.0  # per million parameters: weights that do not stay in cache end to end
    calibration: list[dict] = field(default_factory=list)  # {choices, measured_ms, sum_ms, mparams}
    complete: bool = False
    path: Path | None = None
    rounds: int = 1  # passes over every entry; an entry keeps its minimum
    measured: dict[str, int] = field(default_factory=dict)  # entry ("stem", "head/<w>", block key) -> passes done

    def record(self, name: str, ms: float) -> None:
        """One pass's measurement of an entry: its minimum so far is kept."""
        if name == "stem":
            self.stem_ms = ms if self.stem_ms is None else min(self.stem_ms, ms)
        elif name.startswith("head/"):
            w = int(name.split("/", 1)[1])
            self.head_ms[w] = min(self.head_ms.get(w, math.inf), ms)
        else:
            self.blocks[name] = min(self.blocks.get(name, math.inf), ms)
        self.measured[name] = self.measured.get(name, 0) + 1

    # ------------------------------------------------------------------ files
    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        doc = {
            "format": FORMAT,
            "key": self.key,
            "complete": self.complete,
            "stem_ms": self.stem_ms,
            "head_ms": {str(w): v for w, v in self.head_ms.items()},
            "overhead_ms": self.overhead_ms,
            "ms_per_mparam": self.ms_per_mparam,
            "calibration": self.calibration,
            "rounds": self.rounds,
            "measured": self.measured,
            "blocks": [{"config": json.loads(k), "ms": v} for k, v in self.blocks.items()],
        }
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(json.dumps(doc, indent=1) + "\n")
        tmp.replace(path)  # atomic: an interrupted build leaves the last good partial table
        self.path = path
        return path

    @classmethod
    def from_file(cls, path: str | Path) -> LatencyTable:
        doc = json.loads(Path(path).read_text())
        if doc.get("format") != FORMAT or "key" not in doc:
            raise ValueError(f"not an fpnas latency table (format {FORMAT})")
        return cls(
            key=doc["key"],
            blocks={json.dumps(b["config"], sort_keys=True): float(b["ms"]) for b in doc["blocks"]},
            stem_ms=doc["stem_ms"],
            head_ms={int(w): float(v) for w, v in doc["head_ms"].items()},
            overhead_ms=float(doc.get("overhead_ms", 0.0)),
            ms_per_mparam=float(doc.get("ms_per_mparam", 0.0)),
            calibration=doc.get("calibration", []),
            complete=bool(doc.get("complete")),
            path=Path(path),
            rounds=int(doc.get("rounds", 1)),
            measured={str(k): int(v) for k, v in (doc.get("measured") or {}).items()},
        )

    # ------------------------------------------------------------------ use
    def check_space(self, space: SearchSpace, what: str = "table") -> None:
        """Refuse a table measured for another space (or input size, channels, classes)."""
        want = space_key(space)
        diff = [f for f in SPACE_FIELDS if f != "spec_sha256" and self.key.get(f) != want[f]]
        if not diff and self.key.get("spec_sha256") != want["spec_sha256"]:
            diff = ["spec_sha256"]  # the same name and sizes, another space definition (its file changed)
        if diff:
            have = ", ".join(f"{f}={self.key.get(f)}" for f in diff)
            need = ", ".join(f"{f}={want[f]}" for f in diff)
            raise ConfigError(
                f"{what}={self.path} was measured for another space ({have}; this search: {need}); build one "
                f"for it: python -m fpnas.latency build space={space.name} space.input_size={space.input_size} "
                f"device={self.key.get('device')} batch={self.key.get('batch')} threads={self.key.get('threads')}"
            )
        if not self.complete:
            raise ConfigError(
                f"{what}={self.path} is incomplete (an interrupted build): run the same "
                "python -m fpnas.latency build command again to finish it"
            )

    def block_ms(self, cfg: BlockConfig) -> float:
        if cfg.identity:
            return 0.0  # the standalone network has no module there
        try:
            return self.blocks[_config_key(cfg)]
        except KeyError:
            raise ConfigError(f"latency table {self.path} has no entry for block {cfg}: rebuild it") from None

    def additive_table(self, space: SearchSpace, what: str = "table"):
        """The table as an :class:`~fpnas.space.complexity.AdditiveTable` of ``space`` (ms per batch);
        its blocks depend on every variable (relu and h-swish differ in time, not in MACs)."""

        self.check_space(space, what)
        stem, block, head = self._parts(space, self.ms_per_mparam / 1e6, self.overhead_ms)
        return additive_tables(
            space,
            1,
            lambda cfg: (block(cfg),),
            lambda width: (head(width),),
            lambda: (stem(),),
            all_variables=True,
        )[0]

    def part_ms(self, space: SearchSpace, choice_idx: Sequence[int], corrected: bool = True) -> list[float]:
        """Milliseconds of one architecture's stem, blocks and head (the rows of
        :func:`~fpnas.space.rows.block_rows`); ``corrected``: each with its parameters' share of the
        per-parameter correction, so that they and ``overhead_ms`` add up to :meth:`predict`."""
        stem, block, head = self._parts(space, self.ms_per_mparam / 1e6 if corrected else 0.0)
        return [stem(), *map(block, space.resolve(choice_idx)), head(space.last_width(choice_idx))]

    def predict(self, space: SearchSpace, choice_idx: Sequence[int], with_overhead: bool = True) -> float:
        """Predicted ms of one architecture: the sum of its entries (+ the correction terms)."""
        total = sum(self.part_ms(space, choice_idx, with_overhead))
        return total + self.overhead_ms if with_overhead else total

    def _parts(self, space: SearchSpace, per_param: float, overhead_ms: float = 0.0):
        """``(stem(), block(cfg), head(last_width))``: the ms of each part of ``space``'s networks, its entry
        plus ``per_param`` ms per parameter, the stem's plus ``overhead_ms`` (the additive table's constant
        holds it): the one formula of :meth:`part_ms` and :meth:`additive_table`."""
        return (
            lambda: self.stem_ms + overhead_ms + per_param * stem_complexity(space)[1],
            lambda cfg: self.block_ms(cfg) + per_param * cfg.kind.complexity(cfg)[1],
            lambda width: self.head_ms[int(width)] + per_param * head_complexity(space, int(width))[1],
        )

    def describe(self) -> str:
        k = self.key
        return (
            f"{k['space']} @ {k['input_size']}px, batch {k['batch']}, {k['dtype']}, {k['device_name']} "
            f"({k['device']}, {k['threads']} threads{', channels_last' if k.get('channels_last') else ''}), "
            f"torch {k['torch']}: {len(self.blocks)} blocks; correction {self.overhead_ms:.3g} ms + "
            f"{self.ms_per_mparam:.3g} ms per M params"
        )


def load_table(path, what: str = "table") -> LatencyTable:
    """A latency table file, with a one-line error when it is missing or not one."""
    if path is None or str(path) in ("", "???", "None"):
        raise ConfigError(
            f"{what} is required: build a table with python -m fpnas.latency build space=<space> "
            f"device=cpu batch=1 threads=1 and pass {what}=<file>"
        )
    if not Path(path).is_file():
        raise ConfigError(f"{what}={path}: no such file; build it with python -m fpnas.latency build space=<space>")
    try:
        return LatencyTable.from_file(path)
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{what}={path} is not an fpnas latency table: {exc}") from None
