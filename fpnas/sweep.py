"""Hydra callback: after a ``-m`` sweep, ``sweep_summary.csv`` and ``pareto.png`` in the sweep dir."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback

COLUMNS = ("target_mflops", "arch_mflops", "arch_params_m", "val_acc", "total_arch_samples", "wall_time_s", "run_dir")


def collect_summaries(sweep_dir: Path) -> list[dict[str, Any]]:
    rows = []
    for path in sorted(sweep_dir.glob("*/search_summary.json"), key=lambda p: (len(p.parent.name), p.parent.name)):
        summary = json.loads(path.read_text())
        rows.append({**{k: summary.get(k) for k in COLUMNS[:-1]}, "run_dir": str(path.parent)})
    return rows


def write_sweep_summary(sweep_dir: Path) -> list[dict[str, Any]]:
    """CSV of every job's result and an accuracy-vs-MFLOPs plot (the Pareto front marked)."""
    rows = collect_summaries(sweep_dir)
    if not rows:
        return rows
    with open(sweep_dir / "sweep_summary.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pts = sorted((r["arch_mflops"], r["val_acc"], r["target_mflops"]) for r in rows)
    front, best = [], -1.0
    for mflops, acc, _ in pts:
        if acc > best:
            front.append((mflops, acc))
            best = acc
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.scatter([p[0] for p in pts], [p[1] for p in pts], label="searched architectures")
    ax.plot([p[0] for p in front], [p[1] for p in front], "r--", label="Pareto front")
    for mflops, acc, target in pts:
        ax.annotate(f"target {target:g}", (mflops, acc), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.set_xlabel("MFLOPs (MACs)")
    ax.set_ylabel("val accuracy (α split)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(sweep_dir / "pareto.png", dpi=120)
    plt.close(fig)
    return rows


class SweepSummary(Callback):
    """Registered in ``conf/hydra/default.yaml``; runs once, in the process that ran the sweep."""

    def on_multirun_end(self, config, **kwargs: Any) -> None:
        write_sweep_summary(Path(config.hydra.sweep.dir))
