"""Measured latency look-up tables: build one for a space on a device, load it for a search.

A table times every distinct block configuration of a space alone (the standalone module
``fpnas.space.builder.build_block`` makes), the stem and the head for every last width, with
``torch.utils.benchmark.Timer`` (warm-up, median over blocks of runs; it synchronises CUDA around
each block). A network's predicted latency is the sum of its entries plus one per-call overhead
term, fitted on a few calibration architectures measured end to end (what summing parts alone
misses: the network's own call and its data staying in caches between blocks). FBNet's
``mobile_cv/lut`` and Once-for-All's ``latency_table.py`` do the same; the table is keyed by what
the numbers depend on (space, input size, batch, device, dtype, torch version, threads).

Usage::

    python -m fpnas.latency build space=tiny device=cpu batch=1 threads=1 [out=<file>] [hydra overrides]
    python -m fpnas.latency measure <arch.yaml | run dir | reference> table=<file>
"""

from __future__ import annotations

import hashlib
import json
import logging
import platform
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from fpnas.errors import ConfigError
from fpnas.space.spec import BlockConfig, SearchSpace

log = logging.getLogger("fpnas")

FORMAT = 1
BUILD_OPTIONS = {  # key=value options of `build` (everything else is a search.yaml override)
    "device": "cpu",
    "batch": 1,
    "threads": 1,
    "dtype": "float32",
    "channels_last": False,
    "min_run_time": 0.02,  # seconds of timed runs per entry (after the warm-up)
    "calibration": 8,  # random architectures measured end to end for the overhead term
    "out": None,
}
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
    the per-call overhead (an additive metric: :meth:`additive_table`)."""

    key: dict[str, Any]
    blocks: dict[str, float] = field(default_factory=dict)  # BlockConfig as JSON -> ms
    stem_ms: float | None = None
    head_ms: dict[int, float] = field(default_factory=dict)  # last width -> ms
    overhead_ms: float = 0.0
    calibration: list[dict] = field(default_factory=list)  # {choices, measured_ms, sum_ms}
    complete: bool = False
    path: Path | None = None

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
            "calibration": self.calibration,
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
            calibration=doc.get("calibration", []),
            complete=bool(doc.get("complete")),
            path=Path(path),
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
        from fpnas.space.complexity import additive_tables

        self.check_space(space, what)
        return additive_tables(
            space,
            1,
            lambda cfg: (self.block_ms(cfg),),
            lambda width: (self.head_ms[int(width)],),
            lambda: (self.stem_ms + self.overhead_ms,),
            all_variables=True,
        )[0]

    def predict(self, space: SearchSpace, choice_idx: Sequence[int], with_overhead: bool = True) -> float:
        """Predicted ms of one architecture: the sum of its entries (+ the overhead term)."""
        total = self.stem_ms + self.head_ms[int(space.last_width(choice_idx))]
        total += sum(self.block_ms(cfg) for cfg in space.resolve(choice_idx))
        return total + (self.overhead_ms if with_overhead else 0.0)

    def describe(self) -> str:
        k = self.key
        return (
            f"{k['space']} @ {k['input_size']}px, batch {k['batch']}, {k['dtype']}, {k['device_name']} "
            f"({k['device']}, {k['threads']} threads{', channels_last' if k.get('channels_last') else ''}), "
            f"torch {k['torch']}: {len(self.blocks)} blocks, overhead {self.overhead_ms:.4g} ms"
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


# ---------------------------------------------------------------------- measuring
class Timing:
    """Times modules on one device with one batch size, dtype, thread count and memory format."""

    def __init__(
        self,
        device: str = "cpu",
        batch: int = 1,
        threads: int = 1,
        dtype: str = "float32",
        channels_last: bool = False,
        min_run_time: float = 0.02,
    ):
        if device not in ("cpu", "cuda") and not str(device).startswith("cuda:"):
            raise ConfigError(f"device={device!r} must be cpu or cuda[:N]")
        if str(device).startswith("cuda") and not torch.cuda.is_available():
            raise ConfigError(f"device={device}: CUDA is not available on this machine; use device=cpu")
        for name, value, lo in (("batch", batch, 1), ("threads", threads, 1)):
            if isinstance(value, bool) or not isinstance(value, int) or value < lo:
                raise ConfigError(f"{name}={value!r} must be an integer >= {lo}")
        if dtype not in DTYPES:
            raise ConfigError(f"dtype={dtype!r} must be one of {list(DTYPES)}")
        if dtype != "float32" and device == "cpu":
            raise ConfigError(f"dtype={dtype} is timed on cuda only; use dtype=float32 on the CPU")
        if not (isinstance(min_run_time, (int, float)) and min_run_time > 0):
            raise ConfigError(f"min_run_time={min_run_time!r} must be a number of seconds > 0")
        self.device, self.batch, self.threads = torch.device(device), batch, threads
        self.dtype, self.channels_last, self.min_run_time = DTYPES[dtype], bool(channels_last), float(min_run_time)
        self.dtype_name = dtype

    def key(self, space: SearchSpace) -> dict[str, Any]:
        return space_key(space) | {
            "batch": self.batch,
            "device": self.device.type,
            "device_name": device_name(self.device),
            "dtype": self.dtype_name,
            "torch": torch.__version__,
            "threads": self.threads,
            "channels_last": self.channels_last,
        }

    def input(self, channels: int, size: int) -> torch.Tensor:
        x = torch.randn(self.batch, channels, size, size, device=self.device, dtype=self.dtype)
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def prepare(self, module: torch.nn.Module) -> torch.nn.Module:
        module = module.to(self.device, self.dtype).eval()
        return module.to(memory_format=torch.channels_last) if self.channels_last else module

    def ms(self, module: torch.nn.Module, x: torch.Tensor) -> float:
        """Median milliseconds of ``module(x)`` (after a warm-up), at the configured thread count."""
        from torch.utils.benchmark import Timer

        module = self.prepare(module)
        previous = torch.get_num_threads()
        try:
            with torch.inference_mode():
                for _ in range(3):  # warm-up: allocator, kernel selection, caches
                    module(x)
                timer = Timer("m(x)", globals={"m": module, "x": x}, num_threads=self.threads)
                return timer.blocked_autorange(min_run_time=self.min_run_time).median * 1e3
        finally:
            torch.set_num_threads(previous)


def distinct_block_configs(space: SearchSpace) -> list[BlockConfig]:
    """Every block configuration some architecture of ``space`` has (identity skips left out)."""
    from fpnas.space.complexity import block_configs, block_decisions

    seen: dict[str, BlockConfig] = {}
    for slot in space.blocks:
        for _, cfg in block_configs(space, slot, block_decisions(space, slot, list(slot.choices))):
            if not cfg.identity:
                seen.setdefault(_config_key(cfg), cfg)
    return list(seen.values())


class _Stem(torch.nn.Module):
    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net.forward_stem(x)


class _Tail(torch.nn.Module):
    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net.forward_after_blocks(x)


def _with_last_width(space: SearchSpace, width: int) -> list[int]:
    """Choice indices of an architecture whose last width is ``width`` (the rest: choice 0)."""
    idx = [0] * space.num_decisions
    if space.last_channel_decision is not None:
        d = space.decision_index[space.last_channel_decision]
        idx[d] = list(space.decisions[d].choices).index(width)
    return idx


def measure_architecture(timing: Timing, space: SearchSpace, choice_idx: Sequence[int]) -> float:
    """Measured end-to-end ms of the standalone model of one architecture."""
    from fpnas.space.builder import build_model

    return timing.ms(build_model(space, choice_idx), timing.input(space.in_chans, space.input_size))


def random_architectures(space: SearchSpace, n: int, seed: int) -> list[list[int]]:
    g = torch.Generator().manual_seed(seed)
    return [[int(torch.randint(s, (1,), generator=g)) for s in space.sizes] for _ in range(n)]


def build_table(
    space: SearchSpace,
    timing: Timing,
    out: str | Path,
    calibration: int = 8,
    progress: bool = True,
    save_every_s: float = 30.0,
) -> LatencyTable:
    """Measure (or finish measuring: a partial table at ``out`` with the same key is continued) the
    table of ``space`` and write it to ``out``."""
    from fpnas.space.builder import build_block, build_model

    key = timing.key(space)
    table = LatencyTable(key)
    out = Path(out)
    if out.is_file():
        try:
            old = LatencyTable.from_file(out)
        except (ValueError, KeyError, TypeError):
            old = None
        if old is not None and old.key == key:
            table = old
            log.info("continuing %s (%d block entries measured)", out, len(old.blocks))
        else:
            log.info("%s exists for another key: measuring anew", out)
    configs = distinct_block_configs(space)
    todo = [c for c in configs if _config_key(c) not in table.blocks]
    last = space.last_channel_decision
    widths = space.decisions[space.decision_index[last]].choices if last is not None else space.last_channels
    widths = [int(w) for w in widths]
    total = len(todo) + (table.stem_ms is None) + sum(w not in table.head_ms for w in widths) + calibration
    bar = _progress(total, f"latency {space.name}@{space.input_size}px", progress)
    saved = time.monotonic()
    try:
        if table.stem_ms is None:
            net = build_model(space, _with_last_width(space, widths[0]))
            table.stem_ms = timing.ms(_Stem(net), timing.input(space.in_chans, space.input_size))
            bar.update(1)
        for w in widths:
            if w not in table.head_ms:
                net = build_model(space, _with_last_width(space, w))
                table.head_ms[w] = timing.ms(_Tail(net), timing.input(w, space.final_size))
                bar.update(1)
        for cfg in todo:
            table.blocks[_config_key(cfg)] = timing.ms(build_block(space, cfg), timing.input(cfg.in_chs, cfg.in_size))
            bar.update(1)
            if time.monotonic() - saved > save_every_s:
                table.save(out)
                saved = time.monotonic()
        # the overhead term: what end-to-end runs take beyond the sum of their parts
        table.calibration = []
        for idx in random_architectures(space, calibration, seed=12345):
            measured = measure_architecture(timing, space, idx)
            parts = table.predict(space, idx, with_overhead=False)
            table.calibration.append({"choices": space.choices_of(idx), "measured_ms": measured, "sum_ms": parts})
            bar.update(1)
        gaps = sorted(c["measured_ms"] - c["sum_ms"] for c in table.calibration)
        table.overhead_ms = gaps[len(gaps) // 2] if gaps else 0.0  # the median gap
        table.complete = True
    finally:
        bar.close()
        table.save(out)
    return table


def _progress(total: int, desc: str, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="entry", disable=not enabled, file=sys.stderr, ncols=80)


# ---------------------------------------------------------------------- command line
def _parse(argv: Sequence[str], options: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """``key=value`` options of this tool (typed like their defaults) and the remaining overrides."""
    opts, rest = dict(options), []
    for arg in argv:
        name, sep, value = arg.partition("=")
        if sep and name in options:
            default = options[name]
            try:
                if isinstance(default, bool):
                    if value.lower() not in ("true", "false"):
                        raise ValueError
                    opts[name] = value.lower() == "true"
                elif isinstance(default, int):
                    opts[name] = int(value)
                elif isinstance(default, float):
                    opts[name] = float(value)
                else:
                    opts[name] = value
            except ValueError:
                raise ConfigError(f"{arg}: {name} must be a {type(default).__name__}") from None
        else:
            rest.append(arg)
    return opts, rest


def space_from_overrides(overrides: Sequence[str]) -> SearchSpace:
    """The space a ``search.py`` run with ``overrides`` searches (fitted to its data's classes and channels)."""
    from hydra import compose, initialize_config_dir

    from fpnas.errors import instantiate_checked
    from fpnas.run_search import CONF_DIR, build_space

    with initialize_config_dir(version_base="1.3", config_dir=str(CONF_DIR)):
        cfg = compose("search", overrides=list(overrides))
    datamodule = instantiate_checked(cfg.data, "data")
    return build_space(cfg).with_num_classes(datamodule.num_classes, datamodule.in_chans)


def default_path(space: SearchSpace, timing: Timing) -> Path:
    tag = f"{timing.device.type}_b{timing.batch}_t{timing.threads}" + ("_cl" if timing.channels_last else "")
    return Path("latency_tables") / f"{space.name}_{space.input_size}px_{tag}.json"


def build_main(argv: Sequence[str]) -> int:
    opts, overrides = _parse(argv, BUILD_OPTIONS)
    space = space_from_overrides(overrides)
    timing = Timing(
        opts["device"], opts["batch"], opts["threads"], opts["dtype"], opts["channels_last"], opts["min_run_time"]
    )
    if opts["calibration"] < 1:
        raise ConfigError(f"calibration={opts['calibration']} must be >= 1 (architectures measured end to end)")
    out = Path(opts["out"]) if opts["out"] else default_path(space, timing)
    n = len(distinct_block_configs(space))
    print(f"[fpnas] timing {n} block configurations of {space.describe()} -> {out}", file=sys.stderr)
    started = time.time()
    table = build_table(space, timing, out, opts["calibration"])
    gaps = [c["measured_ms"] / (c["sum_ms"] + table.overhead_ms) - 1 for c in table.calibration]
    err = 100 * sum(abs(g) for g in gaps) / len(gaps)
    print(
        f"[fpnas] {table.describe()}\n[fpnas] calibration: {len(gaps)} architectures, mean |error| after the "
        f"overhead term {err:.1f}% ({time.time() - started:.0f} s) -> {out}\n"
        f"[fpnas] search with it: python search.py space={space.name} cost=latency cost.latency.table={out} "
        "cost.latency.target_ms=<ms>"
    )
    return 0


def measure_main(argv: Sequence[str]) -> int:
    from fpnas.reference import resolve_architecture

    opts, rest = _parse(argv, {"table": None, "min_run_time": 0.2, "repeats": 3})
    if len(rest) != 1:
        raise ConfigError("usage: python -m fpnas.latency measure <arch.yaml | run dir | reference> table=<file>")
    table = load_table(opts["table"], "table")
    target = Path(rest[0])
    if target.is_dir():  # a run directory: its arch.yaml
        from fpnas.run_dir import RunDir

        target = RunDir(target).arch
    arch, _ = resolve_architecture(target)
    space, idx = arch.space, arch.indices
    table.check_space(space)
    k = table.key
    timing = Timing(
        k["device"], k["batch"], k["threads"], k["dtype"], k.get("channels_last", False), opts["min_run_time"]
    )
    measured = sorted(measure_architecture(timing, space, idx) for _ in range(max(1, opts["repeats"])))
    median = measured[len(measured) // 2]
    predicted = table.predict(space, idx)
    print(
        f"{target}: measured {median:.4g} ms (median of {len(measured)}), table {predicted:.4g} ms "
        f"({100 * (predicted / median - 1):+.1f}%) on {device_name(timing.device)}, batch {k['batch']}, "
        f"{k['threads']} threads"
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    commands = {"build": build_main, "measure": measure_main}
    if not argv or argv[0] not in commands:
        print(__doc__.split("Usage::", 1)[1].rstrip(), file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="[fpnas] %(message)s")
    return commands[argv[0]](argv[1:])


if __name__ == "__main__":
    from fpnas.cli import run_reporting_user_errors

    sys.exit(run_reporting_user_errors(main))
