"""Start-up time: from ``python search.py`` to the first training step, with a cold and a warm data cache.

Launches the real ``search.py`` (default config unless a case says otherwise, ``+trainer.max_steps=1``)
in a subprocess and reads the wall clock at these points:

* launch: the parent, just before starting the process (the interpreter's own start is included);
* callbacks built: ``benchmarks/startup_probe.FirstStepProbe``, passed only by this script as one more
  callback (``+callbacks.startup_probe``; the module alone is put on ``PYTHONPATH``), is constructed by
  ``run_search`` after the config was composed and validated and the super-net built;
* fit called: the timestamp of run_search's own log line ``... | target ...`` (search.log), written
  just before ``trainer.fit``, after the trainer was built and the run directory written;
* data set up / first step start / first step end: the probe's ``setup`` (Lightning calls it right
  after the data module's ``setup``), ``on_train_batch_start`` and ``on_train_batch_end``;
* exit: the parent, when the process has ended (end-of-search checkpoint, plots, summary).

The breakdown runs use ``python -X importtime search.py``: the imports finished before the probe was
built (top-level entries, each with everything it pulled in) are the "imports" share of
"launch -> callbacks built"; the rest of that interval is the interpreter's start, Hydra's config
composition, validation and the model build. One more warm run per repeat without ``-X importtime``
gives the plain number. Cold cache: an empty ``FPNAS_CACHE_DIR`` (the first load parses the bundled
data set and writes the ``.npz``); warm: the same directory again.

    python benchmarks/startup.py [--quick] [--repeats N] [--against OTHER_CHECKOUT [--against-label TEXT]]
    python benchmarks/startup.py --render benchmarks/results/startup.json   # only rewrite the .md

``--against`` adds an A/B table: another checkout's ``search.py`` (e.g. the commit before a change, from
``git worktree add``) and this one's, launched alternately so that both see the same machine load.

Writes benchmarks/results/startup.json/.md.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import CLEAN_ENV, ROOT, markdown_table, median, write_report

TARGET_S = 5.0  # warm cache, launch -> first training step
CASES = {
    "full": [("tiny@28, mnist5k (default config)", [])],
    "quick": [("micro@8, digits", ["data=digits", "space=micro", "cost.target_mflops=0.08"])],
}
# (key, label): the phases, in order; their sum is launch -> first step start
PHASES = [
    ("imports", "imports (-X importtime, before the callbacks)"),
    ("config_model", "interpreter start, Hydra config, validation, model build"),
    ("trainer", "trainer, run directory"),
    ("data", "data load (data module setup)"),
    ("fit_start", "Lightning fit start -> first step"),
]
TOTALS = [
    ("to_first_step", "**launch -> first training step**"),
    ("first_step", "the first step itself"),
    ("after_first_step", "first step end -> exit (checkpoint, plots, summary)"),
    ("total", "launch -> exit"),
]
# modules whose first import is shown on its own (nested: torchvision's time is part of torchmetrics')
NOTABLE = [
    "hydra",
    "torch",
    "pytorch_lightning",
    "torchmetrics.functional",
    "torchvision",
    "torch._dynamo",
    "scipy.signal",
    "matplotlib",
    "timm",
    "mlxtend",
    "sklearn.datasets",
]
MARKER = "startup_probe: callbacks built"  # startup_probe.MARKER (not imported: it imports Lightning)
LOG_LINE = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3})\]\[fpnas\]\[INFO\] - .* \| target ")


def fit_called_time(log: Path) -> float | None:
    """Wall-clock time of run_search's last log line before ``trainer.fit`` (None if absent)."""
    if not log.is_file():
        return None
    for line in log.read_text(errors="replace").splitlines():
        m = LOG_LINE.match(line)
        if m:
            return time.mktime(time.strptime(m.group(1), "%Y-%m-%d %H:%M:%S")) + int(m.group(2)) / 1000
    return None


def import_times(stderr: str) -> dict:
    """From ``-X importtime`` output: seconds of the top-level imports finished before the probe printed
    its marker (the callbacks were built), and the first-import cumulative seconds of the NOTABLE
    modules (over the whole run: mlxtend and sklearn are loaded by the data module).

    (``-X importtime`` sees ``import`` statements; a module loaded by ``importlib.import_module`` from
    outside any import statement is missed, its own ``import`` statements still counted.)"""
    before, notable, built = 0.0, {}, False
    for line in stderr.splitlines():
        built = built or line.strip() == MARKER
        if not line.startswith("import time:") or "[us]" in line:
            continue
        _, cumulative, name = line[len("import time:") :].split("|")
        top, name = not name[1:].startswith(" "), name.strip()
        if top and not built:
            before += int(cumulative) / 1e6
        if name in NOTABLE and name not in notable:
            notable[name] = int(cumulative) / 1e6
    return {"imports": before, "notable_imports": notable}


