"""Ground truth for search quality: every architecture of a benchmark space trained standalone.

Each distinct architecture of the space is built with the project's builder and trained with
``train.py``'s recipe (``fpnas.train.run.build_train_module``) for every seed, on the ω split only,
then scored on the held-out test split and on the α split (a validation split, since it was not
trained on). One CSV row per architecture:
``benchmarks/results/ground_truth_<space>_<data>.csv``, with a JSON beside it holding the settings
the rows were made with and, per FLOPs budget, the spread of mean test accuracy among the
architectures under it against the seed noise (``ground_truth_<space>_<data>.json|md``).

Runs in pieces: rows are appended as they finish, a restart skips what is done (and refuses a CSV
made with other settings), ``--workers`` trains that many architectures at once (one thread each).

    python benchmarks/ground_truth.py mnist5k --workers 2          # a shipped benchmark (BENCHMARKS)
    python benchmarks/ground_truth.py --space my_space --data digits --budgets 0.05 0.1 \\
        --seeds 0 1 2 -- train_experiment=ground_truth trainer.max_epochs=10   # any space/data/recipe
    python benchmarks/ground_truth.py mnist5k --report-only         # the spread report from the CSV
    python benchmarks/ground_truth.py shifted --ids 3 17 42 --seeds 0 1 --out /tmp/pilot.csv \
        -- train_experiment=ground_truth trainer.max_epochs=12     # a recipe tried on a few architectures
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import itertools
import json
import math
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from common import RESULTS, ROOT, machine, markdown_table

# The shipped benchmarks: space, data, recipe (train.py overrides), seeds and the FLOPs budgets
# (MFLOPs) that benchmarks/search_quality.py searches under.
BENCHMARKS: dict[str, dict[str, Any]] = {
    "mnist5k": {
        "space": "bench_mnist",
        "data": "mnist5k",
        "train_overrides": ["train_experiment=ground_truth"],
        "seeds": [0, 1, 2],
        # 6 budgets at the 30th, 42nd, 54th, 66th, 78th and 90th percentile of the space's MFLOPs (v1: 0.12,
        # 0.17, 0.24, whose rows stay in search_quality_mnist5k_v1.jsonl)
        "budgets_mflops": [0.104, 0.117, 0.13, 0.152, 0.196, 0.266],
    },
    "digits": {
        "space": "bench_digits",
        "data": "digits",
        "train_overrides": ["train_experiment=ground_truth"],
        "seeds": [0, 1, 2],
        "budgets_mflops": [0.045, 0.06, 0.08],
    },  # 48%, 72%, 83% of the archs (mnist5k's: 45%, 72%, 84%)
    # size alone does not decide, but its seeds disagree near the top (seed τ 0.66-0.71)
    "shifted": {
        "space": "bench_shifted",
        "data": "mnist5k_shifted",
        "train_overrides": ["train_experiment=ground_truth", "trainer.max_epochs=6"],
        "seeds": [0, 1, 2],
        "budgets_mflops": [0.23, 0.29, 0.36, 0.45, 0.68],  # the 30th, 45th, 60th, 75th, 90th MFLOPs percentile
    },
    # the decisive one: the shifted digits on a space whose choices move accuracy by more than a training's
    # noise (seed τ >= 0.7 at every budget), and size alone does not decide
    "rf": {
        "space": "bench_rf",
        "data": "mnist5k_shifted",
        "train_overrides": ["train_experiment=ground_truth", "trainer.max_epochs=6"],
        "seeds": [0, 1, 2],
        "budgets_mflops": [0.18, 0.25, 0.31, 0.42, 0.6],  # the 30th, 45th, 60th, 75th, 90th MFLOPs percentile
    },
}
MAX_ARCHITECTURES = 5000  # every one is trained: a larger space is a mistake here
SEED_TAU_MIN, RATIO_MIN = 0.7, 5.0  # below either at a budget, the benchmark cannot rank methods there


# ----------------------------------------------------------------------------- the space
def compose_train(space: str, data: str, overrides: Sequence[str], output_dir: str):
    """train.py's config for ``space``/``data`` with ``overrides`` (Hydra compose, no run directory)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose(config_name="train", overrides=[f"data={data}", f"paths.output_dir={output_dir}", *overrides])


def load_space(name: str, datamodule):
    """The benchmark space with the data's classes and input channels."""
    from fpnas.space.spec import SearchSpace

    return SearchSpace.load(name).with_num_classes(datamodule.num_classes, datamodule.in_chans)


