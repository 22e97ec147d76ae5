"""Run every benchmark one after the other and report the total time.

    python benchmarks/run_all.py [--quick] [--only NAME ...] [--all]

Each script writes benchmarks/results/<name>.json/.md (``<name>_quick.*`` with ``--quick``);
this one adds ``run_all.json`` with each script's wall time. Run on an otherwise idle machine:
the timings are ratios of runs made side by side, but a busy machine still adds noise.
"""

from __future__ import annotations

import argparse
import json
import time

from common import RESULTS, ROOT, machine, run_python

SCRIPTS = ["space_stats", "step_overhead", "memory", "throughput", "fpnas_vs_parsec"]
EXTRA = ["ddp_step"]  # the DDP benchmark (about 2 min): --only ddp_step, or --all


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke-test sizes")
    parser.add_argument("--only", nargs="+", choices=SCRIPTS + EXTRA, default=SCRIPTS)
    parser.add_argument("--all", action="store_true", help="also the DDP benchmark")
    args = parser.parse_args()
    if args.all:
        args.only = SCRIPTS + EXTRA
    times = {}
    start = time.perf_counter()
    for name in args.only:
        t0 = time.perf_counter()
        print(f"== {name}", flush=True)
        print(run_python([str(ROOT / "benchmarks" / f"{name}.py"), *(["--quick"] if args.quick else [])]), flush=True)
        times[name] = round(time.perf_counter() - t0, 1)
    total = round(time.perf_counter() - start, 1)
    report = {
        "quick": args.quick,
        "seconds": times,
        "total_seconds": total,
        "machine": machine(),
        "date": time.strftime("%Y-%m-%d %H:%M"),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / ("run_all_quick.json" if args.quick else "run_all.json")).write_text(json.dumps(report, indent=2) + "\n")
    print(f"total {total:.0f} s: " + ", ".join(f"{k} {v:.0f} s" for k, v in times.items()))


if __name__ == "__main__":
    main()
