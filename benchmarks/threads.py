"""Thread policy: the default search's and retraining's step time with each ``threads`` setting,
on an idle machine and with a competing busy process.

A laptop running a search is rarely idle. Small-op workloads like the default search suffer most
when intra-op threads have to wait for a core another process holds: every op's parallel region
ends at a barrier. Each setting runs in its own child process (threads are fixed at start-up)
with the search's default config, once alone and once beside ``--busy`` processes that each keep
a core spinning. Step time is the median over the timed steps.

Targets (issue #17): busy / idle step time of the chosen default <= 1.5; the default's idle step
time <= 1.1 x the best setting's.

    python benchmarks/threads.py [--quick] [--settings auto 1 2 2+passive] [--busy 1]

``N+passive`` runs ``threads=N`` with ``OMP_WAIT_POLICY=PASSIVE`` (idle OpenMP threads sleep at once
instead of spinning first).

Writes benchmarks/results/threads.json/.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import CLEAN_ENV, markdown_table, median, run_python, write_report

IDLE_TARGET, BUSY_TARGET = 1.10, 1.5
CASES = {
    "full": {"search": [], "steps": 16, "skip": 4, "train_steps": 30},
    "quick": {
        "search": ["data=digits", "space=micro", "cost.target_mflops=0.08"],
        "steps": 3,
        "skip": 1,
        "train_steps": 5,
    },
}


def child(setting: str, overrides: list[str], steps: int, skip: int, train_steps: int) -> dict:
    """In this process: apply the setting as search.py does, time search steps, then plain training
    steps of the default architecture (what train.py runs after the search)."""
    import torch
    import torch.nn.functional as F
    from common import search_steps, timer

    from fpnas.runtime.threads import apply_thread_policy
    from fpnas.space.builder import build_model

    chosen = apply_thread_policy(setting)
    records, module = search_steps("cpu", [*overrides, f"threads={setting}"], steps, skip, keep_batches=True)
    search_s = [r["seconds"] for r in records]
    model = build_model(module.space, module.argmax_architecture().tolist())
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    x, y = records[0]["train"]
    times: list[float] = []
    for i in range(train_steps + 2):
        with timer("cpu", times if i >= 2 else []):
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(model(x), y).backward()
            opt.step()
    return {
        "setting": setting,
        "chosen": chosen,
        "threads": torch.get_num_threads(),
        "search_step_ms": 1000 * median(search_s),
        "train_step_ms": 1000 * median(times),
        "search_steps": len(search_s),
    }


def spin_processes(n: int) -> list[subprocess.Popen]:
    """``n`` processes that each keep one core busy (a pure-Python loop, like another program would)."""
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"], env=CLEAN_ENV) for _ in range(n)]


def measure(setting: str, case: dict, busy: int) -> dict:
    spinners = spin_processes(busy)
    try:
        time.sleep(0.5 if busy else 0)
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "result.json"
            threads_value, _, passive = setting.partition("+")  # "2+passive": OpenMP threads sleep at once
            run_python(
                [__file__, "--child", threads_value, "--out", str(out), "--case", json.dumps(case)],
                env={"OMP_WAIT_POLICY": "PASSIVE"} if passive else None,
            )
            row = json.loads(out.read_text())
    finally:
        for p in spinners:
            p.kill()
            p.wait()
    return {**row, "setting": setting, "machine_state": f"{busy} busy process(es)" if busy else "idle"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few steps on the 8x8 digits (smoke test)")
    parser.add_argument(
        "--settings",
        nargs="+",
        default=["load", "auto", "1", "2+passive"],
        help="threads= values to compare (N+passive: with OMP_WAIT_POLICY=PASSIVE)",
    )
    parser.add_argument("--busy", type=int, default=1, help="competing busy processes in the busy runs")
    parser.add_argument("--repeats", type=int, default=2, help="child runs per setting and state (median)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--case", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        case = json.loads(args.case)
        result = child(args.child, case["search"], case["steps"], case["skip"], case["train_steps"])
        Path(args.out).write_text(json.dumps(result))
        return
    case = CASES["quick" if args.quick else "full"]
    rows = []
    for repeat in range(1 if args.quick else args.repeats):  # interleaved: slow drifts hit every setting alike
        for busy in (0, args.busy):
            for setting in args.settings:
                rows.append({**measure(setting, case, busy), "repeat": repeat})
    summary = []
    for busy_state in dict.fromkeys(r["machine_state"] for r in rows):
        for setting in args.settings:
            sel = [r for r in rows if r["setting"] == setting and r["machine_state"] == busy_state]
            summary.append(
                {
                    "setting": setting,
                    "machine_state": busy_state,
                    "threads": sel[0]["threads"],
                    "chosen": sel[0]["chosen"],
                    "search_step_ms": median(r["search_step_ms"] for r in sel),
                    "train_step_ms": median(r["train_step_ms"] for r in sel),
                    "runs": len(sel),
                }
            )
    idle = {s["setting"]: s for s in summary if s["machine_state"] == "idle"}
    busy = {s["setting"]: s for s in summary if s["machine_state"] != "idle"}
    for s in summary:
        ref = idle[s["setting"]]
        best_idle_search = min(v["search_step_ms"] for v in idle.values())
        best_idle_train = min(v["train_step_ms"] for v in idle.values())
        s["search_vs_own_idle"] = s["search_step_ms"] / ref["search_step_ms"]
        s["search_vs_best_idle"] = s["search_step_ms"] / best_idle_search
        s["train_vs_best_idle"] = s["train_step_ms"] / best_idle_train
    md = (
        f"CPUs: {os.cpu_count()} (usable {len(os.sched_getaffinity(0))}); busy = {args.busy} spinning process(es); "
        f"search: {'quick' if args.quick else 'default'} config, median of {case['steps']} steps after "
        f"{case['skip']}; train: {case['train_steps']} plain steps of the argmax architecture; "
        f"{1 if args.quick else args.repeats} run(s) per cell.\n\n"
    )
    md += markdown_table(
        summary,
        [
            ("setting", "threads="),
            ("chosen", "resolved to"),
            ("machine_state", "machine"),
            ("search_step_ms", "search step ms"),
            ("search_vs_own_idle", "÷ own idle"),
            ("search_vs_best_idle", "÷ best idle"),
            ("train_step_ms", "train step ms"),
            ("train_vs_best_idle", "train ÷ best idle"),
        ],
    )
    md += (
        f"\n\nTargets: the default's busy / idle search step ≤ {BUSY_TARGET}; its idle step ≤ {IDLE_TARGET} × "
        "the best setting's idle step."
    )
    if "load" in idle and "load" in busy:
        md += (
            f" Measured (threads=load): busy / idle {busy['load']['search_vs_own_idle']:.2f}, idle / best idle "
            f"{idle['load']['search_vs_best_idle']:.2f}."
        )
    write_report("threads", args.quick, {"rows": rows, "summary": summary}, md)


if __name__ == "__main__":
    main()