def distinct_architectures(space) -> list[list[int]]:
    """One choice-index list per distinct network (a skipped block's other choices do not count)."""
    from fpnas.search.topk import network_key

    if space.log10_num_architectures > math.log10(MAX_ARCHITECTURES):
        raise SystemExit(
            f"error: space '{space.name}' has 10^{space.log10_num_architectures:.1f} architectures; "
            f"the ground truth trains every one: use a space of at most {MAX_ARCHITECTURES}"
        )
    seen: dict[tuple, list[int]] = {}
    for idx in itertools.product(*[range(s) for s in space.sizes]):
        seen.setdefault(network_key(space, idx), list(idx))
    return list(seen.values())


def readable(space, indices: Sequence[int]) -> str:
    """``g1.channels=4 g2.b0.kernel=5 ...``: the architecture's choices, readable and parseable."""
    return " ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in space.choices_of(indices).items())


def parse_readable(space, text: str) -> list[int]:
    """Inverse of :func:`readable`."""
    choices = {}
    for item in text.split():
        key, value = item.split("=", 1)
        decision = space.decisions[space.decision_index[key]]
        choices[key] = type(decision.choices[0])(value) if not isinstance(decision.choices[0], str) else value
    return space.indices_of(choices)


# ----------------------------------------------------------------------------- workers
_WORKER: dict[str, Any] = {}


def init_worker(space_name: str, data: str, overrides: list[str], threads: int) -> None:
    """Per worker process: one thread, quiet Lightning, the config and the data loaded once."""
    import logging
    import warnings

    import torch
    from omegaconf import open_dict

    from fpnas.runtime.config import instantiate_checked
    from fpnas.train.run import check_config, train_splits

    torch.set_num_threads(threads)
    warnings.filterwarnings("ignore")
    import pytorch_lightning  # noqa: F401 - its loggers exist once imported

    for name in list(logging.root.manager.loggerDict):
        if name.startswith(("pytorch_lightning", "lightning")):
            logging.getLogger(name).setLevel(logging.ERROR)
    out = tempfile.mkdtemp(prefix="fpnas_gt_")
    cfg = compose_train(space_name, data, overrides, out)
    check_config(cfg)
    from fpnas.space.spec import SearchSpace

    with open_dict(cfg):
        cfg.data.image_size = SearchSpace.load(space_name).input_size  # as train.py does for an arch.yaml
    datamodule = instantiate_checked(cfg.data, "data")
    datamodule.train_splits = train_splits(cfg)
    datamodule.setup()
    _WORKER.update(cfg=cfg, datamodule=datamodule, space=load_space(space_name, datamodule))


def train_architecture(task: tuple[int, list[int], list[int]]) -> dict[str, Any]:
    """Train one architecture for every seed; its CSV row."""
    import pytorch_lightning as pl

    from fpnas.runtime.trainer import instantiate_trainer
    from fpnas.space.arch import architecture_from_indices
    from fpnas.train.run import build_train_module, evaluate

    arch_id, indices, seeds = task
    cfg, datamodule, space = _WORKER["cfg"], _WORKER["datamodule"], _WORKER["space"]
    arch = architecture_from_indices(space, indices)
    macs, params = arch.complexity()
    row: dict[str, Any] = {
        "arch_id": arch_id,
        "arch": readable(space, indices),
        "mflops": round(macs / 1e6, 6),
        "params_m": round(params / 1e6, 6),
    }
    times = []
    for seed in seeds:
        pl.seed_everything(seed, workers=True, verbose=False)
        module = build_train_module(cfg, arch, datamodule)
        trainer = instantiate_trainer(
            cfg.trainer,
            logger=False,
            callbacks=[],
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
        )
        start = time.perf_counter()
        trainer.fit(module, datamodule=datamodule)
        times.append(time.perf_counter() - start)
        metrics = evaluate(trainer, module, datamodule)
        # the recipe's model: its EMA weights when it keeps an EMA (evaluate falls back to the raw ones)
        row[f"test_acc_s{seed}"] = round(metrics["test_acc_ema"], 6)
        row[f"alpha_acc_s{seed}"] = round(metrics["alpha_acc_ema"], 6)
    tests = [row[f"test_acc_s{s}"] for s in seeds]
    alphas = [row[f"alpha_acc_s{s}"] for s in seeds]
    row.update(
        test_acc_mean=round(statistics.fmean(tests), 6),
        test_acc_std=round(statistics.stdev(tests), 6) if len(tests) > 1 else 0.0,
        alpha_acc_mean=round(statistics.fmean(alphas), 6),
        train_s=round(statistics.fmean(times), 3),
    )
    return row


