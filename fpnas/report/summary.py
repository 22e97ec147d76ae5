"""End-of-run summary tables (rich) for ``search.py`` and ``train.py``.

Printed to stdout, where Hydra's console log goes too, by the process of rank zero only (the
callers print inside their ``trainer.is_global_zero`` branch). ``search_summary.json`` /
``train_summary.json`` keep the same numbers for programs; :func:`search_summary` assembles them.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from fpnas.report.sweep import pareto_figure
from fpnas.report.tables import FitToWidth, architecture_table, wide_console
from fpnas.runtime.checkpoint import LastCheckpoint
from fpnas.runtime.distributed import AllReduceStats
from fpnas.runtime.exact_resume import ExactResume
from fpnas.runtime.run_dir import RunDir


def _num(value, fmt: str = ".4g") -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and math.isnan(value):
        return "n/a"
    return format(value, fmt)


def _key_values(title: str, rows: Iterable[tuple[str, str]]):
    from rich.table import Table

    table = Table(title=title, show_header=False, title_justify="left", box=None, padding=(0, 2))
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")  # a long value (a path) wraps; it is never cut short with "…"
    for key, value in rows:
        table.add_row(key, value)
    return table


def _outputs(output_dir: Path, kind: str):
    """The run's output files that exist, each with its full path; in a narrow terminal the run
    directory in full and the files by their names in it (full paths would wrap mid-name)."""
    run = RunDir(output_dir)
    names = [str(p.relative_to(run.root)) for p in run.outputs(kind) if p.exists()]
    wide = _key_values("outputs", [("run directory", str(output_dir))] + [(n, str(run.root / n)) for n in names])
    narrow = _key_values("outputs", [("run directory", str(output_dir)), ("files", "  ".join(names))])
    return FitToWidth(wide, narrow)


def run_times(trainer, started: float, fit_time: float, fit_key: str) -> dict[str, float | int]:
    """The time fields of a summary, over all the segments of a run that was resumed (each earlier one up to
    its last checkpoint, as :class:`~fpnas.runtime.exact_resume.ExactResume` carries them): ``wall_time_s``
    (this segment from ``started``) and ``fit_key`` (``fit_time_s`` / ``train_time_s``: this one's
    ``fit_time``); the same for this segment alone (``wall_time_last_segment_s``, ``<fit>_last_segment_s``)
    and the number of segments (``wall_time_segments``, 1 for a run never resumed)."""
    now = time.time()
    resume = next((c for c in trainer.callbacks if isinstance(c, ExactResume)), None) or ExactResume()
    return {
        "wall_time_s": round(resume.total_wall_time(now, started), 2),
        fit_key: round(resume.total_fit_time(fit_time), 2),
        "wall_time_last_segment_s": round(now - started, 2),
        f"{fit_key.removesuffix('_s')}_last_segment_s": round(fit_time, 2),
        "wall_time_segments": resume.segments,
    }


def search_summary(module, trainer, run: RunDir, started: float, fit_time: float, top_k: int) -> dict[str, Any]:
    """The numbers of a finished search, as ``search_summary.json`` keeps them (millions of MACs and
    parameters: the unit of files and messages; the module counts MACs): of the member in view, whose files
    are in ``run``, for a search with several targets (:func:`family_summary` sums them up)."""

    # the last validation of the fit scored the final exported architecture; NaN when validation is off
    val_acc = trainer.callback_metrics.get(module.val_acc_key(), float("nan"))
    exported = module.exported_architecture()
    scored = module.candidate_scores if module.pick_was_scored() else None
    if scored:  # the final pick was scored on the whole α split
        val_acc = module.scored_val_acc
    macs, params = module.architecture_cost(exported)
    constraints = {}
    for c, table, beta in zip(module.constraints, module.cost_tables, module.beta_values.values()):
        scale = c.metric.scale
        constraints[c.name] = {
            "target": c.target,
            "unit": c.metric.unit,
            "arch": float(table.lookup(exported)[0]) / scale,
            "expected_final": module.expected(c.name) / scale,
            "beta_final": beta,
        }
    summary = {
        "space": module.space.name,
        "target_mflops": module.target("flops"),
        "arch_mflops": macs / 1e6,
        "arch_params_m": params / 1e6,
        "export_mode": module.final_pick.mode,
        "selection": module.selection(),
        "argmax_mflops": module.architecture_cost(module.argmax_architecture())[0] / 1e6,
        "beta_final": module.beta_value,
        "val_acc": float(val_acc),
        "candidates_scored": len(scored) if scored else 0,
        "candidates": [  # the final pick's candidates in probability order, with their α-split scores
            {
                "rank": c["rank"],
                "prob": c["prob"],
                "mflops": c["macs"] / 1e6,
                "val_acc": c["acc"],
                "val_log_lik": c["log_lik"],
                **({"filled_from_rank": c["of"]} if "of" in c else {}),
            }
            for c in scored or []
        ],
        "total_arch_samples": int(module.samples_total),
        "steps": int(module.steps_done),
        "epochs": int(trainer.current_epoch),
        "entropy_initial": float(module.entropy_initial),
        "entropy_final": float(module.distribution.entropy()),
        "k_initial": int(module.k_initial),
        "k_final": int(module.sampler(float(module.distribution.entropy()))),
        "phase_final": module.phase,
        "expected_mflops_final": module.expected_macs() / 1e6,
        "feasibility_restored_steps": module.restored_steps,
        **run_times(trainer, started, fit_time, "fit_time_s"),
        "processes": int(trainer.world_size),
        "grad_allreduces": AllReduceStats.calls,
        "grad_allreduce_mb": round(AllReduceStats.bytes / 2**20, 3),
        "constraints": constraints,
        **{
            key: value
            for c in module.constraints
            if c.name not in ("flops", "params")
            for key, value in (
                (c.metric.target_summary_key, c.target),
                (c.metric.summary_key, constraints[c.name]["arch"]),
            )
        },
        "arch_file": str(run.arch),
        "checkpoint": next((str(c.path) for c in trainer.callbacks if isinstance(c, LastCheckpoint)), None),
    }
    if top_k:
        summary["top_archs_file"] = str(run.top_archs)
    if len(module.members) > 1:
        summary |= {"target_index": module.viewed, "family_size": len(module.members)}
    return summary


# one row per member of a family search, in family_summary.csv
FAMILY_COLUMNS = (
    "target_index",
    "target_mflops",
    "arch_mflops",
    "arch_params_m",
    "val_acc",
    "entropy_final",
    "k_final",
    "phase_final",
    "arch_file",
)
# what the members share: the run's counters and times
SHARED_KEYS = (
    "space",
    "total_arch_samples",
    "steps",
    "epochs",
    "wall_time_s",
    "fit_time_s",
    "wall_time_last_segment_s",
    "fit_time_last_segment_s",
    "wall_time_segments",
    "processes",
    "grad_allreduces",
    "grad_allreduce_mb",
    "checkpoint",
    "threads",
    "threads_setting",
)


def family_summary(members: list[dict[str, Any]], run: RunDir) -> dict[str, Any]:
    """``search_summary.json`` at the top of a search for several targets: what the members share (steps,
    epochs, times), the family's table and picture, and every member's summary."""
    rows = [{k: m.get(k) for k in FAMILY_COLUMNS} for m in members]
    for row, member in zip(rows, members):
        row |= {f"target_{name}": c["target"] for name, c in member["constraints"].items() if name != "flops"}
        row |= {f"arch_{name}": c["arch"] for name, c in member["constraints"].items() if name != "flops"}
    return {
        **{k: members[0].get(k) for k in SHARED_KEYS if k in members[0]},
        "family_size": len(members),
        "val_acc_mean": sum(m["val_acc"] for m in members) / len(members),
        "targets_mflops": [m.get("target_mflops") for m in members],
        "family_summary_file": str(run.family_summary),
        "family_picture": str(run.family_picture),
        "family": rows,
        "members": members,
    }


def write_family(summary: dict[str, Any], run: RunDir) -> None:
    """``family_summary.csv`` (one row per member) and ``family.png`` (val acc against MFLOPs)."""
    import csv

    import matplotlib.pyplot as plt

    rows = summary["family"]
    columns = list(dict.fromkeys(k for row in rows for k in row))
    with open(run.family_summary, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    points = [dict(row, run_dir=str(Path(row["arch_file"]).parent)) for row in rows]
    fig = pareto_figure(points, "flops")
    fig.axes[0].set_title(f"one search, {len(rows)} targets", fontsize=9)
    fig.tight_layout()
    fig.savefig(run.family_picture, dpi=120)
    plt.close(fig)


def print_family_summary(summary: dict[str, Any], output_dir) -> None:
    """One line per member (target, MFLOPs, params, val acc) and the run's numbers."""
    from rich.table import Table

    table = Table(title="found architectures, one per target", title_justify="left")
    for name in ("target", "MFLOPs / target", "M params", "val acc (α split)", "entropy", "arch.yaml"):
        table.add_column(name, overflow="fold")
    for row in summary["family"]:
        table.add_row(
            str(row["target_index"]),
            f"{row['arch_mflops']:.4g} / {row['target_mflops']:.4g}",
            _num(row["arch_params_m"]),
            _num(row["val_acc"], ".4f"),
            _num(row["entropy_final"], ".3f"),
            str(Path(row["arch_file"]).relative_to(Path(output_dir))),
        )
    s = summary
    numbers = [
        ("architecture samples", f"{s['total_arch_samples']:,} in {s['steps']:,} steps, {s['epochs']} epochs"),
        ("wall time", f"{s['wall_time_s']:.1f} s (fit {_num(s.get('fit_time_s'), '.1f')} s)"),
        ("family", f"{s['family_summary_file']}, {s['family_picture']}"),
    ]
    console = wide_console()
    console.print(table)
    console.print(_key_values("search result", numbers))