def launch(overrides: list[str], cache_dir: Path, work: Path, importtime: bool, root: Path = ROOT) -> dict:
    """One ``search.py`` run of checkout ``root`` to its first step and on to its end; the phase times in seconds."""
    run_dir, probe = work / "run", work / "probe.json"
    cmd = [
        sys.executable,
        *(["-X", "importtime"] if importtime else []),
        str(root / "search.py"),
        *overrides,
        "+trainer.max_steps=1",
        f"hydra.run.dir={run_dir}",
        "+callbacks.startup_probe._target_=startup_probe.FirstStepProbe",
        f"+callbacks.startup_probe.path={probe}",
    ]
    # the probe alone on the path (a copy of this checkout's, whichever checkout runs); fpnas comes from root
    probe_dir = work / "probe_module"
    probe_dir.mkdir(parents=True)
    shutil.copy(Path(__file__).with_name("startup_probe.py"), probe_dir)
    env = {**CLEAN_ENV, "FPNAS_CACHE_DIR": str(cache_dir), "PYTHONPATH": str(probe_dir)}
    t0 = time.time()
    proc = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=900)
    t_exit = time.time()
    if proc.returncode != 0 or not probe.is_file():
        tail = "\n".join(
            line for line in (proc.stdout + proc.stderr).strip().splitlines() if not line.startswith("import time:")
        )
        raise RuntimeError(f"search.py failed ({proc.returncode}): {' '.join(cmd)}\n{tail[-3000:]}")
    t = json.loads(probe.read_text())
    if Path(t["fpnas"]).resolve().parents[1] != root.resolve():
        raise RuntimeError(f"the run of {root} imported fpnas from {t['fpnas']}")
    fit = fit_called_time(run_dir / "search.log")
    row = {
        "importtime": importtime,
        "callbacks_built": t["callbacks_built"] - t0,
        "trainer": (fit - t["callbacks_built"]) if fit else None,
        "data": t["data_setup_done"] - (fit or t["callbacks_built"]),
        "fit_start": t["first_step_start"] - t["data_setup_done"],
        "to_first_step": t["first_step_start"] - t0,
        "first_step": t["first_step_end"] - t["first_step_start"],
        "after_first_step": t_exit - t["first_step_end"],
        "total": t_exit - t0,
        "cache_files": sorted(p.name for p in cache_dir.glob("*.npz")),
        "cache_mib": sum(p.stat().st_size for p in cache_dir.glob("*.npz")) / 2**20,
    }
    if importtime:
        row.update(import_times(proc.stderr))
        row["config_model"] = row["callbacks_built"] - row["imports"]
    return row


def summarize(rows: list[dict], keys: list[str]) -> dict:
    """Medians of ``keys`` over ``rows`` (None where no row has a value), and of the notable imports."""
    out = {}
    for k in keys:
        values = [r[k] for r in rows if r.get(k) is not None]
        out[k] = median(values) if values else None
    notable = [r.get("notable_imports", {}) for r in rows]
    out["notable_imports"] = {
        m: median(n[m] for n in notable if m in n) for m in NOTABLE if any(m in n for n in notable)
    }
    return out


def show(row: dict) -> None:
    print(
        {k: (round(v, 3) if isinstance(v, float) else v) for k, v in row.items() if k != "notable_imports"}, flush=True
    )


