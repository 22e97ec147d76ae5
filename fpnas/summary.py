"""End-of-run summary tables (rich) for ``search.py`` and ``train.py``.

Printed to stdout, where Hydra's console log goes too, by the process of rank zero only (the
callers print inside their ``trainer.is_global_zero`` branch). ``search_summary.json`` /
``train_summary.json`` keep the same numbers for programs.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Iterable

from fpnas.show import architecture_table


def _num(value, fmt: str = ".4g") -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and math.isnan(value):
        return "n/a"
    return format(value, fmt)


def _key_values(title: str, rows: Iterable[tuple[str, str]]):
    from rich.table import Table

    table = Table(title=title, show_header=False, title_justify="left", box=None, padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()
    for key, value in rows:
        table.add_row(key, value)
    return table


def _paths(output_dir: Path, names: Iterable[str]) -> list[tuple[str, str]]:
    """(label, path) of the run's output files that exist."""
    rows = [("run directory", str(output_dir))]
    for name in names:
        path = output_dir / name
        if path.exists():
            rows.append((name, str(path)))
    return rows


def _console():
    from rich.console import Console

    console = Console()
    if not console.is_terminal:
        console.width = max(console.width, 120)  # logs and pipes: do not wrap the tables at 80 columns
    return console


def search_summary_renderables(summary: dict[str, Any], arch, output_dir: Path) -> list:
    """The found architecture per block and the key numbers of a search."""
    s = summary
    target, found = s["target_mflops"], s["arch_mflops"]
    under = "under" if found <= target else "OVER"
    numbers = [
        ("space", f"{s['space']} ({arch.space.input_size}px, {len(arch.space.blocks)} blocks)"),
        ("MFLOPs (MACs)", f"{found:.4g} vs target {target:.4g} ({100 * found / target:.1f}%, {under} the target)"),
        ("selection", str(s.get("selection", "the most likely architecture"))),
        *([("argmax MFLOPs", f"{s['argmax_mflops']:.4g} (the argmax of every unit, not exported)")]
          if s.get("argmax_mflops") is not None and abs(s["argmax_mflops"] - found) > 1e-9 else []),
        ("expected MFLOPs", _num(s.get("expected_mflops_final"))),
        ("β", _num(s.get("beta_final"), ".4g")),
        ("params", f"{s['arch_params_m']:.4g} M"),
        ("val acc (α split)", _num(s.get("val_acc"), ".4f")),
        ("architecture samples", f"{s['total_arch_samples']:,} in {s['steps']:,} steps, {s['epochs']} epochs"),
        ("entropy", f"{_num(s.get('entropy_initial'), '.3f')} → {_num(s.get('entropy_final'), '.3f')} nats"),
        ("K", f"{s.get('k_initial')} → {s.get('k_final')}"),
        ("distribution", str(s.get("phase_final"))),
        ("wall time", f"{s['wall_time_s']:.1f} s (fit {_num(s.get('fit_time_s'), '.1f')} s, "
                      f"{s.get('processes', 1)} process{'es' if s.get('processes', 1) != 1 else ''})"),
    ]
    files = _paths(output_dir, ["arch.yaml", "search_summary.json", "checkpoints/last.ckpt", "plots",
                                "top_archs.yaml", "csv/metrics.csv", "tensorboard"])
    return [architecture_table(arch, title="found architecture"),
            _key_values("search result", numbers), _key_values("outputs", files)]


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
        top5 = f"{s['test_acc5']:.4f}" + (f" (EMA {s['test_acc5_ema']:.4f})" if "test_acc5_ema" in s and s.get("ema")
                                          else "")
        numbers.append(("test acc top-5", top5))
    if "alpha_acc" in s:  # trained on ω only: α is a validation split
        numbers.append(("α-split acc", f"{s['alpha_acc']:.4f}" + (f" (EMA {s['alpha_acc_ema']:.4f})" if s.get("ema")
                                                                   else "")))
    numbers.append(("training", f"{s['epochs']} epoch{'s' if s['epochs'] != 1 else ''}, {s['steps']:,} steps"))
    if s.get("distill_teacher"):
        numbers.append(("teacher", s["distill_teacher"]))
    if s.get("init_from_search"):
        numbers.append(("warm start", s["init_from_search"]))
    numbers.append(("wall time", f"{s['wall_time_s']:.1f} s (training {_num(s.get('train_time_s'), '.1f')} s)"))
    files = _paths(output_dir, ["arch.yaml", "train_summary.json", "checkpoints/last.ckpt", "csv/metrics.csv",
                                "tensorboard"])
    return [architecture_table(arch, title="trained architecture"), _key_values("training result", numbers),
            _key_values("outputs", files)]


def print_search_summary(summary: dict[str, Any], arch, output_dir) -> None:
    console = _console()
    for item in search_summary_renderables(summary, arch, Path(output_dir)):
        console.print(item)


def print_train_summary(summary: dict[str, Any], arch, output_dir) -> None:
    console = _console()
    for item in train_summary_renderables(summary, arch, Path(output_dir)):
        console.print(item)
