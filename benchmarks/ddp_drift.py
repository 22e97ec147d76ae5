"""Why do a 2-process and a 1-process search drift apart, and how much of it is rounding?

Three searches of the same micro space on the digits over whole epochs, with synced batch norm:
one process with global batches of 64; two processes with 32 each (the same images per step); and a
*control*: one process whose batches have their images in reverse order (mathematically the same
search: it differs from the first only by the order of floating-point sums, as the 2-process run
does). Per step it reports the largest α and weight differences to the 1-process run and the first
step whose sampled architectures differ. If the 2-process run drifts like the control, the drift is
rounding amplified by the search's own dynamics, not a bug.

    python benchmarks/ddp_drift.py [--epochs 3] [--quick]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import torch
from common import markdown_table, run_python, write_report

BASE = [
    "data=digits",
    "space=micro",
    "cost.target_mflops=0.08",
    "search.warmup_epochs=1",
    "distribution.switch_epoch=2",
    "search.sync_bn=true",
    "trainer.enable_progress_bar=false",
    "callbacks.search_plots.every_n_epochs=0",
    "+trainer.limit_val_batches=0",
]


def trace(run_dir: Path, extra: list[str], epochs: int) -> list[dict]:
    path = run_dir / "trace.pt"
    run_python(
        [
            "search.py",
            f"hydra.run.dir={run_dir}",
            *BASE,
            f"trainer.max_epochs={epochs}",
            "+callbacks.trace._target_=tests.helpers.StateTrace",
            f"+callbacks.trace.path={path}",
            *extra,
        ],
        env={"OMP_NUM_THREADS": "1"},
    )
    return torch.load(path, weights_only=False)


def compare(ref: list[dict], other: list[dict]) -> list[dict]:
    rows, first_diff = [], None
    for a, b in zip(ref, other):
        if first_diff is None and a["archs"] != b["archs"]:
            first_diff = a["step"]
        alpha = float((a["alpha"].double() - b["alpha"].double()).abs().max())
        weights = max(float((a["weights"][k].double() - b["weights"][k].double()).abs().max()) for k in a["weights"])
        rows.append(
            {
                "step": a["step"],
                "alpha_max_abs_diff": alpha,
                "weight_max_abs_diff": weights,
                "same_archs_so_far": first_diff is None,
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="1 epoch")
    args = parser.parse_args()
    epochs = 1 if args.quick else args.epochs
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        one = trace(tmp / "one", ["data.batch_size=64"], epochs)
        two = trace(tmp / "two", ["data.batch_size=32", "trainer=ddp_cpu", "trainer.devices=2"], epochs)
        control = trace(
            tmp / "control",
            ["data.batch_size=64", "+callbacks.reverse._target_=tests.helpers.ReverseWithinBatch"],
            epochs,
        )
    ddp, ctl = compare(one, two), compare(one, control)
    steps = len(one)
    per_epoch = steps // epochs
    marks = sorted({1, 2, 4, *range(per_epoch, steps + 1, per_epoch)} & set(range(1, steps + 1)))
    table = [
        {
            "step": s,
            "epoch": (s - 1) // per_epoch,
            "ddp_alpha": ddp[s - 1]["alpha_max_abs_diff"],
            "ctl_alpha": ctl[s - 1]["alpha_max_abs_diff"],
            "ddp_w": ddp[s - 1]["weight_max_abs_diff"],
            "ctl_w": ctl[s - 1]["weight_max_abs_diff"],
            "ddp_same": ddp[s - 1]["same_archs_so_far"],
            "ctl_same": ctl[s - 1]["same_archs_so_far"],
        }
        for s in marks
    ]
    fmt = lambda v: f"{v:.2e}"  # noqa: E731
    md = markdown_table(
        [{k: (fmt(v) if isinstance(v, float) else v) for k, v in r.items()} for r in table],
        [
            ("step", "step"),
            ("epoch", "epoch"),
            ("ddp_alpha", "α diff, 2 processes"),
            ("ctl_alpha", "α diff, reversed batches"),
            ("ddp_w", "weight diff, 2 processes"),
            ("ctl_w", "weight diff, reversed batches"),
            ("ddp_same", "same archs so far (2 proc)"),
            ("ctl_same", "same archs so far (reversed)"),
        ],
    )
    md += (
        f"\n\nmicro on the digits, sync_bn, global batch 64, {epochs} epoch(s) of {per_epoch} steps; differences "
        "are the largest absolute difference to the 1-process run over all α logits / super-net weights."
    )
    write_report("ddp_drift", args.quick, {"epochs": epochs, "ddp": ddp, "control": ctl, "table": table}, md)


if __name__ == "__main__":
    sys.exit(main())
