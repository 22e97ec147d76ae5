"""Memory: a search step vs training the largest sampled architecture alone; and a DARTS estimate.

Two child processes start alike (same imports, same data loaded), then reset their peak and do
the work: (a) N real search steps (the product's ``SearchModule`` under Lightning), (b) N plain
training steps plus validation forwards of the largest architecture (a) sampled (the most
activation memory, analytically), built as a plain timm model. CPU: peak resident memory (VmHWM)
above the process's resident memory at the reset; CUDA: ``max_memory_allocated``. Target: search / alone <= 1.15.

The DARTS-style column estimates, from analytic activation sizes, what a mixed op that computes
every candidate of every block (channels masked at the maximum width, as FBNetV2 does) would keep
for backward, against the single path that FP-NAS runs: the gap the method exists for.

    python benchmarks/memory.py [--quick]
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import tempfile
from pathlib import Path

from common import (
    FBNET_128,
    add_run_options,
    chosen_cases,
    compose_search,
    devices,
    markdown_table,
    plain_step,
    run_python,
    write_report,
)

TARGET = 1.15
CASES = {
    "full": [
        ("tiny@28 (default)", [], 20),
        (
            "fbnetv2_f@96",
            [
                "space=fbnetv2_f",
                "space.input_size=96",
                "cost.target_mflops=40",
                "sampler=fixed",
                "sampler.k=4",
                "data.batch_size=32",
            ],
            4,
        ),
    ],
    "quick": [("micro@8", ["data=digits", "space=micro", "cost.target_mflops=0.08"], 2)],
    "cuda": [("fbnetv2_f@128", FBNET_128, 4)],  # gpu_check.sh
}


# --------------------------------------------------------------------------- analytic activations
def block_activation_elements(cfg) -> int:
    """Elements one image keeps for backward in one block: every conv, BN and activation output."""
    if cfg.identity:
        return 0
    return cfg.kind.activations(cfg) + (cfg.out_chs * cfg.out_size**2 if cfg.has_residual else 0)


def path_activation_elements(space, choice_idx) -> int:
    """Elements per image of one architecture (stem, blocks, head)."""
    h = space.blocks[0].in_size
    total = 3 * space.stem_channels * h * h
    total += sum(block_activation_elements(cfg) for cfg in space.resolve(choice_idx))
    return total + 3 * space.head_channels * space.final_size**2


def mixed_op_activation_elements(space) -> int:
    """Elements per image when every block computes all its candidates at the maximum width."""
    h = space.blocks[0].in_size
    total = 3 * space.stem_channels * h * h + 3 * space.head_channels * space.final_size**2
    for slot in space.blocks:
        cin, cout = max(slot.in_channels), max(slot.out_channels)
        choices = dict(slot.choices, kernel=tuple(k for k in slot.kernel if k))
        candidates = (dict(zip(choices, c)) for c in itertools.product(*choices.values()))
        total += sum(block_activation_elements(space.block_config(slot, cin, cout, c)) for c in candidates)
        total += cout * slot.out_size**2  # the weighted sum of the candidates
    return total


# --------------------------------------------------------------------------- child processes
def _rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def _reset_peak(device: str) -> int:
    """Resets the peak counter; returns the current usage in bytes (the baseline)."""
    import gc

    import torch

    gc.collect()
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        return torch.cuda.memory_allocated()
    Path("/proc/self/clear_refs").write_text("5")  # Linux: reset VmHWM to the current RSS
    return _rss_kib("VmRSS") * 1024


def _peak(device: str) -> int:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated()
    return _rss_kib("VmHWM") * 1024


def _idle_module():
    """A LightningModule whose steps do nothing: the fixed memory of Lightning's loop and loaders."""
    import pytorch_lightning as pl
    import torch

    class IdleSearch(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.automatic_optimization = False
            self.p = torch.nn.Parameter(torch.zeros(1))

        def training_step(self, batch, batch_idx):
            return None

        def configure_optimizers(self):
            return torch.optim.SGD([self.p], lr=0.1)

    return IdleSearch()


def child(mode: str, device: str, overrides: list[str], steps: int, arch: list[int] | None) -> dict:
    import pytorch_lightning as pl  # noqa: F401 - the same imports in every child
    import torch
    from hydra.utils import instantiate

    from fpnas.runtime.config import instantiate_checked
    from fpnas.search.run import build_space, instantiate_search
    from fpnas.space.builder import build_model

    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as out:
        cfg = compose_search([*overrides, f"paths.output_dir={out}", "search.warmup_epochs=0"])
        datamodule = instantiate_checked(cfg.data, "data")
        space = build_space(cfg).with_num_classes(datamodule.num_classes, datamodule.in_chans)
        datamodule.setup("fit")
        loaders = datamodule.train_dataloader()  # {"train": ω loader, "val": α loader}
        train_batches = list(zip(itertools.islice(loaders["train"], steps), itertools.islice(loaders["val"], steps)))
        base = _reset_peak(device)
        sampled: list[list[int]] = []
        params = 0
        if mode in ("search", "idle_fit"):
            module = instantiate_search(cfg)[0] if mode == "search" else _idle_module()  # its data module is unloaded
            params = sum(p.numel() for p in module.parameters())
            if mode == "search":
                sample = module.sample_architectures

                def recording_sample(*args, **kwargs):
                    archs = sample(*args, **kwargs)
                    sampled.extend(archs.tolist())
                    return archs

                module.sample_architectures = recording_sample
            trainer = instantiate(
                cfg.trainer,
                accelerator=device,
                devices=1,
                max_epochs=1,
                limit_train_batches=steps,
                limit_val_batches=0,
                enable_progress_bar=False,
                enable_model_summary=False,
                enable_checkpointing=False,
                logger=False,
                callbacks=[],
            )
            trainer.fit(module, datamodule=datamodule)
        else:
            model = build_model(space, arch).to(device)
            params = sum(p.numel() for p in model.parameters())
            o = cfg.optim.omega
            opt = torch.optim.SGD(
                model.parameters(), lr=o.lr, momentum=o.momentum, nesterov=o.nesterov, weight_decay=o.weight_decay
            )
            for train, val in train_batches:
                (xt, yt), (xv, _) = [[t.to(device) for t in part] for part in (train, val)]
                plain_step(model, opt, xt, yt, xv)
        peak = _peak(device)
    return {
        "mode": mode,
        "base_bytes": base,
        "peak_bytes": peak,
        "above_base_bytes": peak - base,
        "sampled": sampled,
        "params": params,
    }


# glibc keeps freed heap memory for reuse, so peak RSS also counts blocks a process freed and
# could not reuse (the search allocates activations of a new shape for every sampled
# architecture); serving every block >= 64 KiB by mmap returns it at free, and peak RSS then
# follows the live tensors, as CUDA's max_memory_allocated does
ALLOCATORS = {
    "glibc default": {},
    "glibc mmap >= 64 KiB": {"MALLOC_MMAP_THRESHOLD_": "65536", "MALLOC_TRIM_THRESHOLD_": "0"},
}


def run_child(mode: str, device: str, overrides: list[str], steps: int, arch=None, env=None) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        run_python(
            [
                __file__,
                "--child",
                mode,
                "--device",
                device,
                "--steps",
                str(steps),
                "--overrides",
                json.dumps(overrides),
                "--arch",
                json.dumps(arch),
                "--out",
                str(out),
            ],
            env=env,
        )
        return json.loads(out.read_text())


def measure(device: str, label: str, overrides: list[str], steps: int, allocator: str) -> dict:
    from fpnas.space.complexity import ComplexityTables

    env = ALLOCATORS[allocator]
    search = run_child("search", device, overrides, steps, env=env)
    module_space = build_search_space(overrides)
    tables = ComplexityTables(module_space)
    macs, _ = tables.lookup(search["sampled"])
    # "largest" in memory: the sampled architecture with the most activations (not the most MACs)
    activations = [path_activation_elements(module_space, arch) for arch in search["sampled"]]
    largest_i = max(range(len(activations)), key=activations.__getitem__)
    largest = search["sampled"][largest_i]
    alone = run_child("standalone", device, overrides, steps, largest, env=env)
    idle = run_child("idle_fit", device, overrides, steps, env=env)
    batch = int(compose_search(overrides).data.batch_size)
    mib = 2**20
    single = path_activation_elements(module_space, largest) * 4 * batch / mib
    mixed = mixed_op_activation_elements(module_space) * 4 * batch / mib
    return {
        "device": device,
        "allocator": allocator if device == "cpu" else "cuda caching",
        "case": label,
        "batch": batch,
        "steps": steps,
        "samples": len(search["sampled"]),
        "largest_mflops": float(macs[largest_i]) / 1e6,
        "search_mib": search["above_base_bytes"] / mib,
        "alone_mib": alone["above_base_bytes"] / mib,
        "ratio": search["above_base_bytes"] / alone["above_base_bytes"],
        "target": TARGET,
        "search_peak_mib": search["peak_bytes"] / mib,
        "alone_peak_mib": alone["peak_bytes"] / mib,
        "analytic_path_act_mib": single,
        "analytic_mixed_op_act_mib": mixed,
        "darts_vs_path": mixed / single,
        # where the search's extra memory goes: Lightning's loop and the two loaders (a fit that
        # does nothing), and the super-net's max-size weights + gradients + momentum (3 x 4 bytes)
        "lightning_loop_mib": idle["above_base_bytes"] / mib,
        "supernet_state_mib": 3 * 4 * search["params"] / mib,
        "alone_state_mib": 3 * 4 * alone["params"] / mib,
    }


def build_search_space(overrides: list[str]):
    from fpnas.runtime.config import instantiate_checked
    from fpnas.search.run import build_space

    with tempfile.TemporaryDirectory() as out:
        cfg = compose_search([*overrides, f"paths.output_dir={out}"])
        data = instantiate_checked(cfg.data, "data")
        return build_space(cfg).with_num_classes(data.num_classes, data.in_chans)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_run_options(parser, CASES)
    parser.add_argument("--child", choices=["search", "standalone", "idle_fit"], help=argparse.SUPPRESS)
    parser.add_argument("--device", default="cpu", help=argparse.SUPPRESS)
    parser.add_argument("--steps", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--overrides", default="[]", help=argparse.SUPPRESS)
    parser.add_argument("--arch", default="null", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        result = child(args.child, args.device, json.loads(args.overrides), args.steps, json.loads(args.arch))
        Path(args.out).write_text(json.dumps(result))
        return
    rows = [
        measure(device, label, overrides, steps, allocator)
        for device in devices(args.devices)
        for label, overrides, steps in chosen_cases(args, CASES)
        for allocator in (ALLOCATORS if device == "cpu" else list(ALLOCATORS)[:1])
    ]
    md = markdown_table(
        rows,
        [
            ("device", "device"),
            ("allocator", "allocator"),
            ("case", "search (space@px)"),
            ("batch", "batch"),
            ("samples", "archs sampled"),
            ("largest_mflops", "largest: MFLOPs"),
            ("search_mib", "search MiB"),
            ("alone_mib", "largest alone MiB"),
            ("ratio", "ratio"),
            ("target", "target"),
            ("analytic_path_act_mib", "path activations MiB (analytic)"),
            ("analytic_mixed_op_act_mib", "DARTS mixed op MiB (analytic)"),
            ("darts_vs_path", "DARTS / path"),
        ],
    )
    md += (
        "\n\nMiB above each process's resident memory after imports and data loading (CPU: peak RSS; "
        "CUDA: max allocated). Analytic columns: activations kept for backward at this batch, float32."
    )
    md += "\n\nWhere the search's extra memory goes:\n\n" + markdown_table(
        rows,
        [
            ("device", "device"),
            ("allocator", "allocator"),
            ("case", "search"),
            ("search_mib", "search MiB"),
            ("alone_mib", "alone MiB"),
            ("lightning_loop_mib", "Lightning loop + loaders, idle fit MiB"),
            ("supernet_state_mib", "super-net weights + grads + momentum MiB"),
            ("alone_state_mib", "alone weights + grads + momentum MiB"),
        ],
    )
    write_report("memory", args.quick, {"rows": rows}, md, args.suffix)


if __name__ == "__main__":
    sys.exit(main())