def _versus(found: float, target: float | None) -> str:
    """A value against its target: ``0.48 vs target 0.5 (96.0%, under the target)``."""
    if target is None:
        return f"{found:.4g}"
    under = "under" if found <= target else "OVER"
    return f"{found:.4g} vs target {target:.4g} ({100 * found / target:.1f}%, {under} the target)"


def search_summary_renderables(summary: dict[str, Any], arch, output_dir: Path) -> list:
    """The found architecture per block and the key numbers of a search."""
    s = summary
    numbers = [
        ("space", f"{s['space']} ({arch.space.input_size}px, {len(arch.space.blocks)} blocks)"),
        ("MFLOPs (MACs)", _versus(s["arch_mflops"], s["target_mflops"])),
        *(
            (c["unit"], _versus(c["arch"], c["target"]))
            for name, c in (s.get("constraints") or {}).items()
            if name != "flops"
        ),
        ("selection", str(s.get("selection", "the most likely architecture"))),
        *(
            [("argmax MFLOPs", f"{s['argmax_mflops']:.4g} (the argmax of every unit, not exported)")]
            if s.get("argmax_mflops") is not None and abs(s["argmax_mflops"] - s["arch_mflops"]) > 1e-9
            else []
        ),
        ("expected MFLOPs", _num(s.get("expected_mflops_final"))),
        (
            "β",
            ", ".join(f"{n} {c['beta_final']:.4g}" for n, c in s["constraints"].items())
            if len(s.get("constraints") or {}) > 1
            else _num(s.get("beta_final"), ".4g"),
        ),
        ("params", f"{s['arch_params_m']:.4g} M"),
        ("val acc (α split)", _num(s.get("val_acc"), ".4f")),
        ("architecture samples", f"{s['total_arch_samples']:,} in {s['steps']:,} steps, {s['epochs']} epochs"),
        ("entropy", f"{_num(s.get('entropy_initial'), '.3f')} → {_num(s.get('entropy_final'), '.3f')} nats"),
        ("K", f"{s.get('k_initial')} → {s.get('k_final')}"),
        ("distribution", str(s.get("phase_final"))),
        (
            "wall time",
            f"{s['wall_time_s']:.1f} s (fit {_num(s.get('fit_time_s'), '.1f')} s, "
            f"{s.get('processes', 1)} process{'es' if s.get('processes', 1) != 1 else ''})",
        ),
    ]
    return [
        architecture_table(arch, title="found architecture"),
        _key_values("search result", numbers),
        _outputs(output_dir, "search"),
    ]


