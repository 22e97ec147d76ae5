"""Shared pieces of the benchmark scripts: composing a search config, devices, timing, reports."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
# FPNAS_BENCH_RESULTS: another folder for the reports (gpu_check.sh --cpu writes to a temporary one)
RESULTS = Path(os.environ.get("FPNAS_BENCH_RESULTS") or ROOT / "benchmarks" / "results")
# a child process must not believe it belongs to a distributed job of its parent
CLEAN_ENV = {
    k: v
    for k, v in os.environ.items()
    if k not in ("MASTER_ADDR", "MASTER_PORT", "LOCAL_RANK", "WORLD_SIZE", "NODE_RANK", "RANK", "PL_GLOBAL_SEED")
}
# the issue's CUDA case (gpu_check.sh): FP-NAS-S1's space at its 128 px input, K = 4, batch 128
FBNET_128 = [
    "space=fbnetv2_f",
    "space.input_size=128",
    "cost.target_mflops=58",
    "sampler=fixed",
    "sampler.k=4",
    "data.batch_size=128",
]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def devices(choice: str = "auto") -> list[str]:
    """``auto``: ``cpu``, plus ``cuda`` when a GPU is present (rows for it are added automatically);
    ``cpu`` or ``cuda``: that device only."""
    if choice == "auto":
        return ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    if choice == "cuda" and not torch.cuda.is_available():
        raise SystemExit("error: --devices cuda, but torch sees no CUDA device")
    return [choice]


def add_run_options(parser, cases: dict) -> None:
    """The options every device benchmark shares: which devices, which case set, the report's name."""
    parser.add_argument("--quick", action="store_true", help="a few steps on the 8x8 digits (smoke test)")
    parser.add_argument(
        "--devices",
        choices=["auto", "cpu", "cuda"],
        default="auto",
        help="auto: the CPU, plus CUDA when a GPU is present",
    )
    parser.add_argument("--cases", choices=sorted(cases), help="case set (default: quick with --quick, else full)")
    parser.add_argument("--suffix", default="", help="appended to the report's name, e.g. _cuda")


def chosen_cases(args, cases: dict):
    return cases[args.cases or ("quick" if args.quick else "full")]


def synchronize(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def compose_search(overrides: Sequence[str]):
    """The search config of ``search.py`` with ``overrides`` (Hydra compose, no run directory)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose(config_name="search", overrides=list(overrides))


def build_search(overrides: Sequence[str]):
    """(SearchModule, data module, config) exactly as ``search.py`` builds them."""
    from fpnas.search.run import instantiate_search

    cfg = compose_search(overrides)
    module, datamodule = instantiate_search(cfg)
    return module, datamodule, cfg


def load_search(run_dir: Path, overrides: Sequence[str]):
    """(SearchModule, data module) of the finished search in ``run_dir`` (run with ``overrides``): built as
    ``search.py`` builds them, with the checkpoint's weights, α and phase, on the CPU (as a resume loads
    them, so that a checkpoint of any fpnas version whose tensors match loads)."""
    import torch

    module, datamodule, _ = build_search([*overrides, f"paths.output_dir={run_dir}"])
    ckpt = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    module.on_load_checkpoint(ckpt)  # the phase (factorized or joint) first: α's shape follows it
    module.load_state_dict(ckpt["state_dict"])
    return module, datamodule


@contextmanager
def timer(device: str, out: list[float]):
    """Appends the wall time (s) of the block, device work included."""
    synchronize(device)
    start = time.perf_counter()
    yield
    synchronize(device)
    out.append(time.perf_counter() - start)


def median(values: Iterable[float]) -> float:
    values = list(values)
    return statistics.median(values) if values else float("nan")


def run_python(
    args: Sequence[str], cwd: str | Path | None = None, timeout: float | None = None, env: dict[str, str] | None = None
) -> str:
    """Run ``python <args>`` in a clean environment (plus ``env``); stdout on success, a clear error otherwise."""
    proc = subprocess.run(
        [sys.executable, *args],
        cwd=cwd or ROOT,
        env={**CLEAN_ENV, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-25:])
        raise RuntimeError(f"command failed ({proc.returncode}): python {' '.join(args)}\n{tail}")
    return proc.stdout


def machine() -> dict[str, Any]:
    info = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu_threads": torch.get_num_threads(),
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def markdown_table(rows: list[dict[str, Any]], columns: list[tuple[str, str]]) -> str:
    """A Markdown table of ``rows`` with ``columns`` = [(key, header)]; floats get 3-4 digits."""

    def fmt(v):
        if isinstance(v, float):
            return f"{v:.3f}" if abs(v) < 100 else f"{v:.1f}"
        return "" if v is None else str(v)

    lines = ["| " + " | ".join(h for _, h in columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(fmt(r.get(k)) for k, _ in columns) + " |" for r in rows]
    return "\n".join(lines)


def write_report(name: str, quick: bool, data: dict[str, Any], markdown: str, suffix: str = "") -> Path:
    """``benchmarks/results/<name>[_quick]<suffix>.json`` and ``.md``; returns the Markdown path."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = (f"{name}_quick" if quick else name) + suffix
    data = {"benchmark": name, "quick": quick, "date": time.strftime("%Y-%m-%d %H:%M"), "machine": machine(), **data}
    (RESULTS / f"{stem}.json").write_text(json.dumps(data, indent=2, default=float) + "\n")
    path = RESULTS / f"{stem}.md"
    path.write_text(markdown.rstrip() + "\n")
    print(markdown)
    return path


