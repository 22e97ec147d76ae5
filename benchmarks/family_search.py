"""One search for a family of budgets against one search per budget, on the ground-truth benchmarks.

For each benchmark, family size and seed, ``search.py cost.target_mflops=[a,b,c]`` trains one super-net for
all the targets (one member per target, taking turns); beside it, in the same pool and under the same load,
``search.py cost.target_mflops=a`` runs once per target and seed (what a ``-m`` sweep runs). Every exported
architecture is looked up in the ground-truth table, as ``benchmarks/search_quality.py`` does: its
percentile among the architectures under its budget (0 = the best) and whether it is over the budget.

Reported per benchmark and family size: the wall time of the family run against one search and against the
sum of the separate searches (goal for 3 targets: <= 1.5x one search), and per target the mean percentile of
the family's pick against the separate search's, with the separate searches' seed spread (goal: no worse
beyond seed noise); every pick within its budget.

Resumable: each finished run is a line of ``benchmarks/results/family_search_<benchmark>.jsonl``.

    python benchmarks/family_search.py mnist5k shifted --seeds 0 1 2 --workers 2
    python benchmarks/family_search.py --summary-only
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from common import CLEAN_ENV, RESULTS, ROOT, machine, markdown_table, run_logged
from ground_truth import BENCHMARKS, read_rows
from search_quality import lookup, search_overrides

# the targets of each family: budgets of search_quality's benchmark, spread over its range
FAMILIES = {
    "mnist5k": {3: (0.104, 0.152, 0.266), 5: (0.104, 0.13, 0.152, 0.196, 0.266)},
    "shifted": {3: (0.23, 0.36, 0.68), 5: (0.23, 0.29, 0.36, 0.45, 0.68)},
}
WORK = ROOT / "benchmarks" / ".work" / "family_search"


def targets_override(targets: tuple[float, ...]) -> str:
    return f"[{','.join(f'{t:g}' for t in targets)}]"


def run_task(task: dict[str, Any]) -> dict[str, Any]:
    """One search.py run (a subprocess, ``threads`` threads): a family or a single target."""
    bench, targets, seed = task["bench"], tuple(task["targets"]), task["seed"]
    run_dir = Path(task["run_dir"])
    target = targets_override(targets) if len(targets) > 1 else f"{targets[0]:g}"
    overrides = [o for o in search_overrides(bench, "fpnas", 0.0, seed, run_dir, []) if "target_mflops" not in o]
    overrides.append(f"cost.target_mflops={target}")
    if run_dir.exists():  # an unfinished run of an earlier invocation: start it again
        shutil.rmtree(run_dir)
    env = {**CLEAN_ENV, "OMP_NUM_THREADS": str(task["threads"]), "MKL_NUM_THREADS": str(task["threads"])}
    started = time.time()
    proc = subprocess.run([sys.executable, "search.py", *overrides], cwd=ROOT, env=env, capture_output=True, text=True)
    process_s = time.time() - started
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-20:])
        raise RuntimeError(f"search failed: python search.py {' '.join(overrides)}\n{tail}")
    summary = json.loads((run_dir / "search_summary.json").read_text())
    from fpnas.space.arch import load_architecture

    gt = read_rows(RESULTS / f"ground_truth_{bench['space']}_{bench['data']}.csv")
    members = summary.get("members") or [summary]
    picks = []
    for budget, member in zip(targets, members):
        arch = load_architecture(member["arch_file"])
        picks.append({"budget_mflops": budget, **lookup(gt, arch.space, arch.indices, budget)})
    shutil.rmtree(run_dir, ignore_errors=True)  # checkpoints: tens of MB per run
    return {
        "kind": "family" if len(targets) > 1 else "single",
        "benchmark": task["name"],
        "targets": list(targets),
        "seed": seed,
        "picks": picks,
        "steps": summary["steps"],
        "wall_time_s": summary["wall_time_s"],
        "fit_time_s": summary["fit_time_s"],
        "process_s": round(process_s, 2),  # search.py from start to exit, imports included
        "threads": task["threads"],
    }


def describe_row(row: dict[str, Any]) -> str:
    """One finished run, for the progress lines."""
    pcts = ", ".join(f"{p['percentile']:.1f}" for p in row["picks"])
    return f"{row['targets']} seed {row['seed']}: pct {pcts}, {row['process_s']:.0f} s"


def summarize(rows: list[dict], name: str) -> list[dict]:
    """Per family size: times against the separate searches, and per target the percentiles."""
    singles = {(r["targets"][0], r["seed"]): r for r in rows if r["kind"] == "single"}
    out = []
    for size, targets in FAMILIES[name].items():
        families = [r for r in rows if r["kind"] == "family" and tuple(r["targets"]) == targets]
        seeds = sorted(r["seed"] for r in families if all((t, r["seed"]) in singles for t in targets))
        if not seeds:
            continue
        fam = {r["seed"]: r for r in families}
        times, separate_sums, one_search = [], [], []
        for seed in seeds:
            times.append(fam[seed]["process_s"])
            parts = [singles[(t, seed)]["process_s"] for t in targets]
            separate_sums.append(sum(parts))
            one_search.append(statistics.fmean(parts))
        per_target = []
        for i, t in enumerate(targets):
            f_pct = [fam[s]["picks"][i]["percentile"] for s in seeds]
            s_pct = [singles[(t, s)]["picks"][0]["percentile"] for s in seeds]
            diffs = [a - b for a, b in zip(f_pct, s_pct)]
            per_target.append(
                {
                    "target": t,
                    "family_pct": statistics.fmean(f_pct),
                    "separate_pct": statistics.fmean(s_pct),
                    "separate_seed_std": statistics.stdev(s_pct) if len(s_pct) > 1 else float("nan"),
                    "diff": statistics.fmean(diffs),
                    "diff_se": statistics.stdev(diffs) / len(diffs) ** 0.5 if len(diffs) > 1 else float("nan"),
                    "family_mflops": statistics.fmean(fam[s]["picks"][i]["arch_mflops"] for s in seeds),
                    "family_over": sum(fam[s]["picks"][i]["over_target"] for s in seeds),
                    "separate_over": sum(singles[(t, s)]["picks"][0]["over_target"] for s in seeds),
                }
            )
        out.append(
            {
                "benchmark": name,
                "targets": list(targets),
                "size": size,
                "seeds": seeds,
                "family_s": statistics.fmean(times),
                "one_search_s": statistics.fmean(one_search),
                "separate_sum_s": statistics.fmean(separate_sums),
                "family_per_search": statistics.fmean(a / b for a, b in zip(times, one_search)),
                "speedup_vs_separate": statistics.fmean(b / a for a, b in zip(times, separate_sums)),
                "family_mean_pct": statistics.fmean(p["family_pct"] for p in per_target),
                "separate_mean_pct": statistics.fmean(p["separate_pct"] for p in per_target),
                "over_target": sum(p["family_over"] for p in per_target),
                "per_target": per_target,
            }
        )
    return out


def write_results(summaries: list[dict], rows: dict[str, list[dict]]) -> None:
    doc = {"machine": machine(), "families": FAMILIES, "summaries": summaries, "rows": rows}
    (RESULTS / "family_search.json").write_text(json.dumps(doc, indent=1) + "\n")
    md = [
        "# One search for a family of budgets (benchmarks/family_search.py)",
        "",
        "`search.py cost.target_mflops=[a,b,...]` (one super-net, one distribution per target) against "
        "`search.py cost.target_mflops=a` once per target (what a `-m` sweep runs), same seeds, run side by side "
        "in one pool (2 workers, 1 thread each). Times are whole `search.py` processes. Percentile: the share "
        "of the architectures under the target that are better in the ground truth (0 = the best).",
        "",
    ]
    overview = [
        {
            "bench": s["benchmark"],
            "n": s["size"],
            "seeds": len(s["seeds"]),
            "family_s": s["family_s"],
            "one_s": s["one_search_s"],
            "ratio": s["family_per_search"],
            "speedup": s["speedup_vs_separate"],
            "fpct": s["family_mean_pct"],
            "spct": s["separate_mean_pct"],
            "over": s["over_target"],
        }
        for s in summaries
    ]
    md += [
        markdown_table(
            overview,
            [
                ("bench", "benchmark"),
                ("n", "targets"),
                ("seeds", "seeds"),
                ("family_s", "family run, s"),
                ("one_s", "one search, s"),
                ("ratio", "family / one search"),
                ("speedup", "separate sum / family"),
                ("fpct", "family mean pct"),
                ("spct", "separate mean pct"),
                ("over", "picks over target"),
            ],
        ),
        "",
    ]
    for s in summaries:
        md += [
            f"## {s['benchmark']}, {s['size']} targets {s['targets']}, seeds {s['seeds']}",
            "",
            markdown_table(
                s["per_target"],
                [
                    ("target", "target MFLOPs"),
                    ("family_pct", "family pct"),
                    ("separate_pct", "separate pct"),
                    ("separate_seed_std", "separate seed std"),
                    ("diff", "family - separate"),
                    ("diff_se", "s.e. of the difference"),
                    ("family_mflops", "family pick MFLOPs"),
                    ("family_over", "family over target"),
                ],
            ),
            "",
        ]
    (RESULTS / "family_search.md").write_text("\n".join(md))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__
    )
    parser.add_argument("benchmarks", nargs="*", help=f"of {list(FAMILIES)} (none with --summary-only)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--sizes", type=int, nargs="+", default=[3, 5], choices=[3, 5])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="torch threads per search")
    parser.add_argument("--summary-only", action="store_true", help="rewrite family_search.json|md from the JSONL")
    args = parser.parse_args()
    unknown = sorted(set(args.benchmarks) - set(FAMILIES))
    if unknown or not (args.benchmarks or args.summary_only):
        parser.error(f"name benchmarks of {list(FAMILIES)} (or --summary-only); got {args.benchmarks}")
    all_rows, summaries = {}, []
    for name in FAMILIES:
        log = RESULTS / f"family_search_{name}.jsonl"
        rows = [json.loads(line) for line in log.read_text().splitlines()] if log.is_file() else []
        if name in args.benchmarks and not args.summary_only:
            bench = BENCHMARKS[name]
            done = {(tuple(r["targets"]), r["seed"]) for r in rows}
            wanted = [FAMILIES[name][size] for size in args.sizes]
            tasks = []
            for seed in args.seeds:  # family runs and separate runs interleaved: the same load for both
                for targets in [*wanted, *((t,) for t in sorted({t for f in wanted for t in f}))]:
                    if (targets, seed) not in done:
                        label = "_".join(f"{t:g}" for t in targets)
                        tasks.append(
                            {
                                "name": name,
                                "bench": bench,
                                "targets": targets,
                                "seed": seed,
                                "threads": args.threads,
                                "run_dir": str(WORK / name / f"t{label}_s{seed}"),
                            }
                        )
            print(f"{name}: {len(tasks)} runs to do ({len(rows)} done) with {args.workers} worker(s)", flush=True)
            rows += run_logged(tasks, run_task, log, args.workers, describe_row)
        if rows:
            all_rows[name] = rows
            summaries += summarize(rows, name)
    write_results(summaries, all_rows)


if __name__ == "__main__":
    main()
