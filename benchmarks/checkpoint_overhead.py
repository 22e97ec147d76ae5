"""Checkpoint overhead: what keeping ``last.ckpt`` current costs per epoch.

Runs real search epochs with the product's ``LastCheckpoint`` callback (atomic write of the full
state after every epoch), measures every save and the epoch time, and reports seconds per save,
the file size and the share of an epoch spent saving. The same with a save every 10 steps shows
what the periodic checkpoint costs.

    python benchmarks/checkpoint_overhead.py [--quick]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from common import build_search, markdown_table, write_report

# (label, search overrides, epochs, training batches per epoch or None for all)
CASES = {
    "full": [
        ("tiny@28 (default)", [], 2, None),
        (
            "fbnetv2_f@64",
            ["space=fbnetv2_f", "space.input_size=64", "cost.target_mflops=20", "sampler=fixed", "sampler.k=4"],
            1,
            20,
        ),
    ],
    "quick": [("micro@8", ["data=digits", "space=micro", "cost.target_mflops=0.08"], 1, None)],
}


def measure(label: str, overrides: list[str], epochs: int, batches: int | None, every_n_steps: int) -> dict:
    import pytorch_lightning as pl
    from hydra.utils import instantiate

    from fpnas.runtime.checkpoint import AtomicCheckpointIO

    with tempfile.TemporaryDirectory() as out:
        module, datamodule, cfg = build_search([*overrides, f"paths.output_dir={out}"])
        # the search's LastCheckpoint (conf/callbacks/default.yaml) at this benchmark's step interval
        checkpoint = instantiate(
            cfg.callbacks.checkpoint, path=str(Path(out) / "last.ckpt"), every_n_steps=every_n_steps
        )
        epoch_times: list[float] = []

        class EpochClock(pl.Callback):
            def on_train_epoch_start(self, trainer, pl_module):
                self.t0 = time.perf_counter()

            def on_train_epoch_end(self, trainer, pl_module):  # runs before the checkpoint callback's save
                epoch_times.append(time.perf_counter() - self.t0)

        limit = {"limit_train_batches": batches} if batches else {}
        trainer = pl.Trainer(
            max_epochs=epochs,
            accelerator="cpu",
            devices=1,
            logger=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            limit_val_batches=0,
            num_sanity_val_steps=0,
            use_distributed_sampler=False,
            plugins=[AtomicCheckpointIO()],
            callbacks=[EpochClock(), checkpoint],
            **limit,
        )
        trainer.fit(module, datamodule=datamodule)
        size_mb = (Path(out) / "last.ckpt").stat().st_size / 2**20
    saves = checkpoint.saves
    per_epoch = statistics.fmean(epoch_times)
    save_s = statistics.median(saves)
    saves_per_epoch = len(saves) / epochs
    return {
        "case": label,
        "every_n_steps": every_n_steps,
        "epochs": epochs,
        "steps_per_epoch": trainer.num_training_batches,
        "epoch_s": per_epoch,
        "save_s": save_s,
        "saves_per_epoch": saves_per_epoch,
        "checkpoint_mb": size_mb,
        "overhead_pct": 100 * save_s * saves_per_epoch / per_epoch,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    rows = []
    for label, overrides, epochs, batches in CASES["quick" if args.quick else "full"]:
        for every in (0, 10):
            rows.append(measure(label, overrides, epochs, batches, every))
            print(rows[-1], flush=True)
    md = markdown_table(
        rows,
        [
            ("case", "search"),
            ("every_n_steps", "every N steps"),
            ("steps_per_epoch", "steps/epoch"),
            ("epoch_s", "epoch s"),
            ("save_s", "s per save"),
            ("saves_per_epoch", "saves/epoch"),
            ("checkpoint_mb", "last.ckpt MiB"),
            ("overhead_pct", "overhead % of an epoch"),
        ],
    )
    md += (
        "\n\nEvery save is the full state (weights, α, both optimizers, loops, loaders, callbacks), written to a "
        "temporary file beside last.ckpt, flushed to disk and hashed (SHA-256); the file it replaces is kept as "
        "previous.ckpt and both digests are listed in checksums.sha256 (flushed too) before and after the rename "
        "(fpnas.runtime.checkpoint.save_generation). The seconds per save include all of it."
    )
    write_report("checkpoint_overhead", args.quick, {"rows": rows}, md)


if __name__ == "__main__":
    main()
