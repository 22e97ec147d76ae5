"""Would another training recipe make a ground truth rank methods? A pilot against the full table.

A pilot is a ground-truth piece trained with another recipe on some of the architectures
(``ground_truth.py --ids ... --out pilot.csv -- <recipe overrides>``). On exactly those architectures
and the seeds both tables have, this script compares, per budget: the seed-to-seed Kendall τ, the mean
seed std, the spread of the mean accuracy (P90 - P10) and its ratio to the std: the numbers
``ground_truth.py`` judges a benchmark by (τ >= 0.7, ratio >= 5). Writes ``seed_tau_pilot.json|md``.

    python benchmarks/seed_tau_pilot.py shifted benchmarks/results/ground_truth_pilot_shifted_12epochs.csv
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import time
from pathlib import Path

from common import RESULTS, machine, markdown_table
from ground_truth import BENCHMARKS, read_rows


def seed_columns(row: dict) -> list[int]:
    return sorted(int(k.removeprefix("test_acc_s")) for k in row if k.removeprefix("test_acc_s").isdigit())


def agreement(rows: list[dict], seeds: list[int]) -> dict:
    """Seed τ (mean over seed pairs), mean seed std, P90 - P10 of the mean test accuracy and their ratio."""
    from scipy.stats import kendalltau

    accs = [[float(r[f"test_acc_s{s}"]) for s in seeds] for r in rows]
    taus = [
        kendalltau([a[i] for a in accs], [a[j] for a in accs]).statistic
        for i, j in itertools.combinations(range(len(seeds)), 2)
    ]
    means = sorted(statistics.fmean(a) for a in accs)
    spread = means[round(0.9 * (len(means) - 1))] - means[round(0.1 * (len(means) - 1))]
    std = statistics.fmean(statistics.stdev(a) for a in accs)
    return {
        "archs": len(rows),
        "seed_tau": statistics.fmean(taus),
        "seed_std": std,
        "spread": spread,
        "ratio": spread / std if std > 0 else float("inf"),
        "mean_acc": statistics.fmean(means),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog=__doc__)
    parser.add_argument("benchmark", choices=list(BENCHMARKS))
    parser.add_argument("pilot", type=Path, help="the pilot's CSV (ground_truth.py --ids ... --out)")
    parser.add_argument("--budgets", type=float, nargs="+", help="MFLOPs (default: the benchmark's)")
    args = parser.parse_args()
    bench = BENCHMARKS[args.benchmark]
    table_path = RESULTS / f"ground_truth_{bench['space']}_{bench['data']}.csv"
    table = {r["arch_id"]: r for r in read_rows(table_path)}
    pilot = {r["arch_id"]: r for r in read_rows(args.pilot)}
    pilot_meta = json.loads(args.pilot.with_suffix(".json").read_text())
    ids = sorted(pilot)
    seeds = sorted(set(seed_columns(pilot[ids[0]])) & set(seed_columns(table[ids[0]])))
    if len(seeds) < 2:
        raise SystemExit("error: the pilot and the table need two seeds in common")
    budgets = args.budgets or bench["budgets_mflops"]
    rows = []
    for budget in budgets:
        under = [i for i in ids if pilot[i]["mflops"] <= budget]
        if len(under) < 3:
            continue
        for name, source in (("table", table), ("pilot", pilot)):
            rows.append({"budget_mflops": budget, "recipe": name, **agreement([source[i] for i in under], seeds)})
    doc = {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine": machine(),
        "benchmark": args.benchmark,
        "table": str(table_path.name),
        "table_overrides": bench["train_overrides"],
        "pilot": str(args.pilot.name),
        "pilot_overrides": pilot_meta.get("train_overrides"),
        "architectures": len(ids),
        "seeds": seeds,
        "train_s": {
            "table": statistics.fmean(table[i]["train_s"] for i in ids),
            "pilot": statistics.fmean(pilot[i]["train_s"] for i in ids),
        },
        "rows": rows,
    }
    out = RESULTS / "seed_tau_pilot"
    out.with_suffix(".json").write_text(json.dumps(doc, indent=2) + "\n")
    recipes = {"table": " ".join(doc["table_overrides"]), "pilot": " ".join(doc["pilot_overrides"] or [])}
    md = [
        f"# Seed agreement of a recipe pilot: `{args.benchmark}`",
        "",
        f"The same {len(ids)} architectures (`{doc['pilot']}`), seeds {seeds}: the table's recipe "
        f"(`{recipes['table']}`, {doc['train_s']['table']:.1f} s per training) against the pilot's "
        f"(`{recipes['pilot']}`, {doc['train_s']['pilot']:.1f} s per training).",
        "",
        markdown_table(
            rows,
            [
                ("budget_mflops", "budget MFLOPs"),
                ("recipe", "recipe"),
                ("archs", "archs"),
                ("seed_tau", "seed τ (target >= 0.7)"),
                ("seed_std", "mean seed std"),
                ("spread", "P90 - P10"),
                ("ratio", "ratio (target >= 5)"),
                ("mean_acc", "mean acc"),
            ],
        ),
    ]
    out.with_suffix(".md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
