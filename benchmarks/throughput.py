"""Throughput: images/s of the search vs plain training of its most likely architecture.

The search runs the default configuration for a few epochs (the product's step, per-step
callbacks included; warm-up epochs as configured); "images/s" counts ω-batch images per second
(each image goes through K sampled architectures), "arch-images/s" multiplies by K. The plain
model is the search's final argmax architecture trained alone (forward, backward, SGD step).
Variants: ``channels_last`` memory format for both, and ``torch.compile`` for the plain model
(not for the super-net: its graph changes with every sampled architecture, so it would
recompile per architecture).

    python benchmarks/throughput.py [--quick]
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F
from common import (
    FBNET_128,
    add_run_options,
    chosen_cases,
    devices,
    markdown_table,
    median,
    search_steps,
    timer,
    write_report,
)

CASES = {
    "full": ("tiny@28 (default)", [], 4),
    "quick": ("micro@8", ["data=digits", "space=micro", "cost.target_mflops=0.08"], 1),
    "cuda": ("fbnetv2_f@128", FBNET_128, 1),
}  # gpu_check.sh


def to_channels_last(module) -> None:
    """Feed the super-net channels-last inputs (every op then keeps that memory format)."""
    forward = module.supernet.forward
    module.supernet.forward = lambda x, idx: forward(x.contiguous(memory_format=torch.channels_last), idx)


def search_throughput(device: str, overrides: list[str], epochs: int, channels_last: bool) -> tuple[dict, object]:
    records, module = search_steps(
        device,
        overrides,
        None,
        0,
        keep_batches=False,
        max_epochs=epochs,
        prepare=to_channels_last if channels_last else None,
    )
    records = records[len(records) // (2 * epochs) :]  # drop the first half epoch: kernel creation for new shapes
    step_s = median(r["seconds"] for r in records)
    k = sum(len(r["archs"]) for r in records) / len(records)
    batch = records[0]["batch"]
    return {
        "mode": "search" + (" + channels_last" if channels_last else ""),
        "steps": len(records),
        "k_mean": k,
        "batch": batch,
        "step_ms": 1000 * step_s,
        "images_per_s": batch / step_s,
        "arch_images_per_s": k * batch / step_s,
    }, module


def plain_throughput(device: str, module, batch: int, steps: int, channels_last: bool, compiled: bool) -> dict:
    from fpnas.space.builder import build_model

    space = module.space
    model = build_model(space, module.argmax_architecture().tolist()).to(device)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=fmt)
    opt = module.omega_optimizer(model.parameters())  # the search's ω optimizer settings
    forward = torch.compile(model) if compiled else model
    x = torch.randn(batch, space.in_chans, space.input_size, space.input_size, device=device)
    x = x.contiguous(memory_format=fmt)
    y = torch.randint(space.num_classes, (batch,), device=device)
    start = time.perf_counter()
    times: list[float] = []
    for i in range(steps + 3):  # 3 untimed warm-up steps (compilation, kernel creation)
        with timer(device, times if i >= 3 else []):
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(forward(x), y).backward()
            opt.step()
    warmup_s = time.perf_counter() - start - sum(times)
    step_s = median(times)
    mode = "plain argmax" + (" + channels_last" if channels_last else "") + (" + compile" if compiled else "")
    return {
        "mode": mode,
        "steps": steps,
        "k_mean": 1,
        "batch": batch,
        "step_ms": 1000 * step_s,
        "images_per_s": batch / step_s,
        "arch_images_per_s": batch / step_s,
        "warmup_s": warmup_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_run_options(parser, CASES)
    args = parser.parse_args()
    label, overrides, epochs = chosen_cases(args, CASES)
    rows = []
    for device in devices(args.devices):
        for channels_last in (False, True):
            row, module = search_throughput(device, overrides, epochs, channels_last)
            rows.append({"device": device, "case": label, **row})
            if not channels_last:
                argmax_module = module
        batch = rows[-1]["batch"]
        from fpnas.space.complexity import ComplexityTables

        mflops = float(ComplexityTables(argmax_module.space).lookup(argmax_module.argmax_architecture())[0][0]) / 1e6
        variants = [(False, False), (True, False)] + ([] if args.quick or args.cases == "cuda" else [(False, True)])
        for channels_last, compiled in variants:
            row = plain_throughput(device, argmax_module, batch, 5 if args.quick else 50, channels_last, compiled)
            rows.append({"device": device, "case": f"{label}, argmax {mflops:.3g} MFLOPs", **row})
    md = markdown_table(
        rows,
        [
            ("device", "device"),
            ("case", "case"),
            ("mode", "mode"),
            ("batch", "batch"),
            ("k_mean", "K (mean)"),
            ("step_ms", "step ms (median)"),
            ("images_per_s", "images/s"),
            ("arch_images_per_s", "arch-images/s"),
            ("warmup_s", "warm-up / compile s"),
        ],
    )
    write_report("throughput", args.quick, {"epochs": epochs, "rows": rows}, md, args.suffix)


if __name__ == "__main__":
    main()
