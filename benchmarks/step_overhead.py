"""Step overhead: one search step vs the physical limit of the same work done by plain models.

For the same K sampled architectures and the same batches, the time of one search step (the
product's ``SearchModule`` under Lightning, its per-step callbacks included) is divided by the
sum of K standalone training steps (forward, backward, SGD step on the ω batch) plus K validation
forwards (the α batch) of those architectures built as plain timm models. Target: <= 1.10.

    python benchmarks/step_overhead.py [--quick]

Writes benchmarks/results/step_overhead.json/.md. CUDA rows are added when a GPU is present.
"""

from __future__ import annotations

import argparse

from common import (
    FBNET_128,
    add_run_options,
    chosen_cases,
    devices,
    markdown_table,
    median,
    plain_step,
    search_steps,
    timer,
    write_report,
)

TARGET = 1.10
# (label, overrides): the default search, and a larger space where compute dominates
CASES = {
    "full": [
        ("tiny@28 (default)", []),
        (
            "fbnetv2_f@64",
            ["space=fbnetv2_f", "space.input_size=64", "cost.target_mflops=20", "sampler=fixed", "sampler.k=4"],
        ),
    ],
    "quick": [("micro@8", ["data=digits", "space=micro", "cost.target_mflops=0.08"])],
    # gpu_check.sh: fbnetv2_f at 128 px, then the same with cudnn.benchmark (the search changes conv
    # shapes every step: does autotuning each new shape pay off?)
    "cuda": [("fbnetv2_f@128", FBNET_128), ("fbnetv2_f@128, cudnn.benchmark", [*FBNET_128, "+trainer.benchmark=true"])],
}


def plain_model(device: str, module, arch: list[int]):
    """The architecture as a plain timm model with the search's ω optimizer settings."""
    from fpnas.space.builder import build_model

    model = build_model(module.space, arch).to(device)
    return model, module.omega_optimizer(model.parameters())


def batches(device: str, record: dict):
    (xt, yt), (xv, _) = [t.to(device) for t in record["train"]], [t.to(device) for t in record["val"]]
    return xt, yt, xv


def standalone_step_seconds(device: str, module, record: dict, repeats: int) -> float:
    """Sum over the step's K architectures of one plain training step plus one validation forward."""
    total = 0.0
    for arch in record["archs"]:
        model, opt = plain_model(device, module, arch)
        times: list[float] = []
        for i in range(repeats + 1):  # the first round creates the kernels' primitives: not timed
            with timer(device, times if i else []):
                plain_step(model, opt, *batches(device, record))
        total += median(times)
    return total


def op_times(prof, steps: int, device: str) -> dict[str, float]:
    """Self time per step (ms) of every op the profiler saw (device time on CUDA)."""
    attr = "self_device_time_total" if device == "cuda" else "self_cpu_time_total"
    return {e.key: getattr(e, attr) / 1000 / steps for e in prof.key_averages()}


def profile_case(device: str, label: str, overrides: list[str], steps: int, skip: int, top: int = 15) -> dict:
    """Where the search step's extra time goes: per-op self time, search vs the plain steps of the
    same architectures and batches (torch.profiler; plain models warmed before profiling)."""
    from torch.profiler import ProfilerActivity, profile, schedule

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device == "cuda" else [])
    prof = profile(activities=activities, schedule=schedule(wait=max(0, skip - 1), warmup=1, active=steps))
    with prof:
        records, module = search_steps(device, [*overrides, "search.warmup_epochs=0"], steps, skip, on_step=prof.step)
    search = op_times(prof, steps, device)
    prepared = []
    for record in records:
        for arch in record["archs"]:
            model, opt = plain_model(device, module, arch)
            plain_step(model, opt, *batches(device, record))  # warm: kernel creation not profiled
            prepared.append((model, opt, *batches(device, record)))
    with profile(activities=activities) as prof_plain:
        for item in prepared:
            plain_step(*item)
    plain = op_times(prof_plain, steps, device)
    rows = [
        {
            "op": op,
            "search_ms": search.get(op, 0.0),
            "plain_ms": plain.get(op, 0.0),
            "extra_ms": search.get(op, 0.0) - plain.get(op, 0.0),
        }
        for op in set(search) | set(plain)
    ]
    rows.sort(key=lambda r: -r["extra_ms"])

    def conv(times):  # self time of every convolution op, forward and backward
        return sum(v for k, v in times.items() if "conv" in k)

    return {
        "device": device,
        "case": label,
        "steps": steps,
        "search_total_ms": sum(search.values()),
        "plain_total_ms": sum(plain.values()),
        "conv_search_ms": conv(search),
        "conv_plain_ms": conv(plain),
        "top_extra": rows[:top],
    }


def measure(device: str, label: str, overrides: list[str], steps: int, skip: int, repeats: int) -> dict:
    # no warm-up epochs: every timed step also runs the K validation forwards of the α update
    records, module = search_steps(device, [*overrides, "search.warmup_epochs=0"], steps, skip)
    ratios, search_s, plain_s, ks = [], [], [], []
    for rec in records:
        plain = standalone_step_seconds(device, module, rec, repeats)
        ratios.append(rec["seconds"] / plain)
        search_s.append(rec["seconds"])
        plain_s.append(plain)
        ks.append(len(rec["archs"]))
    return {
        "device": device,
        "case": label,
        "steps": len(records),
        "k_median": median(ks),
        "batch": records[0]["batch"],
        "search_step_ms": 1000 * median(search_s),
        "standalone_ms": 1000 * median(plain_s),
        "ratio_median": median(ratios),
        "ratio_of_sums": sum(search_s) / sum(plain_s),
        "target": TARGET,
        "ratios": [round(r, 3) for r in ratios],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_run_options(parser, CASES)
    args = parser.parse_args()
    steps, skip, repeats = (3, 2, 1) if args.quick else (20, 10, 3)
    rows, profiles = [], []
    for device in devices(args.devices):
        for label, overrides in chosen_cases(args, CASES):
            n = steps if args.quick or "fbnetv2" not in label else 6
            first = min(skip, 3) if n < steps else skip
            rows.append(measure(device, label, overrides, n, first, repeats))
            profiles.append(profile_case(device, label, overrides, n, first))
    md = markdown_table(
        rows,
        [
            ("device", "device"),
            ("case", "search (space@px)"),
            ("batch", "batch"),
            ("k_median", "K"),
            ("steps", "steps timed"),
            ("search_step_ms", "search step ms"),
            ("standalone_ms", "K plain steps + K val fwd, ms"),
            ("ratio_median", "ratio (median)"),
            ("ratio_of_sums", "ratio of sums"),
            ("target", "target"),
        ],
    )
    for p in profiles:
        md += (
            f"\n\nWhere the time goes, {p['device']} {p['case']} (torch.profiler, self time per step; "
            f"all ops: search {p['search_total_ms']:.1f} ms, plain {p['plain_total_ms']:.1f} ms; convolutions: "
            f"search {p['conv_search_ms']:.1f} ms, plain {p['conv_plain_ms']:.1f} ms); "
            "the ops with the most extra time in the search:\n\n"
        )
        md += markdown_table(
            p["top_extra"][:10],
            [("op", "op"), ("search_ms", "search ms"), ("plain_ms", "plain ms"), ("extra_ms", "extra ms")],
        )
    write_report("step_overhead", args.quick, {"rows": rows, "profiles": profiles}, md, args.suffix)


if __name__ == "__main__":
    main()
