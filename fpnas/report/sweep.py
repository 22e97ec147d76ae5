"""Hydra callback: after a ``-m`` sweep, ``sweep_summary.csv`` and ``pareto.png`` (accuracy against the
first constrained metric) in the sweep dir."""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback

log = logging.getLogger("fpnas")

COLUMNS = ("target_mflops", "arch_mflops", "arch_params_m", "val_acc", "total_arch_samples", "wall_time_s", "run_dir")
# the columns of constraints on other metrics, when a job of the sweep has them
METRIC_COLUMNS = ("target_params_m", "target_latency_ms", "arch_latency_ms")
AXES = {  # metric -> (summary key of the found architecture's value, target key, axis label)
    "flops": ("arch_mflops", "target_mflops", "MFLOPs (MACs)"),
    "params": ("arch_params_m", "target_params_m", "M params"),
    "latency": ("arch_latency_ms", "target_latency_ms", "latency, ms (look-up table)"),
}


def collect_summaries(sweep_dir: Path) -> list[dict[str, Any]]:
    rows = []
    for path in sorted(sweep_dir.glob("*/search_summary.json"), key=lambda p: (len(p.parent.name), p.parent.name)):
        summary = json.loads(path.read_text())
        # a job that searched for several targets: a row per member, in its target_<i>/ folder
        for member in summary.get("members") or [summary]:
            row = {k: member.get(k) for k in COLUMNS[:-1] + METRIC_COLUMNS}
            row["constraints"] = list(member.get("constraints") or {"flops": None})
            run_dir = Path(member["arch_file"]).parent if "members" in summary else path.parent
            rows.append({**row, "run_dir": str(run_dir), "arch_file": member.get("arch_file")})
    return rows


def write_sweep_summary(sweep_dir: Path, metric: str | None = None) -> list[dict[str, Any]]:
    """CSV of every job's result and an accuracy-vs-cost plot (the Pareto front marked); the cost
    axis is ``metric`` (flops, params, latency), by default the first constraint of the first job."""
    rows = collect_summaries(sweep_dir)
    if not rows:
        return rows
    extra = [c for c in METRIC_COLUMNS if any(r[c] is not None for r in rows)]
    columns = [*COLUMNS[:-1], *extra, "run_dir", "arch_file"]  # arch_file: the exported architecture
    with open(sweep_dir / "sweep_summary.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    metric = metric or rows[0]["constraints"][0]
    import matplotlib.pyplot as plt

    fig = pareto_figure(rows, metric)
    fig.savefig(sweep_dir / "pareto.png", dpi=120)
    plt.close(fig)
    return rows


def pareto_figure(rows: list[dict[str, Any]], metric: str):
    """Accuracy against ``metric`` (flops, params, latency) of a sweep's runs, the Pareto front marked
    and each point labelled with its target (labels in the right half point left, inside the figure)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    value_key, target_key, label = AXES[metric]
    pts = sorted((r[value_key], r["val_acc"], r[target_key]) for r in rows if r[value_key] is not None)
    front, best = [], -1.0
    for cost, acc, _ in pts:
        if acc > best:
            front.append((cost, acc))
            best = acc
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.scatter([p[0] for p in pts], [p[1] for p in pts], label="searched architectures")
    ax.plot([p[0] for p in front], [p[1] for p in front], "r--", label="Pareto front")
    middle = (pts[0][0] + pts[-1][0]) / 2 if pts else 0.0
    for cost, acc, target in pts:
        if target is not None:
            right = cost > middle
            ax.annotate(
                f"target {target:g}",
                (cost, acc),
                fontsize=7,
                xytext=(-3 if right else 3, 3),
                textcoords="offset points",
                ha="right" if right else "left",
            )
    ax.set_xlabel(label)
    ax.set_ylabel("val accuracy (α split)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


class SweepSummary(Callback):
    """Registered in ``conf/hydra/default.yaml``; runs once, in the process that ran the sweep."""

    def on_multirun_end(self, config, **kwargs: Any) -> None:
        write_sweep_summary(Path(config.hydra.sweep.dir))
