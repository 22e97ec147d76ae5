"""Build and check latency look-up tables (the table itself is :mod:`fpnas.cost.latency`).

A table times every distinct block configuration of a space alone (the standalone module
``fpnas.space.builder.build_block`` makes), the stem and the head for every last width: the
minimum over calls after a warm-up (CUDA: events around each call, :meth:`Timing.ms`) and over
several passes over all entries (:func:`build_table`), then fits the correction terms on a few
architectures measured end to end (:func:`calibrate`).

Usage::

    python -m fpnas.latency build space=tiny device=cpu batch=1 threads=1 [out=<file>] [hydra overrides]
    python -m fpnas.latency measure <arch.yaml | run dir | reference> table=<file>"""

from __future__ import annotations

import logging
import math
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from fpnas.cost.latency import DTYPES, LatencyTable, _config_key, device_name, load_table, space_key
from fpnas.errors import ConfigError
from fpnas.runtime.cli import compose_checked, run_reporting_user_errors
from fpnas.runtime.config import CONF_DIR, instantiate_checked
from fpnas.search.run import build_space
from fpnas.space.arch import load_architecture
from fpnas.space.builder import build_block, build_model
from fpnas.space.complexity import architecture_complexity, block_configs, block_decisions
from fpnas.space.reference import architecture_file
from fpnas.space.spec import BlockConfig, SearchSpace

log = logging.getLogger("fpnas")

BUILD_OPTIONS = {  # key=value options of `build` (everything else is a search.yaml override)
    "device": "cpu",
    "batch": 1,
    "threads": 1,
    "dtype": "float32",
    "channels_last": False,
    "min_run_time": 0.005,  # seconds of timed calls per entry and pass (after a warm-up; 10 calls at least)
    "calibration": 12,  # random architectures measured end to end for the correction terms
    "rounds": 5,  # passes over every entry, seconds apart (each keeps its minimum: bursts of load meet one)
    "out": None,
}


def timing_of(table: LatencyTable, min_run_time: float = 0.005) -> Timing:
    """A :class:`Timing` with the device, batch, dtype, threads and memory format of ``table``."""
    k = table.key
    return Timing(k["device"], k["batch"], k["threads"], k["dtype"], k.get("channels_last", False), min_run_time)


# ---------------------------------------------------------------------- measuring
class Timing:
    """Times modules on one device with one batch size, dtype, thread count and memory format."""

    WARMUP, MIN_CALLS, MAX_CALLS = 3, 10, 2000

    def __init__(
        self,
        device: str = "cpu",
        batch: int = 1,
        threads: int = 1,
        dtype: str = "float32",
        channels_last: bool = False,
        min_run_time: float = 0.005,
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
            "statistic": "minimum over calls",
        }

    def input(self, channels: int, size: int) -> torch.Tensor:
        x = torch.randn(self.batch, channels, size, size, device=self.device, dtype=self.dtype)
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def prepare(self, module: torch.nn.Module) -> torch.nn.Module:
        module = module.to(self.device, self.dtype).eval()
        return module.to(memory_format=torch.channels_last) if self.channels_last else module

    def ms(self, module: torch.nn.Module, x: torch.Tensor, min_run_time: float | None = None) -> float:
        """Milliseconds of one ``module(x)`` call: the minimum over the calls of ``min_run_time``
        seconds (default: the configured one; 10 calls at least) after a warm-up, at the configured
        thread count (CUDA: between two events around each call).

        Why not ``torch.utils.benchmark.Timer``: it reports the median of blocks of many calls, and
        on a shared machine the mean of a block moves with other processes' load (the median of one
        network's calls varied by 13% between repeats here, its minimum by 0.4%). The minimum is
        what the code costs on this device; Python's ``timeit`` recommends it for the same reason.
        """
        module = self.prepare(module)
        previous = torch.get_num_threads()
        torch.set_num_threads(self.threads)
        try:
            with torch.inference_mode():
                for _ in range(self.WARMUP):  # allocator, kernel selection, caches
                    module(x)
                best = first = self._call(module, x)
                run_time = self.min_run_time if min_run_time is None else min_run_time
                calls = min(self.MAX_CALLS, max(self.MIN_CALLS, math.ceil(run_time / max(first, 1e-7))))
                for _ in range(calls - 1):
                    best = min(best, self._call(module, x))
            return best * 1e3
        finally:
            torch.set_num_threads(previous)

    def _call(self, module: torch.nn.Module, x: torch.Tensor) -> float:
        """Seconds of one call, the device's work included."""
        if self.device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            module(x)
            end.record()
            end.synchronize()
            return start.elapsed_time(end) / 1e3
        t0 = time.perf_counter()
        module(x)
        return time.perf_counter() - t0


