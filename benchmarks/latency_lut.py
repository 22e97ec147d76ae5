"""Latency look-up tables against measured end-to-end latency, as FBNet and Once-for-All report it.

For each space: build its table (``fpnas.cost.latency``: every block configuration timed alone, the
stem, the head, and the per-call overhead term fitted on 8 calibration architectures), then
measure N random architectures (another seed) end to end with the same device, batch and threads,
and compare: Pearson r and the mean absolute percentage error, with the overhead term (what a
search uses) and without it (the plain sum of the parts). Targets: r >= 0.95, MAPE <= 10%.

Resumable: the tables and the per-architecture measurements are kept in benchmarks/.work/latency/
(delete them to measure anew). Needs an idle machine: other processes' load is timed too.

    python benchmarks/latency_lut.py [--quick] [--devices auto|cpu|cuda] [--cases full|tiny|quick] [--n-archs 50]
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time

from common import ROOT, devices, markdown_table, write_report

WORK = ROOT / "benchmarks" / ".work" / "latency"
PASSES = 5  # passes over the measured architectures
CASES = {
    "full": [("tiny", ["space=tiny"]), ("fbnetv2_f", ["space=fbnetv2_f", "space.input_size=128"])],
    "tiny": [("tiny", ["space=tiny"])],  # gpu_check.sh: a minute
    "quick": [("micro", ["data=digits", "space=micro"])],
}


def pearson(xs: list[float], ys: list[float]) -> float:
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys))
    sxx, syy = sum((x - mx) ** 2 for x in xs), sum((y - my) ** 2 for y in ys)
    return sxy / math.sqrt(sxx * syy) if sxx > 0 and syy > 0 else float("nan")


def mape(predicted: list[float], measured: list[float]) -> float:
    return 100 * sum(abs(p - m) / m for p, m in zip(predicted, measured)) / len(measured)


def run_case(name, overrides, device, n_archs, quick, min_run_time, rounds):
    import torch

    from fpnas.space.complexity import ComplexityTables
    from fpnas.tools.latency import (
        Timing,
        build_table,
        measure_architectures,
        random_architectures,
        space_from_overrides,
    )

    space = space_from_overrides(overrides)
    timing = Timing(device, batch=1, threads=1, min_run_time=min_run_time)
    tag = f"{name}_{space.input_size}px_{device}{'_quick' if quick else ''}"
    table_path, meas_path = WORK / f"{tag}.json", WORK / f"{tag}_archs.jsonl"
    started = time.time()
    table = build_table(space, timing, table_path, calibration=3 if quick else 12, rounds=rounds)
    build_s = time.time() - started
    archs = random_architectures(space, n_archs, seed=2024)  # not the calibration seed
    # passes over all the architectures (resumable: one line per architecture and pass); an
    # architecture's latency is its minimum over the passes, which lie seconds apart (a burst of
    # another process's load lasts seconds: it meets one pass, not all)
    done: dict[tuple, dict[int, float]] = {}
    if meas_path.is_file():
        for line in meas_path.read_text().splitlines():
            row = json.loads(line)
            if {"indices", "pass", "ms"} <= set(row):  # lines of an older format are measured again
                done.setdefault(tuple(row["indices"]), {})[row["pass"]] = row["ms"]
    with open(meas_path, "a") as f:
        for p in range(PASSES):
            todo = [idx for idx in archs if p not in done.get(tuple(idx), {})]
            for idx in todo:
                (ms,) = measure_architectures(timing, space, [idx], rounds=1, spacing_s=0)
                done.setdefault(tuple(idx), {})[p] = ms
                f.write(json.dumps({"indices": idx, "pass": p, "ms": ms}) + "\n")
            f.flush()
    measured = [min(done[tuple(i)][p] for p in range(PASSES)) for i in archs]
    predicted = [table.predict(space, i) for i in archs]
    summed = [table.predict(space, i, with_overhead=False) for i in archs]
    macs = ComplexityTables(space).macs.lookup(torch.tensor(archs)).tolist()
    return {
        "space": name,
        "input_size": space.input_size,
        "device": device,
        "device_name": table.key["device_name"],
        "batch": 1,
        "threads": 1,
        "n_archs": len(archs),
        "block_entries": len(table.blocks),
        "pearson_r": pearson(predicted, measured),
        "mape_pct": mape(predicted, measured),
        "mape_pct_sum_only": mape(summed, measured),
        "overhead_ms": table.overhead_ms,
        "ms_per_mparam": table.ms_per_mparam,
        "pass_spread_pct": 100
        * statistics.median(sorted(v.values())[1] / min(v.values()) - 1 for v in (done[tuple(i)] for i in archs)),
        "pearson_r_mflops": pearson(macs, measured),
        "measured_ms_min": min(measured),
        "measured_ms_median": sorted(measured)[len(measured) // 2],
        "measured_ms_max": max(measured),
        "table_build_s": round(build_s, 1),
        "table": str(table_path.relative_to(ROOT)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="micro space, 8 architectures (smoke test)")
    parser.add_argument("--devices", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument("--cases", choices=sorted(CASES), help="spaces (default: quick with --quick, else full)")
    parser.add_argument("--suffix", default="", help="appended to the report's name, e.g. _cuda")
    parser.add_argument("--n-archs", type=int, default=None, help="random architectures per space (default 50)")
    parser.add_argument("--min-run-time", type=float, default=None, help="seconds of timed calls per entry and pass")
    parser.add_argument("--rounds", type=int, default=None, help="passes over every table entry (default 5)")
    args = parser.parse_args()
    n = args.n_archs or (8 if args.quick else 50)
    min_run_time = args.min_run_time or (0.002 if args.quick else 0.005)
    rounds = args.rounds or (2 if args.quick else 5)
    WORK.mkdir(parents=True, exist_ok=True)
    rows = [
        run_case(name, overrides, device, n, args.quick, min_run_time, rounds)
        for device in devices(args.devices)
        for name, overrides in CASES[args.cases or ("quick" if args.quick else "full")]
    ]
    md = markdown_table(
        rows,
        [
            ("space", "space"),
            ("input_size", "px"),
            ("device", "device"),
            ("n_archs", "archs"),
            ("pearson_r", "Pearson r"),
            ("mape_pct", "MAPE %"),
            ("mape_pct_sum_only", "MAPE % (sum of entries alone)"),
            ("overhead_ms", "correction ms"),
            ("ms_per_mparam", "+ ms per M params"),
            ("pass_spread_pct", "noise % (2nd best pass / best)"),
            ("pearson_r_mflops", "r of MFLOPs vs latency"),
            ("measured_ms_median", "median ms"),
            ("block_entries", "block entries"),
        ],
    )
    md += (
        "\n\nbatch 1, 1 thread, float32. Predicted: the table's stem + blocks + head + the correction terms "
        f"(per network, per M params; fitted on {3 if args.quick else 12} other architectures measured end to end). "
        "Measured: the "
        f"standalone model end to end on the same device, the minimum over {PASSES} passes over all the "
        "architectures (noise: the median gap between an architecture's best and second-best pass). "
        "Targets: r >= 0.95, MAPE <= 10%.\n"
    )
    write_report("latency_lut", args.quick, {"rows": rows}, md, suffix=args.suffix)


if __name__ == "__main__":
    main()
