"""Search quality against ground truth: FP-NAS, PARSEC, factorized, joint, random search, random arch.

Every search runs through ``search.py`` on a ground-truth space (``benchmarks/ground_truth.py``), for
each FLOPs budget and seed; its exported architecture is looked up in the ground-truth table (no
retraining): mean test accuracy, the percentile among the architectures under the budget (the share
that is better, in %; 0 = the best), the regret (best feasible mean accuracy - found), whether it is
over the budget. The baselines run at equal compute, in the same table:

* ``random_search``: N uniformly drawn architectures under the budget trained standalone, the best by
  α-split accuracy (the seed's own training in the table); N x one training's fit time ~ the FP-NAS
  search's fit time, with the training time measured in this run, side by side with the searches;
* ``random_arch``: one uniformly drawn architecture under the budget.

For the default FP-NAS runs, the trained super-net scores every architecture on the α split (as the
search scores its exported architecture); Kendall τ against the ground truth is reported.

Resumable: each finished run is a line of ``benchmarks/results/search_quality_<benchmark>.jsonl``; a
restart skips it. ``benchmarks/results/search_quality.json|md`` holds every row and the summaries.

    python benchmarks/search_quality.py mnist5k --workers 2
    python benchmarks/search_quality.py mnist5k --settings fpnas --variant beta_fixed -- cost.beta_lr=0
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from common import CLEAN_ENV, RESULTS, ROOT, machine, markdown_table, run_logged
from ground_truth import BENCHMARKS, parse_readable, read_rows

SEARCH_SETTINGS = {  # the method's overrides on top of the shared protocol (search.py's defaults)
    "fpnas": [],
    "parsec": ["sampler=fixed", "sampler.k=14", "distribution.schedule=joint"],  # PARSEC: fixed K = 14, joint
    "factorized": ["distribution.schedule=factorized"],
    "joint": ["distribution.schedule=joint"],
}
BASELINES = ("random_search", "random_arch")  # drawn at random, per seed
ZERO_COMPUTE = ("max_mflops", "max_params", "scaled_uniform")  # what a user picks without any compute
CALIBRATION_ARCHS = 3  # per budget: standalone trainings timed beside the searches (equal compute)
WORK = ROOT / "benchmarks" / ".work" / "search_quality"


# ----------------------------------------------------------------------------- one search
def search_overrides(bench: dict, setting: str, budget: float, seed: int, run_dir: Path, extra: list[str]) -> list[str]:
    return [
        f"space={bench['space']}",
        f"data={bench['data']}",
        *bench.get("data_overrides", []),
        f"cost.target_mflops={budget}",
        f"seed={seed}",
        f"hydra.run.dir={run_dir}",
        "trainer.enable_progress_bar=false",
        "callbacks.search_plots.every_n_epochs=0",
        *SEARCH_SETTINGS[setting.split("@")[0]],
        *extra,
    ]


def supernet_scores(run_dir: Path, overrides: list[str], archs: list[list[int]], threads: int) -> list[float]:
    """α-split accuracy of every architecture under the trained super-net, scored as the search's
    validation scores its exported architecture (batch statistics, fixed α order)."""
    import torch
    from common import load_search
    from torchmetrics.classification import MulticlassAccuracy

    torch.set_num_threads(threads)  # as many threads as the search had: the pool's other worker is busy
    module, datamodule = load_search(run_dir, [o for o in overrides if not o.startswith("hydra.")])
    space = module.space
    module.eval()
    datamodule.setup()
    batches = list(datamodule.val_dataloader())
    scores = []
    with torch.no_grad():
        for idx in archs:
            acc = MulticlassAccuracy(num_classes=space.num_classes, average="micro")
            for x, y in batches:
                acc.update(module.supernet(x, idx), y)
            scores.append(float(acc.compute()))
    return scores


def run_search_task(task: dict[str, Any]) -> dict[str, Any]:
    """One search.py run (a subprocess, one thread), looked up in the ground truth."""
    import subprocess

    from scipy.stats import kendalltau

    bench, gt = task["bench"], task["gt"]
    run_dir = Path(task["run_dir"])
    overrides = search_overrides(bench, task["setting"], task["budget"], task["seed"], run_dir, task["extra"])
    if run_dir.exists():  # an unfinished run of an earlier invocation: start it again
        shutil.rmtree(run_dir)
    env = {**CLEAN_ENV, "OMP_NUM_THREADS": str(task["threads"]), "MKL_NUM_THREADS": str(task["threads"])}
    proc = subprocess.run([sys.executable, "search.py", *overrides], cwd=ROOT, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-20:])
        raise RuntimeError(f"search failed: python search.py {' '.join(overrides)}\n{tail}")
    summary = json.loads((run_dir / "search_summary.json").read_text())
    from fpnas.space.arch import load_architecture

    arch = load_architecture(run_dir / "arch.yaml")
    row = {
        "setting": task["setting"],
        "data": bench["data"],
        "space": bench["space"],
        "budget_mflops": task["budget"],
        "seed": task["seed"],
        **lookup(gt, arch.space, arch.indices, task["budget"]),
        "samples": summary["total_arch_samples"],
        "wall_time_s": summary["wall_time_s"],
        "fit_time_s": summary["fit_time_s"],
        "argmax_mflops": summary.get("argmax_mflops"),
        "beta_final": summary.get("beta_final"),
        "feasibility_restored_steps": summary.get("feasibility_restored_steps"),
        "supernet_alpha_acc": summary["val_acc"],
        "overrides": task["extra"],
    }
    if task["kendall"]:
        space = arch.space
        archs = [parse_readable(space, r["arch"]) for r in gt]
        scores = supernet_scores(run_dir, overrides, archs, task["threads"])
        truth = [r["test_acc_mean"] for r in gt]
        feasible = [i for i, r in enumerate(gt) if r["mflops"] <= task["budget"]]
        row["kendall_tau"] = float(kendalltau(scores, truth).statistic)
        row["kendall_tau_feasible"] = float(
            kendalltau([scores[i] for i in feasible], [truth[i] for i in feasible]).statistic
        )
    return row


def calibrate_task(task: dict[str, Any]) -> dict[str, Any]:
    """One standalone training (the ground truth's recipe, seed 0), timed beside the searches."""
    from ground_truth import _WORKER, init_worker, train_architecture

    if not _WORKER:
        init_worker(
            task["bench"]["space"],
            task["bench"]["data"],
            [*task["bench"].get("data_overrides", []), *task["bench"]["train_overrides"]],
            task["threads"],
        )
    row = train_architecture((task["arch_id"], task["indices"], [0]))
    return {
        "setting": "calibration",
        "data": task["bench"]["data"],
        "budget_mflops": task["budget"],
        "arch_id": task["arch_id"],
        "train_s": row["train_s"],
    }


def run_task(task: dict[str, Any]) -> dict[str, Any]:
    return calibrate_task(task) if task["kind"] == "calibrate" else run_search_task(task)


def describe_row(row: dict[str, Any]) -> str:
    """One finished run, for the progress lines."""
    what = (
        f"{row['arch_mflops']:.4f} MFLOPs, pct {row['percentile']:.1f}, test {row['test_acc']:.4f}"
        if "percentile" in row
        else f"train {row['train_s']:.1f} s"
    )
    return f"{row['setting']} budget {row['budget_mflops']} seed {row.get('seed')}: {what}"


# ----------------------------------------------------------------------------- ground-truth look-ups
def lookup(gt: list[dict], space, indices, budget: float) -> dict[str, Any]:
    """The found architecture's ground truth: accuracy, percentile and regret among the feasible."""
    from fpnas.search.topk import network_key

    key = network_key(space, indices)
    match = [r for r in gt if network_key(space, parse_readable(space, r["arch"])) == key]
    if not match:
        raise RuntimeError(f"architecture {indices} is not in the ground-truth table")
    r = match[0]
    feasible = [g["test_acc_mean"] for g in gt if g["mflops"] <= budget]
    better = sum(acc > r["test_acc_mean"] for acc in feasible)
    return {
        "arch": r["arch"],
        "arch_id": int(r["arch_id"]),
        "arch_mflops": r["mflops"],
        "over_target": r["mflops"] > budget,
        "test_acc": r["test_acc_mean"],
        "percentile": 100.0 * better / len(feasible),
        "regret": max(feasible) - r["test_acc_mean"],
    }


def baseline_rows(
    bench: dict, gt: list[dict], budget: float, seeds: list[int], rows: list[dict], gt_seeds: list[int]
) -> list[dict]:
    """random_search (equal compute) and random_arch for every seed, from the table alone."""
    from fpnas.space.spec import SearchSpace

    space = SearchSpace.load(bench["space"])
    feasible = [r for r in gt if r["mflops"] <= budget]
    calib = [r["train_s"] for r in rows if r["setting"] == "calibration" and r["budget_mflops"] == budget]
    train_s = statistics.fmean(calib)
    fpnas = {r["seed"]: r["fit_time_s"] for r in rows if r["setting"] == "fpnas" and r["budget_mflops"] == budget}
    out = []
    for setting, pick in zero_compute_picks(space, gt, budget).items():  # deterministic: one row, 0 s
        out.append(
            {
                "setting": setting,
                "data": bench["data"],
                "space": bench["space"],
                "budget_mflops": budget,
                "seed": None,
                **lookup(gt, space, parse_readable(space, pick["arch"]), budget),
                "samples": 0,
                "wall_time_s": 0.0,
                "fit_time_s": 0.0,
            }
        )
    for seed in seeds:
        rng = random.Random(f"{bench['data']}-{budget}-{seed}")
        search_s = fpnas.get(seed, statistics.fmean(fpnas.values()))
        n = max(1, min(len(feasible), round(search_s / train_s)))
        drawn = rng.sample(feasible, n)
        col = f"alpha_acc_s{gt_seeds[seed % len(gt_seeds)]}"  # the drawn architecture's own training
        best = max(drawn, key=lambda r: r[col])
        for setting, pick, count in (("random_search", best, n), ("random_arch", rng.choice(feasible), 1)):
            out.append(
                {
                    "setting": setting,
                    "data": bench["data"],
                    "space": bench["space"],
                    "budget_mflops": budget,
                    "seed": seed,
                    **lookup(gt, space, parse_readable(space, pick["arch"]), budget),
                    "samples": count,
                    "wall_time_s": round(count * train_s, 2),
                    "fit_time_s": round(count * train_s, 2),
                }
            )
    return out


def uniform_scaling(space, r: float) -> list[int]:
    """The architecture that makes the same relative choice ``r`` in [0, 1] in every decision (0 = each
    decision's smallest choice, 1 = its largest), as a width multiplier does on a reference network:
    numeric choices ordered by value, others as the space lists them."""
    indices = []
    for d in space.decisions:
        numeric = all(isinstance(c, (int, float)) and not isinstance(c, bool) for c in d.choices)
        order = sorted(range(d.size), key=lambda i: d.choices[i]) if numeric else list(range(d.size))
        indices.append(order[int(r * (d.size - 1) + 0.5)])
    return indices


def zero_compute_picks(space, gt: list[dict], budget: float) -> dict[str, dict]:
    """The ground-truth rows a user would pick under ``budget`` without searching: the largest MFLOPs
    that fits (ties to more params), the largest params that fits (ties to more MFLOPs), and the largest
    uniformly scaled architecture that fits (:func:`uniform_scaling`, r scanned from 1 down to 0)."""
    from fpnas.search.topk import network_key

    feasible = [r for r in gt if r["mflops"] <= budget]
    by_key = {network_key(space, parse_readable(space, r["arch"])): r for r in gt}
    picks = {
        "max_mflops": max(feasible, key=lambda r: (r["mflops"], r["params_m"], -r["arch_id"])),
        "max_params": max(feasible, key=lambda r: (r["params_m"], r["mflops"], -r["arch_id"])),
    }
    for step in range(1000, -1, -1):
        row = by_key.get(network_key(space, uniform_scaling(space, step / 1000)))
        if row is not None and row["mflops"] <= budget:  # None: not in a partial table
            picks["scaled_uniform"] = row
            break
    return picks


# ----------------------------------------------------------------------------- summaries
def summarize(rows: list[dict], gt: list[dict]) -> list[dict]:
    """Per setting and budget: mean percentile, regret, over-target count, MFLOPs / budget, samples, time."""
    out = []
    keys = sorted(
        {(r["setting"], r["budget_mflops"]) for r in rows if r["setting"] != "calibration"},
        key=lambda k: (
            k[1],
            list(SEARCH_SETTINGS).index(k[0].split("@")[0])
            if k[0].split("@")[0] in SEARCH_SETTINGS
            else 10 + list(BASELINES + ZERO_COMPUTE).index(k[0]),
            k[0],
        ),
    )
    for setting, budget in keys:
        rs = [r for r in rows if r["setting"] == setting and r["budget_mflops"] == budget]
        feasible = [g for g in gt if g["mflops"] <= budget]

        def mean(key, rs=rs):
            vals = [r[key] for r in rs if r.get(key) is not None]
            return statistics.fmean(vals) if vals else None

        def std(key, rs=rs):
            vals = [r[key] for r in rs if r.get(key) is not None]
            return statistics.stdev(vals) if len(vals) > 1 else 0.0

        out.append(
            {
                "setting": setting,
                "budget_mflops": budget,
                "runs": len(rs),
                "percentile": mean("percentile"),
                "percentile_std": std("percentile"),
                "regret": mean("regret"),
                "regret_std": std("regret"),
                "test_acc": mean("test_acc"),
                "best_feasible_acc": max(g["test_acc_mean"] for g in feasible),
                "over_target": sum(bool(r["over_target"]) for r in rs),
                "mflops_over_budget": statistics.fmean(r["arch_mflops"] / budget for r in rs),
                "samples": mean("samples"),
                "wall_time_s": mean("wall_time_s"),
                "fit_time_s": mean("fit_time_s"),
                "kendall_tau": mean("kendall_tau"),
                "kendall_tau_feasible": mean("kendall_tau_feasible"),
                "kendall_tau_mflops_feasible": mflops_tau(feasible),
            }
        )
    return out


def mflops_tau(rows: list[dict]) -> float:
    """Kendall τ between MFLOPs and mean test accuracy over ``rows``: how well size alone ranks them."""
    from scipy.stats import kendalltau

    return float(kendalltau([r["mflops"] for r in rows], [r["test_acc_mean"] for r in rows]).statistic)


def mean_percentiles(ss: list[dict]) -> list[dict]:
    """Per setting, the mean of its per-budget mean percentiles (every budget weighs the same), and over
    how many budgets: the number each method is ranked by."""
    out = []
    for setting in dict.fromkeys(s["setting"] for s in ss):
        pcts = [s["percentile"] for s in ss if s["setting"] == setting]
        out.append({"setting": setting, "budgets": len(pcts), "mean_percentile": statistics.fmean(pcts)})
    return sorted(out, key=lambda r: r["mean_percentile"])


def plot_percentiles(name: str, summary: list[dict], path: Path) -> None:
    """One picture per benchmark (:func:`percentile_figure`) at ``path``."""
    import matplotlib.pyplot as plt

    fig = percentile_figure(name, summary)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def percentile_figure(name: str, summary: list[dict]):
    """The mean percentile (0 = the best architecture under the budget) of each method at each budget;
    the searches' seed spread as error bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    settings = [s for s in dict.fromkeys(r["setting"] for r in summary)]
    fig, ax = plt.subplots(figsize=(7, 4))
    markers = "os^vD<>phx*"
    for i, setting in enumerate(settings):
        rs = sorted((r for r in summary if r["setting"] == setting), key=lambda r: r["budget_mflops"])
        ax.errorbar(
            [r["budget_mflops"] for r in rs],
            [r["percentile"] for r in rs],
            yerr=[r["percentile_std"] for r in rs] if any(r["runs"] > 1 for r in rs) else None,
            marker=markers[i % len(markers)],
            capsize=3,
            lw=2.2 if setting == "fpnas" else 1.0,
            label=setting,
        )
    ax.set_xlabel("budget, MFLOPs (MACs)")
    ax.set_ylabel("percentile among the architectures\nunder the budget (0 = the best)")
    ax.set_title(f"{name}: where each method's pick ranks (ground truth)")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return fig


def write_results(all_rows: dict[str, list[dict]], all_summaries: dict[str, list[dict]], meta: dict) -> None:
    rows = [r for rs in all_rows.values() for r in rs]
    summary = [s | {"data": data} for data, ss in all_summaries.items() for s in ss]
    doc = {
        "benchmark": "search_quality",
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine": machine(),
        **meta,
        "rows": [r for r in rows if r["setting"] != "calibration"],
        "calibration": [r for r in rows if r["setting"] == "calibration"],
        "summary": summary,
    }
    (RESULTS / "search_quality.json").write_text(json.dumps(doc, indent=2) + "\n")
    md = []
    for data, all_ss in all_summaries.items():
        main_ss = [s for s in all_ss if "@" not in s["setting"]]
        variants = [s for s in all_ss if "@" in s["setting"] or s["setting"] == "fpnas"]
        plot_percentiles(data, main_ss, RESULTS / f"search_quality_{data}.png")
        tau = meta.get("kendall_tau_mflops", {}).get(data)
        md += _summary_table(data, main_ss)
        if tau is not None:
            md += [
                f"τ(MFLOPs, ground truth) over every architecture: {tau:.3f} (the super-net's: column 'τ all'); "
                "under each budget: column 'τ MFLOPs under budget' (the super-net's: 'τ under budget')",
                "",
            ]
        md += _mean_table(f"{data}: mean percentile over the budgets", main_ss)
        if any("@" in s["setting"] for s in variants):
            md += _summary_table(f"{data}: variants (<setting>@<variant>, beside the default)", variants)
            md += _mean_table(f"{data}: variants, mean percentile over the budgets", variants)
    (RESULTS / "search_quality.md").write_text("\n".join(md))
    print("\n".join(md))


def _summary_table(title: str, ss: list[dict]) -> list[str]:
    """A Markdown section: one row per setting and budget."""
    return [
        f"### {title}",
        "",
        markdown_table(
            [
                s
                | {
                    "pct": f"{s['percentile']:.1f} ± {s['percentile_std']:.1f}",
                    "reg": f"{s['regret']:.4f} ± {s['regret_std']:.4f}",
                    "over": f"{s['over_target']} of {s['runs']}",
                    "tau": "" if s["kendall_tau"] is None else f"{s['kendall_tau']:.3f}",
                    "tau_f": "" if s.get("kendall_tau_feasible") is None else f"{s['kendall_tau_feasible']:.3f}",
                    "tau_m": ""
                    if s.get("kendall_tau_mflops_feasible") is None
                    else f"{s['kendall_tau_mflops_feasible']:.3f}",
                }
                for s in ss
            ],
            [
                ("budget_mflops", "budget MFLOPs"),
                ("setting", "setting"),
                ("pct", "percentile (0 = best)"),
                ("reg", "regret"),
                ("test_acc", "test acc"),
                ("best_feasible_acc", "best feasible"),
                ("over", "over target"),
                ("mflops_over_budget", "MFLOPs / budget"),
                ("samples", "arch samples"),
                ("fit_time_s", "fit s"),
                ("tau", "τ all"),
                ("tau_f", "τ under budget"),
                ("tau_m", "τ MFLOPs under budget"),
            ],
        ),
        "",
    ]


def _mean_table(title: str, ss: list[dict]) -> list[str]:
    """A Markdown section: each setting's mean percentile over the budgets, best first."""
    rows = [r | {"pct": f"{r['mean_percentile']:.1f}"} for r in mean_percentiles(ss)]
    return [
        f"#### {title}",
        "",
        markdown_table(rows, [("setting", "setting"), ("pct", "mean percentile"), ("budgets", "budgets")]),
        "",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__
    )
    parser.add_argument("benchmarks", nargs="+", choices=list(BENCHMARKS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--budgets", type=float, nargs="+", help="MFLOPs (default: the benchmark's)")
    parser.add_argument("--settings", nargs="+", default=list(SEARCH_SETTINGS), choices=list(SEARCH_SETTINGS))
    parser.add_argument("--variant", help="name these runs <setting>@<variant> and add the overrides after --")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="torch threads per search / training")
    parser.add_argument("--no-kendall", action="store_true", help="skip the super-net scoring of every architecture")
    parser.add_argument("--summary-only", action="store_true", help="rewrite search_quality.json|md from the JSONL")
    argv = sys.argv[1:]
    cut = argv.index("--") if "--" in argv else len(argv)
    args = parser.parse_args(argv[:cut])
    extra = argv[cut + 1 :]
    if extra and not args.variant:
        parser.error("overrides after -- need --variant NAME (their rows are kept apart)")
    from scipy.stats import kendalltau

    all_rows, all_summaries, tau_mflops = {}, {}, {}
    for name in BENCHMARKS:
        if name not in args.benchmarks and not (RESULTS / f"search_quality_{name}.jsonl").is_file():
            continue
        bench = BENCHMARKS[name]
        gt_path = RESULTS / f"ground_truth_{bench['space']}_{bench['data']}.csv"
        gt = read_rows(gt_path)
        gt_meta = json.loads(gt_path.with_suffix(".json").read_text())
        if not gt_meta.get("complete"):
            raise SystemExit(
                f"error: {gt_path} is not complete ({gt_meta.get('rows')} of "
                f"{gt_meta.get('architectures')} rows): finish benchmarks/ground_truth.py {name} first"
            )
        log = RESULTS / f"search_quality_{name}.jsonl"
        rows = [json.loads(line) for line in log.read_text().splitlines()] if log.is_file() else []
        if name in args.benchmarks and not args.summary_only:
            budgets = args.budgets or bench["budgets_mflops"]
            done_runs = {(r["setting"], r["budget_mflops"], r["seed"]) for r in rows if r["setting"] != "calibration"}
            done_calibration = {(r["budget_mflops"], r["arch_id"]) for r in rows if r["setting"] == "calibration"}
            tasks = []
            for budget in budgets:
                feasible = [r for r in gt if r["mflops"] <= budget]
                for r in random.Random(f"calibrate-{budget}").sample(feasible, CALIBRATION_ARCHS):
                    if (budget, r["arch_id"]) not in done_calibration:
                        tasks.append(
                            {
                                "kind": "calibrate",
                                "bench": bench,
                                "budget": budget,
                                "arch_id": r["arch_id"],
                                "indices": None,
                                "arch": r["arch"],
                                "threads": args.threads,
                            }
                        )
            for setting in args.settings:  # setting by setting: FP-NAS's results come first
                name_ = f"{setting}@{args.variant}" if args.variant else setting
                for budget in budgets:
                    for seed in args.seeds:
                        if (name_, budget, seed) in done_runs:
                            continue
                        tasks.append(
                            {
                                "kind": "search",
                                "bench": bench,
                                "gt": gt,
                                "setting": name_,
                                "budget": budget,
                                "seed": seed,
                                "extra": extra,
                                "threads": args.threads,
                                "kendall": setting == "fpnas" and not args.no_kendall,
                                "run_dir": str(WORK / name / f"{name_}_b{budget}_s{seed}"),
                            }
                        )
            from fpnas.space.spec import SearchSpace

            space = SearchSpace.load(bench["space"])
            for t in tasks:
                if t["kind"] == "calibrate":
                    t["indices"] = parse_readable(space, t.pop("arch"))
            print(f"{name}: {len(tasks)} runs to do ({len(rows)} done) with {args.workers} worker(s)", flush=True)
            rows += run_logged(tasks, run_task, log, args.workers, describe_row)
        budgets = sorted({r["budget_mflops"] for r in rows if r["setting"] != "calibration"})
        searched = [r for r in rows if r["setting"] not in BASELINES + ZERO_COMPUTE]
        seeds = sorted({r["seed"] for r in rows if r["setting"] == "fpnas"})
        baselines = [b for budget in budgets for b in baseline_rows(bench, gt, budget, seeds, rows, gt_meta["seeds"])]
        all_rows[name] = searched + baselines
        all_summaries[name] = summarize(searched + baselines, gt)
        tau_mflops[name] = float(kendalltau([r["mflops"] for r in gt], [r["test_acc_mean"] for r in gt]).statistic)
    write_results(
        all_rows,
        all_summaries,
        {
            "protocol": "search.py defaults on the ground-truth space; see benchmarks/search_quality.py",
            "kendall_tau_mflops": tau_mflops,
        },
    )


if __name__ == "__main__":
    main()