# ----------------------------------------------------------------------------- the table
def columns(seeds: Sequence[int]) -> list[str]:
    return (
        ["arch_id", "arch", "mflops", "params_m", "test_acc_mean", "test_acc_std", "alpha_acc_mean"]
        + [f"test_acc_s{s}" for s in seeds]
        + [f"alpha_acc_s{s}" for s in seeds]
        + ["train_s"]
    )


def read_rows(path: Path) -> list[dict[str, Any]]:
    """The CSV's rows with numbers parsed, sorted by ``arch_id``."""
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        rows = [{k: (v if k == "arch" else float(v)) for k, v in r.items()} for r in csv.DictReader(f)]
    for r in rows:
        r["arch_id"] = int(r["arch_id"])
    return sorted(rows, key=lambda r: r["arch_id"])


def settings(space, data: str, overrides: Sequence[str], seeds: Sequence[int], cfg) -> dict[str, Any]:
    """What the rows depend on; a restart must match it."""
    from omegaconf import OmegaConf

    recipe = {
        "recipe": OmegaConf.to_container(cfg.recipe, resolve=True),
        "max_epochs": cfg.trainer.max_epochs,
        "train_on": list(cfg.train_on),
        "data": {k: v for k, v in OmegaConf.to_container(cfg.data, resolve=False).items() if k != "image_size"},
    }
    key = json.dumps(
        {"space": space.spec, "data": data, "recipe": recipe, "seeds": list(seeds)}, sort_keys=True, default=str
    )
    return {
        "space": space.name,
        "data": data,
        "train_overrides": list(overrides),
        "seeds": list(seeds),
        "metric": "accuracy of the recipe's model (EMA weights when recipe.ema_decay > 0), trained on ω only",
        "recipe": recipe,
        "settings_hash": hashlib.sha256(key.encode()).hexdigest()[:16],
    }


def percentile(values: list[float], q: float) -> float:
    """Linear-interpolation percentile (numpy's default) of ``values``, ``q`` in [0, 100]."""
    values = sorted(values)
    pos = (len(values) - 1) * q / 100
    lo, hi = math.floor(pos), math.ceil(pos)
    return values[lo] + (values[hi] - values[lo]) * (pos - lo)


def spearman(x: list[float], y: list[float]) -> float:
    def ranks(v):
        order = sorted(range(len(v)), key=v.__getitem__)
        r = [0.0] * len(v)
        i = 0
        while i < len(v):
            j = i
            while j + 1 < len(v) and v[order[j + 1]] == v[order[i]]:
                j += 1
            for k in range(i, j + 1):
                r[order[k]] = (i + j) / 2
            i = j + 1
        return r

    rx, ry = ranks(x), ranks(y)
    return statistics.correlation(rx, ry) if len(x) > 2 else float("nan")


def seed_tau(rows: list[dict[str, Any]]) -> float | None:
    """Kendall τ between two independent trainings of the same architectures: the mean over every pair of
    seeds of τ(test accuracy with seed a, with seed b). How well one training ranks architectures; a
    benchmark whose τ is low cannot rank methods either (its seeds disagree more than methods do)."""
    from scipy.stats import kendalltau

    seeds = [int(k[10:]) for k in rows[0] if k.startswith("test_acc_s") and k[10:].isdigit()] if rows else []
    if len(seeds) < 2 or len(rows) < 3:
        return None
    taus = [
        kendalltau([r[f"test_acc_s{a}"] for r in rows], [r[f"test_acc_s{b}"] for r in rows]).statistic
        for a, b in itertools.combinations(seeds, 2)
    ]
    return float(statistics.fmean(taus))


