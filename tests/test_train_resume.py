"""train.py resumes exactly from any step, as the search does: SIGTERM in the middle of an epoch (or a crash
after a periodic checkpoint), then `ckpt_path=last`, ends with the very tensors (EMA included), test accuracy
and epoch metrics of the uninterrupted run; and the summary counts the time of every segment."""

from __future__ import annotations

import csv
import itertools
import json
import random
from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from torch.utils.data import Dataset

from fpnas.data.sharding import ResumableLoader, shard_sampler
from fpnas.space.arch import architecture_from_indices
from fpnas.space.spec import SearchSpace
from fpnas.train.run import run_train
from tests.helpers import QUICK_TRAIN, compose_config

# 2 epochs of 11 steps on the digits; drop-path, dropout and the EMA on: every random draw of a step counts
RUN = [
    "data=digits",
    "trainer.max_epochs=2",
    "threads=1",
    "progress=lines",
    "model.drop_path_rate=0.2",
    "model.drop_rate=0.3",
    "recipe.ema_decay=0.9",
    "callbacks.checkpoint.every_n_steps=5",
]


class Crash(RuntimeError):
    """What a kill leaves: the fit stops without a checkpoint of its own (SIGKILL, a power cut)."""


class CrashAtStep(pl.Callback):
    """``+callbacks.crash._target_=tests.test_train_resume.CrashAtStep``: raises :class:`Crash` after training
    step ``step``, for which no callback saves a checkpoint."""

    def __init__(self, step: int):
        self.step = int(step)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.fit_loop.epoch_loop.batch_progress.total.processed == self.step:
            raise Crash(f"killed after step {self.step}")


def train(run_dir: Path, *overrides: str) -> dict:
    space = SearchSpace.load("micro")
    arch = architecture_from_indices(space, [1] * space.num_decisions).save(run_dir.parent / "arch.yaml")
    return run_train(compose_config("train", run_dir, *QUICK_TRAIN, f"arch={arch}", *RUN, *overrides))


def state(run_dir: Path) -> dict:
    return torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)


def epoch_losses(run_dir: Path) -> list[tuple[str, str]]:
    """(epoch, train/loss_epoch) of every row of metrics.csv that has one."""
    with open(run_dir / "csv" / "metrics.csv", newline="") as f:
        return [(r["epoch"], r["train/loss_epoch"]) for r in csv.DictReader(f) if r.get("train/loss_epoch")]


def assert_same_training(a: Path, b: Path) -> None:
    sa, sb = state(a)["state_dict"], state(b)["state_dict"]
    assert sa.keys() == sb.keys() and any(k.startswith("ema.module.") for k in sa)
    different = [k for k in sa if not torch.equal(sa[k], sb[k])]
    assert not different, f"{len(different)} of {len(sa)} tensors differ, e.g. {different[:3]}"
    summary_a, summary_b = (json.loads((d / "train_summary.json").read_text()) for d in (a, b))
    for key in ("test_acc", "test_acc_ema", "test_acc5", "test_acc5_ema", "steps", "epochs"):
        assert summary_a[key] == summary_b[key], key
    assert epoch_losses(a) == epoch_losses(b)  # the cut epoch's mean counts its batches before the cut too
    assert len(epoch_losses(a)) == 2


@pytest.fixture(scope="module")
def straight(tmp_path_factory) -> Path:
    """The uninterrupted run (periodic checkpoints every 5 steps, like the runs it is compared with)."""
    run_dir = tmp_path_factory.mktemp("straight") / "run"
    train(run_dir)
    return run_dir


