"""Latency look-up tables against measured end-to-end latency, as FBNet and Once-for-All report it.

For each space: build its table (``fpnas.latency``: every block configuration timed alone, the
stem, the head, and the per-call overhead term fitted on 8 calibration architectures), then
measure N random architectures (another seed) end to end with the same device, batch and threads,
and compare: Pearson r and the mean absolute percentage error, with the overhead term (what a
search uses) and without it (the plain sum of the parts). Targets: r >= 0.95, MAPE <= 10%.

Resumable: the tables and the per-architecture measurements are kept in benchmarks/.work/latency/
(delete them to measure anew). Needs an idle machine: other processes' load is timed too.

    python benchmarks/latency_lut.py [--quick] [--devices auto|cpu|cuda] [--n-archs 50]
"""

from __future__ import annotations

import argparse
import json
import math
import time

from common import ROOT, devices, markdown_table, write_report

WORK = ROOT / "benchmarks" / ".work" / "latency"
CASES = {
    "full": [("tiny", ["space=tiny"]), ("fbnetv2_f", ["space=fbnetv2_f", "space.input_size=128"])],
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


def run_case(name, overrides, device, n_archs, quick, min_run_time):
    import torch

    from fpnas.latency import Timing, build_table, measure_architecture, random_architectures, space_from_overrides
    from fpnas.space.complexity import ComplexityTables

    space = space_from_overrides(overrides)
    timing = Timing(device, batch=1, threads=1, min_run_time=min_run_time)
    tag = f"{name}_{space.input_size}px_{device}{'_quick' if quick else ''}"
    table_path, meas_path = WORK / f"{tag}.json", WORK / f"{tag}_archs.jsonl"
    started = time.time()
    table = build_table(space, timing, table_path, calibration=3 if quick else 8)
    build_s = time.time() - started
    done = {}
    if meas_path.is_file():
        for line in meas_path.read_text().splitlines():
            row = json.loads(line)
            done[tuple(row["indices"])] = row
    archs = random_architectures(space, n_archs, seed=2024)  # not the calibration seed
    with open(meas_path, "a") as f:
        for idx in archs:
            if tuple(idx) in done:
                continue
            row = {"indices": idx, "measured_ms": measure_architecture(timing, space, idx)}
            done[tuple(idx)] = row
            f.write(json.dumps(row) + "\n")
            f.flush()
    measured = [done[tuple(i)]["measured_ms"] for i in archs]
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
    parser.add_argument("--n-archs", type=int, default=None, help="random architectures per space (default 50)")
    parser.add_argument("--min-run-time", type=float, default=None, help="seconds of timed runs per entry")
    args = parser.parse_args()
    n = args.n_archs or (8 if args.quick else 50)
    min_run_time = args.min_run_time or (0.005 if args.quick else 0.02)
    WORK.mkdir(parents=True, exist_ok=True)
    rows = [
        run_case(name, overrides, device, n, args.quick, min_run_time)
        for device in devices(args.devices)
        for name, overrides in CASES["quick" if args.quick else "full"]
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
            ("mape_pct_sum_only", "MAPE % (sum of parts, no overhead term)"),
            ("overhead_ms", "overhead term ms"),
            ("pearson_r_mflops", "r of MFLOPs vs latency"),
            ("measured_ms_median", "median ms"),
            ("block_entries", "block entries"),
        ],
    )
    md += (
        "\n\nbatch 1, 1 thread, float32; predicted = the table's stem + blocks + head (+ overhead term, fitted "
        "on 8 other architectures); measured = the standalone model end to end, same device. Targets: r >= 0.95, "
        "MAPE <= 10%.\n"
    )
    write_report("latency_lut", args.quick, {"rows": rows}, md)


if __name__ == "__main__":
    main()