def distinct_block_configs(space: SearchSpace) -> list[BlockConfig]:
    """Every block configuration some architecture of ``space`` has (identity skips left out)."""

    seen: dict[str, BlockConfig] = {}
    for slot in space.blocks:
        for _, cfg in block_configs(space, slot, block_decisions(space, slot, list(slot.choices))):
            if not cfg.identity:
                seen.setdefault(_config_key(cfg), cfg)
    return list(seen.values())


class _Part(torch.nn.Module):
    """One part of a standalone network timed alone: ``net.<method>(x)`` (its stem, or everything
    after the blocks)."""

    def __init__(self, net, method: str):
        super().__init__()
        self.net, self.method = net, method

    def forward(self, x):
        return getattr(self.net, self.method)(x)


def _with_last_width(space: SearchSpace, width: int) -> list[int]:
    """Choice indices of an architecture whose last width is ``width`` (the rest: choice 0)."""
    idx = [0] * space.num_decisions
    if space.last_channel_decision is not None:
        d = space.decision_index[space.last_channel_decision]
        idx[d] = list(space.decisions[d].choices).index(width)
    return idx


END_TO_END_RUN_TIME = 0.1  # seconds of calls per network and round, measured end to end


ROUNDS = 5  # passes over the networks measured end to end (a burst of load meets one, not all)


PASS_SPACING_S = 3.0  # the least time from one pass's start to the next one's


def measure_architectures(
    timing: Timing,
    space: SearchSpace,
    archs: Sequence[Sequence[int]],
    rounds: int = ROUNDS,
    min_run_time: float = END_TO_END_RUN_TIME,
    spacing_s: float | None = None,
) -> list[float]:
    """Measured end-to-end ms of the standalone models of architectures: ``rounds`` passes over all
    of them, each the minimum over the calls of ``min_run_time`` seconds; per architecture the
    minimum of its passes. Passes start at least ``spacing_s`` (default :data:`PASS_SPACING_S`)
    apart, waiting if need be: on a shared machine a burst of other load lasts seconds, and should
    meet one pass, not all."""

    spacing_s = PASS_SPACING_S if spacing_s is None else spacing_s
    models = [build_model(space, idx) for idx in archs]
    x = timing.input(space.in_chans, space.input_size)
    best = [math.inf] * len(models)
    for r in range(rounds):
        started = time.monotonic()
        for i, model in enumerate(models):
            best[i] = min(best[i], timing.ms(model, x, max(timing.min_run_time, min_run_time)))
        if r < rounds - 1:
            time.sleep(max(0.0, spacing_s - (time.monotonic() - started)))
    return best


def random_architectures(space: SearchSpace, n: int, seed: int) -> list[list[int]]:
    g = torch.Generator().manual_seed(seed)
    return [[int(torch.randint(s, (1,), generator=g)) for s in space.sizes] for _ in range(n)]


