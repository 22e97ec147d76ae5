"""Never lose a search: checkpoints during the run, exact resume after real signals, resumes that keep
the run's settings and history, and commands that fail without touching an earlier run."""

from __future__ import annotations

import csv
import hashlib
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.helpers import clean_env

ROOT = Path(__file__).resolve().parents[1]
# 4 epochs of 11 steps on the digits; the joint distribution from epoch 2 (step 22) on
RUN = [
    "data=digits",
    "space=micro",
    "cost.target_mflops=0.08",
    "trainer.max_epochs=4",
    "search.warmup_epochs=1",
    "distribution.switch_epoch=2",
    "trainer.enable_progress_bar=false",
    "callbacks.search_plots.every_n_epochs=0",
]
CLEAN_ENV = clean_env(OMP_NUM_THREADS="1")


def search(run_dir: Path, *overrides: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "search.py"), f"hydra.run.dir={run_dir}", *overrides],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=CLEAN_ENV,
        timeout=600,
    )


def kill_at(step: int, sig: str) -> list[str]:
    return [
        "+callbacks.kill._target_=tests.helpers.SignalAtStep",
        f"+callbacks.kill.step={step}",
        f"+callbacks.kill.signal={sig}",
    ]


def state(run_dir: Path) -> dict:
    return torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)


def logged_steps(run_dir: Path) -> list[tuple[int, str]]:
    """(step, which metrics) of every metrics.csv row, in file order."""
    with open(run_dir / "csv" / "metrics.csv", newline="") as f:
        return [
            (int(float(r["step"])), ",".join(sorted(k for k, v in r.items() if v and k != "step")))
            for r in csv.DictReader(f)
        ]


def epoch_losses(run_dir: Path) -> list[str]:
    """``train/loss_epoch`` of every epoch, as metrics.csv writes it."""
    with open(run_dir / "csv" / "metrics.csv", newline="") as f:
        return [r["train/loss_epoch"] for r in csv.DictReader(f) if r.get("train/loss_epoch")]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def straight(tmp_path_factory) -> Path:
    """The uninterrupted run (periodic checkpoints every 5 steps, like the runs it is compared with)."""
    run_dir = tmp_path_factory.mktemp("straight")
    proc = search(run_dir, *RUN, "callbacks.checkpoint.every_n_steps=5")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return run_dir


def assert_same_search(a: Path, b: Path, arch_files: tuple[str, ...] = ("arch.yaml",)) -> None:
    sa, sb = state(a)["state_dict"], state(b)["state_dict"]
    assert sa.keys() == sb.keys()
    different = [k for k in sa if not torch.equal(sa[k], sb[k])]
    assert not different, f"{len(different)} tensors differ, e.g. {different[:3]}"
    for name in arch_files:
        assert (a / name).read_text() == (b / name).read_text()


def test_sigterm_mid_epoch_after_the_switch_resumes_bit_for_bit(straight, tmp_path):
    """SIGTERM at step 27 (epoch 2 of 4, 5 steps after the FD -> JD switch): last.ckpt is saved, the run
    exits 143; `ckpt_path=last` alone continues it with the run's own settings and ends with the very
    tensors, architecture and metric history of the uninterrupted run."""
    proc = search(tmp_path, *RUN, "callbacks.checkpoint.every_n_steps=5", *kill_at(27, "SIGTERM"))
    assert proc.returncode == 143, proc.stderr[-3000:]
    assert "interrupted (SIGTERM) at step 27" in (tmp_path / "search.log").read_text()
    saved = state(tmp_path)
    assert int(saved["state_dict"]["steps_done"]) == 27 and saved["fpnas"]["phase"] == "joint"
    loaders = saved["loops"]["fit_loop"]["state_dict"]["combined_loader"]
    assert loaders == [{"epoch": 2, "batches": 5}, {"epoch": 2, "batches": 5}]  # 5 batches into epoch 2
    proc = search(tmp_path, "ckpt_path=last", "~callbacks.kill")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "resuming" in proc.stderr and "cost.target_mflops=0.08" in proc.stderr
    assert int(state(tmp_path)["state_dict"]["steps_done"]) == 44
    assert_same_search(straight, tmp_path)
    assert logged_steps(tmp_path) == logged_steps(straight)  # the whole history, each step once
    assert epoch_losses(tmp_path) == epoch_losses(straight)  # the cut epoch's mean over all its steps


def test_sigkill_resumes_from_the_last_periodic_checkpoint_exactly(straight, tmp_path):
    """SIGKILL at step 28, with a checkpoint every 5 steps: last.ckpt holds step 25 (nothing damaged),
    and the resumed run recomputes steps 26-28 exactly as the uninterrupted run did."""
    proc = search(tmp_path, *RUN, "callbacks.checkpoint.every_n_steps=5", *kill_at(28, "SIGKILL"))
    assert proc.returncode == -signal.SIGKILL
    assert int(state(tmp_path)["state_dict"]["steps_done"]) == 25
    assert not list((tmp_path / "checkpoints").glob(".*tmp"))  # no temporary file left behind
    proc = search(tmp_path, "ckpt_path=last", "~callbacks.kill")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert_same_search(straight, tmp_path)
    assert logged_steps(tmp_path) == logged_steps(straight)  # rows of the lost steps 26-28 replaced, not doubled


