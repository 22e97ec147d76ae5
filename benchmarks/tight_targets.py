"""Tight targets on the default space: the search with and without ``search.restore_feasibility``.

A target near the space's smallest network leaves few architectures within it; Eq. 7's relative cost
term can then lose the target (docs/method.md, the cost term). For each target and seed, ``search.py``
(the default space and data) runs with the rule off (the default) and on, side by side, and each
pick is retrained from scratch with ``train.py`` (its default recipe, the same seed): the pick's MFLOPs,
the super-net's α-split accuracy, the retrained test accuracy (the ground truth of that one network),
the steps that restored feasibility and how the pick was chosen.

Resumable: each finished pair of runs is a line of ``benchmarks/results/tight_targets.jsonl``.

    python benchmarks/tight_targets.py --targets 0.25 0.3 0.4 --seeds 0 1 --workers 2
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
from typing import Any

from common import RESULTS, ROOT, markdown_table, run_logged, run_python, write_report

WORK = ROOT / "benchmarks" / ".work" / "tight_targets"
SETTINGS = {"eq7": "false", "restore": "true"}  # search.restore_feasibility


def cheapest_task(task: dict[str, Any]) -> dict[str, Any]:
    """The space's cheapest architecture retrained (what the final pick exported when nothing probable fit,
    before it shrank the most probable one instead)."""
    from fpnas.space.arch import architecture_from_indices, load_architecture
    from fpnas.space.complexity import ComplexityTables

    run_dir = WORK / f"cheapest_s{task['seed']}"
    if run_dir.exists():
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True)
    space = load_architecture(task["arch_of_a_search"]).space  # the space as the data sizes it
    macs, indices = ComplexityTables(space).extreme_architecture("min")
    path = run_dir / "arch.yaml"
    architecture_from_indices(space, indices).save(path)
    train = _retrain(path, run_dir.with_name(run_dir.name + "_train"), task)
    return {"setting": "cheapest", "seed": task["seed"], "arch_mflops": macs / 1e6, "test_acc": train["test_acc"]}


def _retrain(arch, train_dir, task: dict[str, Any]) -> dict:
    if train_dir.exists():
        shutil.rmtree(train_dir)
    run_python(
        [
            "train.py",
            f"arch={arch}",
            f"hydra.run.dir={train_dir}",
            f"seed={task['seed']}",
            "trainer.enable_progress_bar=false",
            f"threads={task['threads']}",
        ]
    )
    return json.loads((train_dir / "train_summary.json").read_text())


def run_task(task: dict[str, Any]) -> dict[str, Any]:
    """One search.py run and the retraining of its pick."""
    if task["setting"] == "cheapest":
        return cheapest_task(task)
    run_dir = WORK / f"{task['setting']}_t{task['target']}_s{task['seed']}"
    if run_dir.exists():  # an unfinished run of an earlier invocation
        shutil.rmtree(run_dir)
    overrides = [
        f"cost.target_mflops={task['target']}",
        f"seed={task['seed']}",
        f"search.restore_feasibility={SETTINGS[task['setting']]}",
        "trainer.enable_progress_bar=false",
        f"threads={task['threads']}",
    ]
    run_python(["search.py", f"hydra.run.dir={run_dir}", *overrides])
    summary = json.loads((run_dir / "search_summary.json").read_text())
    train = _retrain(run_dir / "arch.yaml", run_dir.with_name(run_dir.name + "_train"), task)
    return {
        "setting": task["setting"],
        "target_mflops": task["target"],
        "seed": task["seed"],
        "arch_mflops": summary["arch_mflops"],
        "argmax_mflops": summary["argmax_mflops"],
        "expected_mflops_final": summary["expected_mflops_final"],
        "alpha_acc": summary["val_acc"],
        "test_acc": train["test_acc"],
        "restored_steps": summary.get("feasibility_restored_steps"),
        "selection": summary["selection"],
        "search_s": summary["fit_time_s"],
    }


def describe(row: dict) -> str:
    if row["setting"] == "cheapest":
        return f"cheapest seed {row['seed']}: {row['arch_mflops']:.4f} MFLOPs, retrained test {row['test_acc']:.4f}"
    return (
        f"{row['setting']} target {row['target_mflops']} seed {row['seed']}: {row['arch_mflops']:.4f} MFLOPs, "
        f"α-split {row['alpha_acc']:.4f}, retrained test {row['test_acc']:.4f}, restored {row['restored_steps']}"
    )


def summarize(rows: list[dict]) -> list[dict]:
    out = []
    cheapest = [r for r in rows if r["setting"] == "cheapest"]
    if cheapest:
        out.append(
            {
                "target_mflops": None,
                "setting": "cheapest",
                "seeds": len(cheapest),
                "arch_mflops": cheapest[0]["arch_mflops"],
                "test_acc": statistics.fmean(r["test_acc"] for r in cheapest),
                "test_acc_min": min(r["test_acc"] for r in cheapest),
            }
        )
    searched = [r for r in rows if r["setting"] != "cheapest"]
    for target in sorted({r["target_mflops"] for r in searched}):
        for setting in SETTINGS:
            rs = [r for r in searched if r["target_mflops"] == target and r["setting"] == setting]
            if not rs:
                continue
            out.append(
                {
                    "target_mflops": target,
                    "setting": setting,
                    "seeds": len(rs),
                    "arch_mflops": statistics.fmean(r["arch_mflops"] for r in rs),
                    "argmax_mflops": statistics.fmean(r["argmax_mflops"] for r in rs),
                    "alpha_acc": statistics.fmean(r["alpha_acc"] for r in rs),
                    "test_acc": statistics.fmean(r["test_acc"] for r in rs),
                    "test_acc_min": min(r["test_acc"] for r in rs),
                    "restored_steps": statistics.fmean(r["restored_steps"] or 0 for r in rs),
                    "target_lost": sum("none of the" in r["selection"] for r in rs),
                }
            )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__
    )
    parser.add_argument("--targets", type=float, nargs="+", default=[0.25, 0.3, 0.4])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="torch threads per run")
    parser.add_argument("--summary-only", action="store_true", help="rewrite tight_targets.json|md from the JSONL")
    args = parser.parse_args()
    log = RESULTS / "tight_targets.jsonl"
    rows = [json.loads(line) for line in log.read_text().splitlines()] if log.is_file() else []
    if not args.summary_only:
        done = {(r["setting"], r.get("target_mflops"), r["seed"]) for r in rows}
        tasks = [
            {"setting": setting, "target": target, "seed": seed, "threads": args.threads}
            for target in args.targets
            for seed in args.seeds
            for setting in SETTINGS
            if (setting, target, seed) not in done
        ]
        print(f"{len(tasks)} searches to do ({len(rows)} runs done) with {args.workers} worker(s)", flush=True)
        rows += run_logged(tasks, run_task, log, args.workers, describe)
        # then the cheapest network, sized as the searches' data sizes it (from one of their arch.yaml)
        searched = sorted(WORK.glob("*_t*_s*/arch.yaml"))
        tasks = [
            {"setting": "cheapest", "seed": seed, "threads": args.threads, "arch_of_a_search": str(searched[0])}
            for seed in args.seeds
            if searched and ("cheapest", None, seed) not in done
        ]
        rows += run_logged(tasks, run_task, log, args.workers, describe) if tasks else []
    table = summarize(rows)
    md = [
        "# Tight targets on the default space (benchmarks/tight_targets.py)",
        "",
        "`tiny` on mnist5k, default search; `eq7` = `search.restore_feasibility=false` (the default, Eq. 7 as "
        "written), `restore` = true; `cheapest`: the space's cheapest network (what the pick was when nothing "
        "probable fit, before it shrank the most probable one instead). Test accuracy: the network retrained from "
        "scratch with train.py's defaults (same seed). 'target lost': searches whose final pick found none of the "
        "100,000 most probable architectures within the target (their pick is the most probable one shrunk to fit).",
        "",
        markdown_table(
            table,
            [
                ("target_mflops", "target MFLOPs"),
                ("setting", "setting"),
                ("seeds", "seeds"),
                ("arch_mflops", "pick MFLOPs"),
                ("argmax_mflops", "argmax MFLOPs"),
                ("alpha_acc", "α-split acc"),
                ("test_acc", "retrained test acc"),
                ("test_acc_min", "worst seed"),
                ("restored_steps", "restored steps"),
                ("target_lost", "target lost"),
            ],
        ),
    ]
    write_report("tight_targets", False, {"rows": rows, "summary": table}, "\n".join(md))


if __name__ == "__main__":
    main()