def budget_report(rows: list[dict[str, Any]], budgets: Sequence[float]) -> list[dict[str, Any]]:
    """Per budget: how many architectures fit, P90 - P10 of their mean test accuracy, their mean seed
    std, the ratio (target >= 5), the seed-to-seed Kendall τ (target >= 0.7), the rank correlation of
    accuracy with MFLOPs, and where the largest network that fits ranks (its percentile: the share of
    the architectures under the budget that are better, 0 = the best); and the seed τ among the better half
    of them alone (the contenders, where percentiles of a few points are decided)."""
    out = []
    for budget in budgets:
        feasible = [r for r in rows if r["mflops"] <= budget]
        if len(feasible) < 2:
            out.append({"budget_mflops": budget, "feasible": len(feasible)})
            continue
        accs = [r["test_acc_mean"] for r in feasible]
        spread = percentile(accs, 90) - percentile(accs, 10)
        noise = statistics.fmean(r["test_acc_std"] for r in feasible)
        largest = max(feasible, key=lambda r: (r["mflops"], r.get("params_m", 0.0), -r["arch_id"]))
        out.append(
            {
                "budget_mflops": budget,
                "feasible": len(feasible),
                "feasible_pct": 100 * len(feasible) / len(rows),
                "best_acc": max(accs),
                "p90_minus_p10": spread,
                "mean_seed_std": noise,
                "ratio": spread / noise if noise > 0 else float("inf"),
                "seed_tau": seed_tau(feasible),
                # the contenders alone: near the top, where a search's pick lands, the seeds agree less
                "seed_tau_top_half": seed_tau(
                    sorted(feasible, key=lambda r: -r["test_acc_mean"])[: -(-len(feasible) // 2)]
                ),
                "spearman_acc_mflops": spearman([r["mflops"] for r in feasible], accs),
                "max_mflops_percentile": 100 * sum(a > largest["test_acc_mean"] for a in accs) / len(accs),
            }
        )
    return out


def can_rank_methods(report: list[dict[str, Any]]) -> bool:
    """Whether a benchmark can tell methods apart at every budget it uses: seed τ >= 0.7 and ratio >= 5."""
    return bool(report) and all(
        (b.get("seed_tau") or 0) >= SEED_TAU_MIN and b.get("ratio", 0) >= RATIO_MIN for b in report
    )


def write_report(
    out: Path, meta: dict[str, Any], rows: list[dict[str, Any]], total: int, budgets: Sequence[float]
) -> None:
    report = budget_report(rows, budgets) if len(rows) == total else []
    accs = [r["test_acc_mean"] for r in rows]
    doc = {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine": machine(),
        **meta,
        "architectures": total,
        "rows": len(rows),
        "complete": len(rows) == total,
        "mflops_range": [min(r["mflops"] for r in rows), max(r["mflops"] for r in rows)] if rows else None,
        "test_acc_range": [min(accs), max(accs)] if rows else None,
        "mean_train_s": statistics.fmean(r["train_s"] for r in rows) if rows else None,
        "spearman_acc_mflops": spearman([r["mflops"] for r in rows], accs) if len(rows) > 2 else None,
        "seed_tau": seed_tau(rows),
        "budgets": report,
        "can_rank_methods": can_rank_methods(report),
    }
    out.with_suffix(".json").write_text(json.dumps(doc, indent=2) + "\n")
    md = [
        f"# Ground truth: space `{meta['space']}` on `{meta['data']}`",
        "",
        f"{len(rows)} of {total} architectures, seeds {meta['seeds']}, train.py overrides "
        f"`{' '.join(meta['train_overrides'])}`; metric: {meta['metric']}.",
    ]
    if rows:
        md += [
            "",
            f"MFLOPs {doc['mflops_range'][0]:.4g}-{doc['mflops_range'][1]:.4g}, mean test accuracy "
            f"{doc['test_acc_range'][0]:.4f}-{doc['test_acc_range'][1]:.4f}, Spearman(acc, MFLOPs) "
            f"{doc['spearman_acc_mflops'] or float('nan'):.3f}, seed-to-seed Kendall τ "
            f"{doc['seed_tau'] if doc['seed_tau'] is not None else float('nan'):.3f}, "
            f"{doc['mean_train_s']:.1f} s per training "
            f"({meta['threads']} thread(s) per worker, {meta['workers']} worker(s)).",
        ]
    if report:
        md += [
            "",
            markdown_table(
                report,
                [
                    ("budget_mflops", "budget MFLOPs"),
                    ("feasible", "archs under it"),
                    ("best_acc", "best mean test acc"),
                    ("p90_minus_p10", "P90 - P10"),
                    ("mean_seed_std", "mean seed std"),
                    ("ratio", "ratio (target >= 5)"),
                    ("seed_tau", "seed τ (target >= 0.7)"),
                    ("seed_tau_top_half", "seed τ, better half"),
                    ("spearman_acc_mflops", "Spearman acc~MFLOPs"),
                    ("max_mflops_percentile", "largest that fits: percentile"),
                ],
            ),
            "",
            "Can rank methods (seed τ >= 0.7 and ratio >= 5 at every budget): "
            + ("**yes**" if doc["can_rank_methods"] else "**no**: its seeds disagree more than methods do"),
        ]
    out.with_suffix(".md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__
    )
    parser.add_argument("benchmark", nargs="?", choices=list(BENCHMARKS), help="a shipped benchmark")
    parser.add_argument("--space", help="space name or file (instead of a shipped benchmark)")
    parser.add_argument("--data", help="data config name (conf/data)")
    parser.add_argument("--seeds", type=int, nargs="+")
    parser.add_argument("--budgets", type=float, nargs="+", help="MFLOPs budgets of the spread report")
    parser.add_argument("--workers", type=int, default=1, help="architectures trained at once")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per worker")
    parser.add_argument("--limit", type=int, help="stop after this many rows in all (a piece of the table)")
    parser.add_argument(
        "--ids", type=int, nargs="+", help="train only these architecture ids (a pilot of a recipe on a subset)"
    )
    parser.add_argument(
        "--out", type=Path, help="CSV path (default benchmarks/results/ground_truth_<space>_<data>.csv)"
    )
    parser.add_argument("--report-only", action="store_true", help="rewrite the JSON/Markdown report from the CSV")
    argv = sys.argv[1:]
    cut = argv.index("--") if "--" in argv else len(argv)
    args = parser.parse_args(argv[:cut])
    args.overrides = argv[cut + 1 :]  # train.py overrides, e.g. trainer.max_epochs=10
    bench = dict(BENCHMARKS.get(args.benchmark) or {})
    space_name, data = args.space or bench.get("space"), args.data or bench.get("data")
    if not space_name or not data:
        parser.error("give a shipped benchmark or both --space and --data")
    overrides = args.overrides or [*bench.get("data_overrides", []), *bench.get("train_overrides", [])]
    seeds = args.seeds or bench.get("seeds", [0, 1, 2])
    budgets = args.budgets or bench.get("budgets_mflops", [])
    out = args.out or RESULTS / f"ground_truth_{Path(space_name).stem}_{data}.csv"

    init_worker(space_name, data, list(overrides), args.threads)  # also checks the config in this process
    space, cfg = _WORKER["space"], _WORKER["cfg"]
    meta = {**settings(space, data, overrides, seeds, cfg), "workers": args.workers, "threads": args.threads}
    archs = distinct_architectures(space)
    rows = read_rows(out)
    meta_path = out.with_suffix(".json")
    if rows and meta_path.is_file():
        old = json.loads(meta_path.read_text())
        if old.get("settings_hash") != meta["settings_hash"]:
            raise SystemExit(
                f"error: {out} was made with other settings ({old.get('train_overrides')}, seeds "
                f"{old.get('seeds')}); give another --out or delete it to start over"
            )
    if args.report_only:  # how and where the rows were made stays as the last training run wrote it
        if meta_path.is_file():
            old = json.loads(meta_path.read_text())
            keep = ("train_overrides", "workers", "threads", "date", "machine")
            meta |= {k: old[k] for k in keep if k in old}
        write_report(out, meta, rows, len(archs), budgets)
        return
    done = {r["arch_id"] for r in rows}
    wanted = set(range(len(archs))) if args.ids is None else set(args.ids)
    if not wanted <= set(range(len(archs))):
        parser.error(f"--ids: the space has architecture ids 0-{len(archs) - 1}")
    todo = [(i, idx, list(seeds)) for i, idx in enumerate(archs) if i not in done and i in wanted]
    if args.limit is not None:
        todo = todo[: max(0, args.limit - len(done))]
    print(
        f"{space.describe()}; {len(archs)} distinct architectures, {len(done)} done, {len(todo)} to train "
        f"x {len(seeds)} seeds with {args.workers} worker(s) -> {out}",
        flush=True,
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    write_report(out, meta, rows, len(archs), budgets)  # the settings, before the first row
    new_file = not out.is_file() or out.stat().st_size == 0
    start = time.time()
    with open(out, "a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns(seeds))
        if new_file:
            writer.writeheader()
        if args.workers > 1:
            import multiprocessing as mp

            pool = mp.get_context("spawn").Pool(
                args.workers, init_worker, (space_name, data, list(overrides), args.threads)
            )
            results = pool.imap_unordered(train_architecture, todo)
        else:
            pool, results = None, map(train_architecture, todo)
        try:
            for n, row in enumerate(results, 1):
                writer.writerow(row)
                f.flush()
                os.fsync(f.fileno())
                rows.append(row)
                eta = (time.time() - start) / n * (len(todo) - n)
                print(
                    f"[{len(rows)}/{len(archs)}] {row['mflops']:.4f} MFLOPs  test {row['test_acc_mean']:.4f} "
                    f"± {row['test_acc_std']:.4f}  α {row['alpha_acc_mean']:.4f}  {row['train_s']:.1f} s/training  "
                    f"ETA {eta / 60:.1f} min  ({row['arch']})",
                    flush=True,
                )
        finally:
            if pool is not None:
                pool.terminate()
    write_report(out, meta, read_rows(out), len(archs), budgets)


if __name__ == "__main__":
    sys.exit(main())
