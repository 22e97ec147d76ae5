"""FP-NAS vs PARSEC on the default data: samples, search time, found MFLOPs, accuracy.

Every setting searches the same space on the same data for the same epochs with the same seeds,
through the real entry points (``search.py``, then ``train.py`` on the found architecture):

* ``parsec``: fixed K = 14, joint distribution (PARSEC, the paper's baseline)
* ``adaptive_joint``: K = λ·H, joint distribution
* ``fpnas``: K = λ·H, factorized then joint at epoch θ (FP-NAS)
* ``factorized``: K = λ·H, factorized only
* ``uniform``: uniform sampling, α never learns (every epoch is warm-up); the result is a uniformly
  random architecture under the target (random search with weight sharing)

Targets: FP-NAS samples <= 0.40 x PARSEC, search >= 2x faster, accuracy not lower beyond seed noise.

    python benchmarks/fpnas_vs_parsec.py [--quick] [--seeds 0 1 2] [--epochs 10]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

from common import load_search, markdown_table, run_python, write_report

SETTINGS = {
    "parsec": ["sampler=fixed", "sampler.k=14", "distribution.schedule=joint"],
    "adaptive_joint": ["distribution.schedule=joint"],
    "fpnas": ["distribution.schedule=coarse_to_fine"],
    "factorized": ["distribution.schedule=factorized"],
    "uniform": [],  # + search.warmup_epochs=<epochs>
}


def search_overrides(setting: str, epochs: int, quick: bool) -> list[str]:
    """The shared protocol: epochs, θ and warm-up scaled from the default 20 / 8 / 2."""
    common = [
        f"trainer.max_epochs={epochs}",
        f"distribution.switch_epoch={max(1, round(epochs * 0.4))}",
        f"search.warmup_epochs={epochs if setting == 'uniform' else max(1, round(epochs * 0.1))}",
        "trainer.enable_progress_bar=false",
    ]
    if quick:
        common += ["data=digits", "space=micro", "cost.target_mflops=0.08"]
    return [*common, *SETTINGS[setting]]


def random_architecture_under_target(run_dir: Path, overrides: list[str], seed: int) -> tuple[Path, float]:
    """Uniform baseline's result: a uniformly random architecture under the target; and its α-split
    accuracy on the super-net trained with uniform samples (as the search scores its argmax)."""
    import pytorch_lightning as pl
    import torch

    from fpnas.space.arch import architecture_from_indices

    module, datamodule = load_search(run_dir, overrides)
    space = module.space
    generator = torch.Generator().manual_seed(seed)
    for _ in range(100_000):
        idx = module.sample_architectures(1, generator, uniform=True)
        if float(module.tables.lookup(idx)[0][0]) <= module.target("flops") * 1e6:
            break
    else:
        raise RuntimeError("no uniformly sampled architecture under the target in 100,000 draws")
    module.argmax_architecture = lambda: idx[0]
    trainer = pl.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False)
    acc = trainer.validate(module, datamodule=datamodule, verbose=False)[0]["val/acc"]
    path = run_dir / "arch_uniform.yaml"
    architecture_from_indices(space, idx[0].tolist(), phase="uniform").save(path)
    return path, float(acc)


def run_one(setting: str, seed: int, epochs: int, retrain_epochs: int, quick: bool, work: Path) -> dict:
    run_dir = work / f"{setting}_seed{seed}"
    overrides = search_overrides(setting, epochs, quick)
    run_python(["search.py", f"hydra.run.dir={run_dir}", f"seed={seed}", *overrides])
    summary = json.loads((run_dir / "search_summary.json").read_text())
    arch, alpha_acc = run_dir / "arch.yaml", summary["val_acc"]
    if setting == "uniform":
        arch, alpha_acc = random_architecture_under_target(run_dir, overrides, seed)
    row = {
        "setting": setting,
        "seed": seed,
        "samples": summary["total_arch_samples"],
        "search_s": summary["fit_time_s"],
        "wall_s": summary["wall_time_s"],
        "target_mflops": summary["target_mflops"],
        "mflops": summary["arch_mflops"],
        "alpha_acc": alpha_acc,
        "k_initial": summary["k_initial"],
        "k_final": summary["k_final"],
        "entropy_final": summary["entropy_final"],
    }
    if setting == "uniform":
        from fpnas.space.arch import load_architecture

        row["mflops"] = load_architecture(arch).complexity()[0] / 1e6
    if retrain_epochs:
        train_dir = work / f"{setting}_seed{seed}_train"
        data = ["data=digits"] if quick else []
        run_python(
            [
                "train.py",
                f"arch={arch}",
                f"hydra.run.dir={train_dir}",
                f"seed={seed}",
                f"trainer.max_epochs={retrain_epochs}",
                "trainer.enable_progress_bar=false",
                *data,
            ]
        )
        train = json.loads((train_dir / "train_summary.json").read_text())
        row["test_acc"] = train["test_acc"]
    return row


def aggregate(rows: list[dict]) -> list[dict]:
    def mean_std(values):
        values = [v for v in values if v is not None]
        if not values:
            return None, None
        return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)

    out = []
    for setting in SETTINGS:
        rs = [r for r in rows if r["setting"] == setting]
        if not rs:
            continue
        agg = {"setting": setting, "seeds": len(rs)}
        for key in ("samples", "search_s", "mflops", "alpha_acc", "test_acc"):
            m, s = mean_std(r.get(key) for r in rs)
            agg[key], agg[key + "_std"] = m, s
        agg["target_mflops"] = rs[0]["target_mflops"]
        agg["over_target"] = sum(r["mflops"] > r["target_mflops"] for r in rs)
        out.append(agg)
    return out


def ratios(agg: list[dict]) -> dict:
    by = {a["setting"]: a for a in agg}
    p, f = by.get("parsec"), by.get("fpnas")
    if not (p and f):
        return {}
    res = {
        "samples_fpnas_over_parsec": f["samples"] / p["samples"],
        "samples_target": 0.40,
        "speedup_parsec_over_fpnas": p["search_s"] / f["search_s"],
        "speedup_target": 2.0,
    }
    for key in ("alpha_acc", "test_acc"):
        if f.get(key) is not None and p.get(key) is not None:
            res[f"{key}_fpnas_minus_parsec"] = f[key] - p[key]
            res[f"{key}_seed_std"] = max(f[key + "_std"], p[key + "_std"])
    return res


def pm(mean, std, fmt="{:.3f}"):
    return "" if mean is None else (fmt.format(mean) + (" ± " + fmt.format(std) if std else ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 seed, 2 epochs on the 8x8 digits (smoke test)")
    parser.add_argument("--seeds", type=int, nargs="+", default=None)
    parser.add_argument("--epochs", type=int, default=None, help="search epochs (default 10; quick 2)")
    parser.add_argument("--retrain-epochs", type=int, default=None, help="train.py epochs (default 10; 0 = skip)")
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    args = parser.parse_args()
    seeds = args.seeds or ([0] if args.quick else [0, 1, 2])
    epochs = args.epochs or (2 if args.quick else 10)
    retrain = args.retrain_epochs if args.retrain_epochs is not None else (1 if args.quick else 10)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in seeds:
            for setting in args.settings:
                rows.append(run_one(setting, seed, epochs, retrain, args.quick, Path(tmp)))
                print(json.dumps(rows[-1]), flush=True)
    agg = aggregate(rows)
    table = [
        {
            "setting": a["setting"],
            "seeds": a["seeds"],
            "samples": pm(a["samples"], a["samples_std"], "{:.0f}"),
            "search_s": pm(a["search_s"], a["search_s_std"], "{:.1f}"),
            "mflops": pm(a["mflops"], a["mflops_std"]) + f" / {a['target_mflops']:g}",
            "over": a["over_target"],
            "alpha_acc": pm(a["alpha_acc"], a["alpha_acc_std"]),
            "test_acc": pm(a["test_acc"], a["test_acc_std"]),
        }
        for a in agg
    ]
    md = markdown_table(
        table,
        [
            ("setting", "setting"),
            ("seeds", "seeds"),
            ("samples", "arch samples"),
            ("search_s", "search s"),
            ("mflops", "found MFLOPs / target"),
            ("over", "runs over target"),
            ("alpha_acc", "α-split acc"),
            ("test_acc", f"test acc (retrained {retrain} ep)"),
        ],
    )
    r = ratios(agg)
    if r:
        md += (
            f"\n\nFP-NAS / PARSEC samples: **{r['samples_fpnas_over_parsec']:.3f}** (target <= 0.40); "
            f"PARSEC / FP-NAS search time: **{r['speedup_parsec_over_fpnas']:.2f}x** (target >= 2)"
        )
        for key, name in (("alpha_acc", "α-split acc"), ("test_acc", "test acc")):
            if f"{key}_fpnas_minus_parsec" in r:
                md += (
                    f"; {name} FP-NAS − PARSEC: {r[f'{key}_fpnas_minus_parsec']:+.4f} "
                    f"(seed std {r[f'{key}_seed_std']:.4f})"
                )
        md += "."
    md += (
        f"\n\nProtocol: {'digits/micro' if args.quick else 'mnist5k, space tiny, target 0.6 MFLOPs, β 0.75'}, "
        f"{epochs} search epochs (θ = {max(1, round(epochs * 0.4))}, warm-up {max(1, round(epochs * 0.1))}), "
        f"seeds {seeds}; mean ± std over seeds; search s = Lightning fit time."
    )
    write_report(
        "fpnas_vs_parsec",
        args.quick,
        {"epochs": epochs, "retrain_epochs": retrain, "seeds": seeds, "rows": rows, "aggregate": agg, "ratios": r},
        md,
    )


if __name__ == "__main__":
    main()