def calibrate(table: LatencyTable, space: SearchSpace, timing: Timing, n: int) -> None:
    """Fit ``table``'s correction terms on ``n`` random architectures measured end to end: what they take
    beyond the sum of their entries, as ``overhead_ms + ms_per_mparam * M params``.

    Timed alone, a block's weights stay in the cache from one call to the next; in a network they
    are evicted by the other blocks', so the gap grows with the parameters (measured on fbnetv2_f:
    correlation 0.60 with them, 0.09 with the number of blocks). Theil-Sen (the median of pairwise
    slopes): a calibration network met by a burst of load does not tilt the line. A negative slope
    (noise on a small space) is dropped: then the median gap alone.
    """
    from scipy.stats import theilslopes

    archs = random_architectures(space, n, seed=12345)
    table.calibration = [
        {
            "choices": space.choices_of(idx),
            "measured_ms": ms,
            "sum_ms": table.predict(space, idx, False),
            "mparams": architecture_complexity(space, idx)[1] / 1e6,
        }
        for idx, ms in zip(archs, measure_architectures(timing, space, archs))
    ]
    gaps = [c["measured_ms"] - c["sum_ms"] for c in table.calibration]
    mparams = [c["mparams"] for c in table.calibration]
    slope = float(theilslopes(gaps, mparams).slope) if n >= 3 and len(set(mparams)) > 1 else 0.0
    table.ms_per_mparam = max(0.0, slope)
    residual = sorted(g - table.ms_per_mparam * p for g, p in zip(gaps, mparams))
    table.overhead_ms = residual[len(residual) // 2]


def build_table(
    space: SearchSpace,
    timing: Timing,
    out: str | Path,
    calibration: int = 12,
    rounds: int = 5,
    progress: bool = True,
    save_every_s: float = 30.0,
) -> LatencyTable:
    """Measure (or finish measuring: a partial table at ``out`` with the same key is continued) the
    table of ``space`` and write it to ``out``.

    Every entry is measured in ``rounds`` passes over all of them, keeping its minimum: another
    process's burst of load then inflates an entry only if it meets it in every pass.
    """

    key = timing.key(space)
    table = LatencyTable(key)
    out = Path(out)
    if out.is_file():
        try:
            old = LatencyTable.from_file(out)
        except (ValueError, KeyError, TypeError):
            old = None
        if old is not None and old.key == key and old.rounds == rounds:
            table = old
            log.info("continuing %s (%d block entries measured)", out, sum(old.measured.values()))
        else:
            log.info("%s exists for another key: measuring anew", out)
    table.rounds = rounds
    last = space.last_channel_decision
    widths = space.decisions[space.decision_index[last]].choices if last is not None else space.last_channels
    # every entry: (key, a function that builds its module and input)
    entries = [
        (
            "stem",
            lambda: (
                _Part(build_model(space, _with_last_width(space, widths[0])), "forward_stem"),
                space.in_chans,
                space.input_size,
            ),
        )
    ]
    entries += [
        (
            f"head/{w}",
            lambda w=w: (
                _Part(build_model(space, _with_last_width(space, w)), "forward_after_blocks"),
                w,
                space.final_size,
            ),
        )
        for w in map(int, widths)
    ]
    entries += [
        (_config_key(cfg), lambda cfg=cfg: (build_block(space, cfg), cfg.in_chs, cfg.in_size))
        for cfg in distinct_block_configs(space)
    ]
    todo = sum(max(0, rounds - table.measured.get(k, 0)) for k, _ in entries)
    bar = _progress(
        todo + (0 if table.complete else calibration), f"latency {space.name}@{space.input_size}px", progress
    )
    saved = time.monotonic()
    try:
        for r in range(rounds):
            for name, make in entries:
                if table.measured.get(name, 0) > r:
                    continue
                module, chans, size = make()
                table.record(name, timing.ms(module, timing.input(chans, size)))
                bar.update(1)
                if time.monotonic() - saved > save_every_s:
                    table.save(out)
                    saved = time.monotonic()
        if not table.complete:  # the correction terms: what networks take beyond the sum of their entries
            calibrate(table, space, timing, calibration)
            bar.update(calibration)
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

    cfg = compose_checked(CONF_DIR, "search", list(overrides))
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
    if opts["rounds"] < 1:
        raise ConfigError(f"rounds={opts['rounds']} must be >= 1 (passes over every entry)")
    table = build_table(space, timing, out, opts["calibration"], opts["rounds"])
    errors = [c["measured_ms"] / table.predict(space, space.indices_of(c["choices"])) - 1 for c in table.calibration]
    err = 100 * sum(abs(e) for e in errors) / len(errors)
    print(
        f"[fpnas] {table.describe()}\n[fpnas] calibration: {len(errors)} architectures, mean |error| with the "
        f"correction terms {err:.1f}% ({time.time() - started:.0f} s) -> {out}\n"
        f"[fpnas] search with it: python search.py space={space.name} cost=latency cost.latency.table={out} "
        "cost.latency.target_ms=<ms>"
    )
    return 0


def measure_main(argv: Sequence[str]) -> int:

    opts, rest = _parse(argv, {"table": None, "min_run_time": END_TO_END_RUN_TIME, "rounds": 5})
    if len(rest) != 1:
        raise ConfigError("usage: python -m fpnas.latency measure <arch.yaml | run dir | reference> table=<file>")
    table = load_table(opts["table"], "table")
    path, registered = architecture_file(rest[0])
    target = rest[0] if registered else path
    arch = load_architecture(path)
    space, idx = arch.space, arch.indices
    table.check_space(space)
    timing = timing_of(table)
    (measured,) = measure_architectures(timing, space, [idx], opts["rounds"], opts["min_run_time"])
    predicted = table.predict(space, idx)
    print(
        f"{target}: measured {measured:.4g} ms (the minimum of {opts['rounds']} rounds of calls), table "
        f"{predicted:.4g} ms ({100 * (predicted / measured - 1):+.1f}%) on {device_name(timing.device)}, batch "
        f"{table.key['batch']}, {table.key['threads']} threads"
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


def run() -> None:
    """The ``fpnas-latency`` command (``python -m fpnas.latency``)."""

    sys.exit(run_reporting_user_errors(main))


if __name__ == "__main__":
    run()