def train_summary_renderables(summary: dict[str, Any], arch, output_dir: Path) -> list:
    """The trained architecture per block and the key numbers of a training run."""
    s = summary
    acc = f"{s['test_acc']:.4f}"
    if s.get("ema"):
        acc += f" (EMA {s['test_acc_ema']:.4f})"
    numbers = [
        ("architecture", f"{s['arch']} (space {s['space']}, {s['input_size']}px, {s['num_classes']} classes)"),
        ("MFLOPs (MACs)", f"{s['mflops']:.4g}"),
        ("params", f"{s['params_m']:.4g} M"),
        ("test acc", acc),
    ]
    if "test_acc5" in s:
        top5 = f"{s['test_acc5']:.4f}" + (
            f" (EMA {s['test_acc5_ema']:.4f})" if "test_acc5_ema" in s and s.get("ema") else ""
        )
        numbers.append(("test acc top-5", top5))
    if "alpha_acc" in s:  # trained on ω only: α is a validation split
        numbers.append(
            ("α-split acc", f"{s['alpha_acc']:.4f}" + (f" (EMA {s['alpha_acc_ema']:.4f})" if s.get("ema") else ""))
        )
    numbers.append(("training", f"{s['epochs']} epoch{'s' if s['epochs'] != 1 else ''}, {s['steps']:,} steps"))
    if s.get("distill_teacher"):
        numbers.append(("teacher", s["distill_teacher"]))
    if s.get("init_from_search"):
        numbers.append(("warm start", s["init_from_search"]))
    numbers.append(("wall time", f"{s['wall_time_s']:.1f} s (training {_num(s.get('train_time_s'), '.1f')} s)"))
    return [
        architecture_table(arch, title="trained architecture"),
        _key_values("training result", numbers),
        _outputs(output_dir, "train"),
    ]


def print_search_summary(summary: dict[str, Any], arch, output_dir) -> None:
    console = wide_console()
    for item in search_summary_renderables(summary, arch, Path(output_dir)):
        console.print(item)


def print_train_summary(summary: dict[str, Any], arch, output_dir) -> None:
    console = wide_console()
    for item in train_summary_renderables(summary, arch, Path(output_dir)):
        console.print(item)
