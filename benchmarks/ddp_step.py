"""DDP benchmark: per-step time of 1 vs 2 CPU processes at the same global batch, and the
gradient all-reduces per step (count and bytes). Writes benchmarks/results/ddp_step.json/.md.

    python benchmarks/ddp_step.py [--quick]

On 2 cores, DDP is for correctness, not speed (measured on this project's 2-core CI machines): expect little or no gain.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CLEAN = {
    k: v
    for k, v in os.environ.items()
    if k not in ("MASTER_ADDR", "MASTER_PORT", "LOCAL_RANK", "WORLD_SIZE", "NODE_RANK", "RANK", "PL_GLOBAL_SEED")
}


def run(processes: int, global_batch: int, epochs: int, extra: list[str]) -> dict:
    with tempfile.TemporaryDirectory() as out:
        args = [
            sys.executable,
            str(ROOT / "search.py"),
            f"hydra.run.dir={out}",
            f"trainer.max_epochs={epochs}",
            "+trainer.limit_val_batches=0",
            "search.warmup_epochs=0",
            "trainer.enable_progress_bar=false",
            f"data.batch_size={global_batch // processes}",
            *extra,
        ]
        if processes > 1:
            args += ["trainer=ddp_cpu", f"trainer.devices={processes}"]
        subprocess.run(args, check=True, env=CLEAN, cwd=out, capture_output=True)
        summary = json.loads((Path(out) / "search_summary.json").read_text())
    steps = summary["steps"]
    return {
        "processes": processes,
        "global_batch": global_batch,
        "steps": steps,
        "step_ms": 1000 * summary["fit_time_s"] / steps,
        "fit_time_s": summary["fit_time_s"],
        "grad_allreduces_per_step": summary["grad_allreduces"] / steps,
        "grad_allreduce_mb_per_step": summary["grad_allreduce_mb"] / steps,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one short repeat on the 8x8 digits")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    extra = ["data=digits", "space=micro", "cost.target_mflops=0.08"] if args.quick else []
    epochs, repeats = (1, 1) if args.quick else (2, args.repeats)
    rows = []
    for processes in (1, 2):
        runs = [run(processes, 64, epochs, extra) for _ in range(repeats)]
        row = dict(runs[0])
        row["step_ms"] = statistics.median(r["step_ms"] for r in runs)
        row["step_ms_all"] = [round(r["step_ms"], 1) for r in runs]
        rows.append(row)
    rows[1]["speedup_vs_1"] = rows[0]["step_ms"] / rows[1]["step_ms"]
    results = ROOT / "benchmarks" / "results"
    results.mkdir(parents=True, exist_ok=True)
    name = "ddp_step_quick" if args.quick else "ddp_step"
    (results / f"{name}.json").write_text(json.dumps(rows, indent=2) + "\n")
    lines = [
        "| processes | global batch | steps | step ms (median) | grad all-reduces / step | MB / step |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['processes']} | {r['global_batch']} | {r['steps']} | {r['step_ms']:.1f} | "
            f"{r['grad_allreduces_per_step']:.2f} | {r['grad_allreduce_mb_per_step']:.3f} |"
        )
    (results / f"{name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