def test_a_checkpoint_exists_after_the_first_epoch(tmp_path):
    """Killed in epoch 2 with periodic checkpoints off: the end of epoch 1 was saved."""
    proc = search(tmp_path, *RUN, "callbacks.checkpoint.every_n_steps=0", *kill_at(16, "SIGKILL"))
    assert proc.returncode == -signal.SIGKILL
    saved = state(tmp_path)
    assert int(saved["state_dict"]["steps_done"]) == 11 and saved["epoch"] == 0


def test_ctrl_c_saves_and_exits_130(tmp_path):
    proc = search(tmp_path, *RUN, *kill_at(7, "SIGINT"))
    assert proc.returncode == 130, proc.stderr[-3000:]
    assert int(state(tmp_path)["state_dict"]["steps_done"]) == 7


def test_resume_refuses_a_change_of_the_search_and_leaves_the_run_untouched(straight, tmp_path):
    proc = search(tmp_path, *RUN, *kill_at(16, "SIGTERM"))
    assert proc.returncode == 143
    files = [
        tmp_path / ".hydra" / "config.yaml",
        tmp_path / ".hydra" / "overrides.yaml",
        tmp_path / "checkpoints" / "last.ckpt",
        tmp_path / "csv" / "metrics.csv",
        tmp_path / "arch.yaml",
    ]
    before = {f: digest(f) for f in files}
    for change in ("cost.target_mflops=0.5", "seed=3", "space=tiny", "optim.alpha.lr=0.1"):
        proc = search(tmp_path, "ckpt_path=last", change)
        assert proc.returncode == 2
        line = proc.stderr.strip().splitlines()[-1]
        assert line.startswith(f"error: {change} cannot change when resuming") and "start a new run" in line
    # a bad value of a setting that may change fails validation before anything is written
    proc = search(tmp_path, "ckpt_path=last", "trainer.max_epochs=-1")
    assert proc.returncode == 2 and "trainer.max_epochs=-1 is invalid" in proc.stderr
    # a new run into this directory (no ckpt_path) would take it over
    proc = search(tmp_path, *RUN)
    assert proc.returncode == 2 and "already holds a run" in proc.stderr and "ckpt_path=last" in proc.stderr
    assert {f: digest(f) for f in files} == before
    # more epochs may be asked for when resuming, and are reported
    proc = search(tmp_path, "ckpt_path=last", "~callbacks.kill", "trainer.max_epochs=5")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "changed on the command line: ~callbacks.kill trainer.max_epochs=5" in proc.stderr
    assert int(state(tmp_path)["state_dict"]["steps_done"]) == 55


def test_atomic_save_keeps_the_previous_checkpoint_when_writing_fails(tmp_path):
    from fpnas.runtime.checkpoint import AtomicCheckpointIO

    path = tmp_path / "last.ckpt"
    io = AtomicCheckpointIO()
    io.save_checkpoint({"step": 1, "w": torch.ones(3)}, path)
    good = path.read_bytes()

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("killed in the middle of the write")

    with pytest.raises(RuntimeError, match="middle of the write"):
        io.save_checkpoint({"step": 2, "w": torch.zeros(1000), "x": Unpicklable()}, path)
    assert path.read_bytes() == good and sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt"]
    assert torch.load(path, weights_only=False)["step"] == 1


def test_resume_of_a_run_whose_space_came_from_the_search_path_needs_no_repeat(tmp_path):
    """A space of the user's own (<dir>/space/mine.yaml, found through hydra.searchpath): `ckpt_path=last`
    with the run directory alone resumes it; the run's search path is restored with its overrides."""
    mine = tmp_path / "mine"
    (mine / "space").mkdir(parents=True)
    (mine / "space" / "mine.yaml").write_text(
        (ROOT / "conf" / "space" / "micro.yaml").read_text().replace("micro", "mine")
    )
    run = tmp_path / "run"
    first = [r for r in RUN if not r.startswith(("space=", "trainer.max_epochs"))]
    proc = search(run, f"hydra.searchpath=[file://{mine}]", "space=mine", *first, "trainer.max_epochs=1")
    assert proc.returncode == 0, proc.stderr[-3000:]
    proc = search(run, "ckpt_path=last", "trainer.max_epochs=2")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"hydra.searchpath=[file://{mine}]" in proc.stderr  # named in the "resuming ... with" line
    assert int(state(run)["state_dict"]["steps_done"]) == 22