def test_sigterm_mid_epoch_resumes_bit_for_bit(straight, tmp_path):
    """SIGTERM after step 16 (5 batches into epoch 2 of 2): last.ckpt is saved and the run exits 143; resumed
    with `ckpt_path=last` and stopped again after step 19, then resumed to the end, it ends with the very
    weights, EMA, test accuracy and epoch losses of the uninterrupted run, and its summary counts the time
    of all three segments."""
    run_dir = tmp_path / "run"
    kill = ["+callbacks.kill._target_=tests.helpers.SignalAtStep"]
    with pytest.raises(SystemExit) as stopped:
        train(run_dir, *kill, "+callbacks.kill.step=16")
    assert stopped.value.code == 143
    saved = state(run_dir)
    assert saved["global_step"] == 16
    assert saved["loops"]["fit_loop"]["state_dict"]["combined_loader"] == [{"epoch": 1, "batches": 5}] * 2
    carried = saved["callbacks"]["ExactResume"]
    assert carried["epoch_sums"]["epoch"] == 1 and carried["segments"] == 1
    assert int(carried["epoch_sums"]["metrics"]["training_step.train/loss"]["cumulated_batch_size"]) == 5 * 128
    with pytest.raises(SystemExit):
        train(run_dir, "ckpt_path=last", *kill, "+callbacks.kill.step=19")
    second = state(run_dir)["callbacks"]["ExactResume"]
    assert second["segments"] == 2 and second["wall_time_s"] > carried["wall_time_s"]
    assert int(second["epoch_sums"]["metrics"]["training_step.train/loss"]["cumulated_batch_size"]) == 8 * 128

    resumed = train(run_dir, "ckpt_path=last")
    assert_same_training(straight, run_dir)
    assert resumed["wall_time_segments"] == 3
    assert resumed["wall_time_s"] >= round(second["wall_time_s"] + resumed["wall_time_last_segment_s"], 2) - 0.02
    assert resumed["train_time_s"] >= round(second["fit_time_s"] + resumed["train_time_last_segment_s"], 2) - 0.02
    assert second["wall_time_s"] - carried["wall_time_s"] > second["fit_time_s"] - carried["fit_time_s"] > 0
    assert json.loads((run_dir / "train_summary.json").read_text()) == resumed


def test_a_crash_resumes_from_the_last_periodic_checkpoint_exactly(straight, tmp_path):
    """Killed after step 18 without a save of its own: last.ckpt holds step 15, and the resumed run recomputes
    steps 16-18 exactly as the uninterrupted run did."""
    run_dir = tmp_path / "run"
    with pytest.raises(Crash):
        train(run_dir, "+callbacks.crash._target_=tests.test_train_resume.CrashAtStep", "+callbacks.crash.step=18")
    assert state(run_dir)["global_step"] == 15
    train(run_dir, "ckpt_path=last")
    assert_same_training(straight, run_dir)


class RandomlyShifted(Dataset):
    """Images shifted at random by torch, ``random`` and NumPy draws together (what transforms use)."""

    transform = "random shifts"  # a transform, as torchvision data sets and TransformSubset name theirs

    def __len__(self) -> int:
        return 40

    def __getitem__(self, i: int):
        shift = int(torch.randint(0, 100, ())) + random.randrange(100) + int(np.random.randint(100))
        return torch.full((2,), float(i * 1000 + shift)), i


@pytest.mark.parametrize("workers", [0, 2])
def test_random_augmentation_resumes_mid_epoch(workers, monkeypatch):
    """A loader of a training split with random transforms gives every image the same draw when its pass is
    resumed in the middle, with any number of worker processes; with workers, the main process's generators
    (the training step's) are left alone."""
    monkeypatch.setenv("PL_GLOBAL_SEED", "3")

    def loader():
        data = RandomlyShifted()
        sampler = shard_sampler(None, data, shuffle=True, drop_last=True)
        return ResumableLoader(data, batch_size=4, sampler=sampler, drop_last=True, num_workers=workers)

    def epoch(dl, e):
        dl.sampler.set_epoch(e)
        return [x for x, _ in dl]

    whole = loader()
    straight = [epoch(whole, e) for e in (0, 1)]
    assert not torch.equal(torch.cat(straight[0]).sort().values, torch.cat(straight[1]).sort().values)
    cut = loader()
    cut.sampler.set_epoch(1)
    first = [x for x, _ in itertools.islice(iter(cut), 3)]
    resumed = loader()
    resumed.load_state_dict(cut.state_dict())
    rest = epoch(resumed, 1)
    assert all(torch.equal(a, b) for a, b in zip(first + rest, straight[1], strict=True))
    if workers:  # the main process's generators are the training step's
        before = torch.get_rng_state()
        epoch(loader(), 0)
        assert torch.equal(before, torch.get_rng_state())
