"""A latency-constrained search end to end, and a FLOPs-constrained one at a comparable budget.

1. The latency table of ``tiny`` (benchmarks/latency_lut.py builds and keeps it; built here if missing).
2. ``search.py cost=latency cost.latency.target_ms=T`` on mnist5k (the default search otherwise);
   the exported architecture's latency *measured* end to end (median of 5), against T.
3. ``search.py cost.target_mflops=F`` with F = the MFLOPs of the architecture found in 2: the same
   FLOPs budget, so the two searches differ only in what they count. Both architectures are
   printed per block with their milliseconds (``fpnas.tools.show --latency-table``).

    python benchmarks/latency_search.py [--target-ms 2.2] [--quick]
"""

from __future__ import annotations

import argparse
import json
import shutil

from common import ROOT, markdown_table, run_python, write_report

WORK = ROOT / "benchmarks" / ".work" / "latency"


def search(run_dir, overrides: list[str]) -> dict:
    if (run_dir / "search_summary.json").is_file():  # resumable: a finished search is kept
        return json.loads((run_dir / "search_summary.json").read_text())
    shutil.rmtree(run_dir, ignore_errors=True)
    run_python(["search.py", f"hydra.run.dir={run_dir}", "trainer.enable_progress_bar=false", *overrides])
    return json.loads((run_dir / "search_summary.json").read_text())


def measured_ms(arch_path, table) -> float:
    from fpnas.space.arch import load_architecture
    from fpnas.tools.latency import measure_architectures, timing_of

    arch = load_architecture(arch_path)
    return measure_architectures(timing_of(table), arch.space, [arch.indices], rounds=5)[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target-ms", type=float, default=2.2, help="the latency budget (ms, batch 1, 1 thread)")
    parser.add_argument("--quick", action="store_true", help="micro space on the digits, 2 epochs (smoke test)")
    args = parser.parse_args()
    from fpnas.cost.latency import load_table
    from fpnas.tools.latency import Timing, build_table, space_from_overrides

    space_args = ["data=digits", "space=micro"] if args.quick else ["space=tiny"]
    short = ["trainer.max_epochs=2", "search.warmup_epochs=0", "distribution.switch_epoch=1"] if args.quick else []
    tag = "micro_8px_cpu_quick" if args.quick else "tiny_28px_cpu"
    table_path = WORK / f"{tag}.json"
    space = space_from_overrides(space_args)
    if not table_path.is_file() or not load_table(table_path).complete:
        build_table(space, Timing("cpu", 1, 1, min_run_time=0.002 if args.quick else 0.01), table_path)
    table = load_table(table_path)
    runs = WORK / ("search_quick" if args.quick else "search")
    lat = search(
        runs / f"latency_{args.target_ms:g}",
        [
            *space_args,
            *short,
            "cost=latency",
            f"cost.latency.table={table_path}",
            f"cost.latency.target_ms={args.target_ms}",
        ],
    )
    flops_target = round(lat["arch_mflops"], 4)
    flo = search(runs / f"flops_{flops_target:g}", [*space_args, *short, f"cost.target_mflops={flops_target}"])
    rows = []
    for name, summary in (("cost=latency", lat), ("cost=flops", flo)):
        from fpnas.space.arch import load_architecture

        arch = load_architecture(summary["arch_file"])
        rows.append(
            {
                "search": name,
                "target": f"{args.target_ms:g} ms" if name == "cost=latency" else f"{flops_target:g} MFLOPs",
                "arch_mflops": summary["arch_mflops"],
                "predicted_ms": table.predict(arch.space, arch.indices),
                "measured_ms": measured_ms(summary["arch_file"], table),
                "val_acc": summary["val_acc"],
                "wall_time_s": summary["wall_time_s"],
                "choices": arch.choices,
                "run_dir": str(summary["arch_file"]).rsplit("/", 1)[0],
            }
        )
    differ = sorted(k for k in rows[0]["choices"] if rows[0]["choices"][k] != rows[1]["choices"][k])
    shows = {
        r["search"]: run_python(["-m", "fpnas.show", r["run_dir"], "--latency-table", str(table_path)]) for r in rows
    }
    md = markdown_table(
        rows,
        [
            ("search", "search"),
            ("target", "target"),
            ("arch_mflops", "MFLOPs"),
            ("predicted_ms", "table ms"),
            ("measured_ms", "measured ms"),
            ("val_acc", "val acc"),
            ("wall_time_s", "search s"),
        ],
    )
    md += f"\n\nDecisions that differ ({len(differ)}): {', '.join(differ) or 'none'}.\n"
    for name, text in shows.items():
        md += f"\n`{name}`:\n\n```\n{text.rstrip()}\n```\n"
    write_report(
        "latency_search",
        args.quick,
        {"rows": rows, "differing_decisions": differ, "table": table.describe(), "target_ms": args.target_ms},
        md,
    )


if __name__ == "__main__":
    main()