def render(report: dict) -> str:
    """The Markdown report of a ``startup.json`` (tables first, then what was measured and how)."""
    summary, repeats = report["summary"], report["repeats"]
    n = f"n={repeats}"
    columns = [("phase", "phase (s, median)"), ("cold", f"cold cache ({n})"), ("warm", f"warm cache ({n})")]
    if "warm_plain" in summary:
        columns.append(("warm_plain", f"warm, no -X importtime ({n})"))
    table = [{"phase": text, **{kind: summary[kind][key] for kind in summary}} for key, text in PHASES + TOTALS]
    md = markdown_table(table, columns)
    md += f"\n\nCase: {report['case']}, `+trainer.max_steps=1`, CPU."
    imports = summary["warm"]["notable_imports"]
    md += (
        " First import of (median of the runs with a warm cache, seconds including what each pulled in; "
        "nested, so they overlap): " + ", ".join(f"{m} {v:.2f}" for m, v in imports.items()) + "."
    )
    headline = summary.get("warm_plain", summary["warm"])["to_first_step"]
    md += (
        f"\n\nTarget: <= {TARGET_S:g} s from launch to the first training step with a warm cache: "
        f"{'met' if headline <= TARGET_S else 'not met'} ({headline:.2f} s). Cache file(s): "
        f"{', '.join(report['rows'][-1]['cache_files']) or 'none'} ({summary['warm']['cache_mib']:.1f} MiB)."
    )
    ab = report.get("ab_summary")
    if ab:
        rows = [
            {
                "phase": text,
                "this": ab["this"][k],
                "against": ab["against"][k],
                "diff": ab["this"][k] - ab["against"][k],
            }
            for k, text in [
                ("callbacks_built", "launch -> callbacks built (imports, config, model)"),
                ("data", "data load"),
                ("to_first_step", "**launch -> first training step**"),
                ("first_step", "the first step itself"),
                ("total", "launch -> exit"),
            ]
        ]
        md += (
            f"\n\nThis checkout against {report.get('against_label') or report['against']} (runs alternating, "
            f"warm cache, no -X importtime; medians of n={repeats} each):\n\n"
            + markdown_table(
                rows,
                [
                    ("phase", "phase (s, median)"),
                    ("this", "this checkout"),
                    ("against", "against"),
                    ("diff", "this - against"),
                ],
            )
        )
    md += (
        "\n\nHow it is measured: the real `search.py` in a subprocess, with one extra callback passed only by "
        "this script (`benchmarks/startup_probe.py`, via `+callbacks.startup_probe`) that notes the wall clock "
        "when the callbacks are built, after the data module's setup and at the first `on_train_batch_start`; "
        "'trainer, run directory' ends at the timestamp of run_search's own log line before `trainer.fit`. "
        "Imports: `-X importtime`'s top-level entries before the probe was built. Cold: an empty "
        "`FPNAS_CACHE_DIR`; warm: the same directory on the next run."
    )
    return md


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one cold and one warm run on the 8x8 digits")
    parser.add_argument("--repeats", type=int, help="runs of each kind (default 3, 1 with --quick)")
    parser.add_argument(
        "--against",
        type=Path,
        help="another checkout (e.g. `git worktree add /tmp/base HEAD`): "
        "its search.py and this one's, alternately, warm cache, without -X importtime",
    )
    parser.add_argument("--against-label", help="what the other checkout is, for the report (default: its path)")
    parser.add_argument("--render", type=Path, help="only rewrite the Markdown of this JSON report (no runs)")
    args = parser.parse_args()
    if args.render:
        report = json.loads(args.render.read_text())
        if args.against_label:
            report["against_label"] = args.against_label
            args.render.write_text(json.dumps(report, indent=2, default=float) + "\n")
        md = render(report)
        args.render.with_suffix(".md").write_text(md + "\n")
        print(md)
        return
    repeats = args.repeats or (1 if args.quick else 3)
    label, overrides = CASES["quick" if args.quick else "full"][0]
    runs = [("cold", True), ("warm", True)] + ([] if args.quick else [("warm_plain", False)])
    sides = {"this": ROOT, "against": args.against.resolve()} if args.against else {}
    rows: list[dict] = []
    ab: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="fpnas-startup-") as tmp:
        tmp = Path(tmp)
        if not args.quick:  # untimed: the environment's files into the OS page cache
            launch(overrides, tmp / "cache-warmup", tmp / "warmup", importtime=False)
        for i in range(repeats):
            for kind, importtime in runs:
                rows.append(
                    {**launch(overrides, tmp / f"cache{i}", tmp / f"{kind}{i}", importtime), "cache": kind, "repeat": i}
                )
                show(rows[-1])
        for side, root in sides.items():  # untimed: each side's cache (if it has one) filled
            launch(overrides, tmp / f"cache-{side}", tmp / f"fill-{side}", importtime=False, root=root)
        for i in range(repeats):
            for side, root in sides.items():
                ab.append(
                    {
                        **launch(overrides, tmp / f"cache-{side}", tmp / f"{side}{i}", importtime=False, root=root),
                        "side": side,
                        "repeat": i,
                    }
                )
                show(ab[-1])
    keys = [k for k, _ in PHASES + TOTALS] + ["cache_mib"]
    ab_keys = ["callbacks_built", "data", "to_first_step", "first_step", "total"]
    report = {
        "case": label,
        "overrides": overrides,
        "repeats": repeats,
        "target_s": TARGET_S,
        "summary": {kind: summarize([r for r in rows if r["cache"] == kind], keys) for kind, _ in runs},
        "rows": rows,
        "against": str(args.against) if args.against else None,
        "against_label": args.against_label,
        "ab_summary": {side: summarize([r for r in ab if r["side"] == side], ab_keys) for side in sides} or None,
        "ab_rows": ab,
    }
    write_report("startup", args.quick, report, render(report))


if __name__ == "__main__":
    main()