class StepTimer:
    """Two callbacks around every training batch: the first one starts, the last one stops the clock."""

    def __init__(self, device: str, keep_batches: bool, on_step=None):
        import pytorch_lightning as pl

        clock = self
        self.records: list[dict] = []
        self.last_archs = None
        self.t0 = 0.0

        class Start(pl.Callback):
            def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
                synchronize(device)
                clock.t0 = time.perf_counter()

        class Stop(pl.Callback):
            def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
                synchronize(device)
                record = {
                    "seconds": time.perf_counter() - clock.t0,
                    "archs": clock.last_archs.tolist(),
                    "batch": int(batch["train"][1].numel()),
                }
                if keep_batches:
                    record["train"] = [t.detach().clone() for t in batch["train"]]
                    record["val"] = [t.detach().clone() for t in batch["val"]]
                clock.records.append(record)
                if on_step is not None:
                    on_step()

        self.start_cb, self.stop_cb = Start(), Stop()


def search_steps(
    device: str,
    overrides: list[str],
    steps: int | None,
    skip: int,
    keep_batches: bool = True,
    max_epochs: int = 1,
    prepare=None,
    on_step=None,
) -> tuple[list[dict], object]:
    """Run real search steps (``skip + steps`` of one epoch, or every step of ``max_epochs`` when
    ``steps`` is None); returns the timed records after the first ``skip`` and the module.

    A record holds the step's seconds, its sampled architectures and (``keep_batches``) its batches.
    ``prepare(module)`` may change the module before the fit (e.g. a memory format);
    ``on_step()`` is called after every step (e.g. a profiler's ``step``).
    """
    from hydra.utils import instantiate

    with tempfile.TemporaryDirectory() as out:
        module, datamodule, cfg = build_search([*overrides, f"paths.output_dir={out}"])
        clock = StepTimer(device, keep_batches, on_step)
        sample = module.sample_architectures

        def recording_sample(*args, **kwargs):
            clock.last_archs = sample(*args, **kwargs)
            return clock.last_archs

        module.sample_architectures = recording_sample
        if prepare is not None:
            prepare(module)
        # the product's per-step callbacks (statistics logging) are part of the step; checkpoints are per epoch
        product = [instantiate(c) for name, c in cfg.callbacks.items() if name == "search_stats"]
        limit = {} if steps is None else {"limit_train_batches": skip + steps}
        trainer = instantiate(
            cfg.trainer,
            accelerator=device,
            devices=1,
            max_epochs=max_epochs,
            **limit,
            limit_val_batches=0,
            enable_progress_bar=False,
            enable_model_summary=False,
            enable_checkpointing=False,
            logger=False,
            callbacks=[clock.start_cb, *product, clock.stop_cb],
        )
        trainer.fit(module, datamodule=datamodule)
    return clock.records[skip:], module


def plain_step(model, opt, xt, yt, xv) -> None:
    """One plain training step on the ω batch and one validation forward on the α batch."""
    import torch.nn.functional as F

    model.train()
    opt.zero_grad(set_to_none=True)
    F.cross_entropy(model(xt), yt).backward()
    opt.step()
    model.eval()
    with torch.no_grad():
        model(xv)


def run_logged(tasks: list[dict], run, log: Path, workers: int, describe) -> list[dict]:
    """Run ``run(task)`` for every task in a pool of ``workers`` spawned processes (one task per process) and
    append each result, as it arrives, to the JSONL ``log`` (flushed and fsynced: a restart skips what is
    there); prints ``describe(row)`` with the count and an ETA. Returns the new rows."""
    import multiprocessing as mp

    rows, start = [], time.time()
    with mp.get_context("spawn").Pool(workers, maxtasksperchild=1) as pool, open(log, "a") as f:
        for n, row in enumerate(pool.imap_unordered(run, tasks), 1):
            f.write(json.dumps(row) + "\n")
            f.flush()
            os.fsync(f.fileno())
            rows.append(row)
            eta = (time.time() - start) / n * (len(tasks) - n) / 60
            print(f"[{n}/{len(tasks)}] {describe(row)}  ETA {eta:.1f} min", flush=True)
    return rows
