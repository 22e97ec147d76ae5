"""Verified checkpoints: every save keeps the one before it (previous.ckpt) and lists the SHA-256 of both
(checksums.sha256); a resume checks the file first, falls back to previous.ckpt when last.ckpt is damaged,
refuses in one line when none is intact, and resumes an unlisted file with a notice. A kill at any moment of
a save leaves a checkpoint that verifies; a full disk is one line naming the file and the free space."""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import random
import re
import subprocess
import sys
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from omegaconf import OmegaConf

from fpnas.errors import DamagedCheckpointError, NonFiniteLossError
from fpnas.runtime.checkpoint import (
    CHECKSUMS,
    AtomicCheckpointIO,
    checksum_status,
    previous_generation,
    read_checksums,
    remove_stale_temporaries,
    verified_checkpoint,
)
from fpnas.runtime.cli import run_reporting_user_errors
from fpnas.runtime.run_dir import RunDir
from tests.helpers import MICRO, QUICK_SEARCH, clean_env

ROOT = Path(__file__).resolve().parents[1]


def generations_io(last: Path) -> AtomicCheckpointIO:
    """The trainer's checkpoint IO with ``last`` saved as verified generations (what LastCheckpoint sets up)."""
    io = AtomicCheckpointIO()
    io.generations.add(os.path.abspath(last))
    return io


def state(step: int) -> dict:
    return {"step": step, "w": torch.full((50_000,), float(step))}


def saved_run(tmp_path: Path, saves: int = 3) -> RunDir:
    """A run directory whose checkpoints were saved ``saves`` times (steps 1..saves)."""
    run = RunDir(tmp_path)
    io = generations_io(run.last_checkpoint)
    for step in range(1, saves + 1):
        io.save_checkpoint(state(step), run.last_checkpoint)
    return run


def step_of(path) -> int:
    return torch.load(path, map_location="cpu", weights_only=False)["step"]


def flip_bits(path: Path, n: int = 16, seed: int = 0) -> None:
    data = bytearray(path.read_bytes())
    rng = random.Random(seed)
    for _ in range(n):
        i = rng.randrange(len(data) // 4, len(data))
        data[i] ^= 1 << rng.randrange(8)
    path.write_bytes(bytes(data))


def garbage_4k(path: Path) -> None:
    with open(path, "r+b") as f:
        f.seek(path.stat().st_size // 2)
        f.write(random.Random(1).randbytes(4096))


def notices(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "fpnas" and r.levelno >= logging.WARNING]


def test_each_save_keeps_the_previous_generation_and_lists_both_sha256(tmp_path):
    run = saved_run(tmp_path)
    assert run.previous_checkpoint == previous_generation(run.last_checkpoint)
    assert run.checkpoint_checksums.name == CHECKSUMS
    assert (step_of(run.last_checkpoint), step_of(run.previous_checkpoint)) == (3, 2)
    # sha256sum format: `cd checkpoints && sha256sum -c checksums.sha256` checks them by hand
    expected = {
        (hashlib.sha256(p.read_bytes()).hexdigest(), p.name) for p in (run.last_checkpoint, run.previous_checkpoint)
    }
    assert set(read_checksums(run.last_checkpoint.parent)) == expected
    assert sorted(p.name for p in run.last_checkpoint.parent.iterdir()) == [CHECKSUMS, "last.ckpt", "previous.ckpt"]
    assert verified_checkpoint("ckpt_path=last", run.last_checkpoint) == str(run.last_checkpoint)


@pytest.mark.parametrize("damage", [flip_bits, garbage_4k], ids=["16 flipped bits", "4 KiB of garbage"])
def test_a_damaged_last_checkpoint_falls_back_to_the_previous_one_with_a_notice(tmp_path, caplog, damage):
    run = saved_run(tmp_path)
    last, previous = run.last_checkpoint, run.previous_checkpoint
    damage(last)
    assert checksum_status(last) == "damaged"
    with caplog.at_level(logging.INFO, logger="fpnas"):
        used = verified_checkpoint("ckpt_path=last", last, run_last=last)
    assert used == str(previous) and step_of(used) == 2
    [line] = notices(caplog)
    assert str(last) in line and str(previous) in line and "damaged" in line and "\n" not in line
    # moved aside, so that the run's next save keeps previous.ckpt (and the run directory is its own again)
    assert not last.exists() and last.with_name("last.ckpt.damaged").is_file()
    io = generations_io(last)
    io.save_checkpoint(state(3), last)
    assert (step_of(last), step_of(previous)) == (3, 2)
    assert checksum_status(last) == checksum_status(previous) == "verified"


@pytest.mark.parametrize("resolver", ["search", "train"])
@pytest.mark.parametrize("how", ["ckpt_path=last", "ckpt_path=<file>", "auto_resume=true"])
def test_every_way_to_resume_checks_the_checksum(tmp_path, caplog, resolver, how):
    from fpnas.search.run import resolve_ckpt_path
    from fpnas.train.run import resolve_train_ckpt_path

    run = saved_run(tmp_path)
    flip_bits(run.last_checkpoint)
    cfg = OmegaConf.create(
        {
            "ckpt_path=last": {"ckpt_path": "last"},
            "ckpt_path=<file>": {"ckpt_path": str(run.last_checkpoint)},
            "auto_resume=true": {"ckpt_path": None, "auto_resume": True},
        }[how]
    )
    resolve = resolve_ckpt_path if resolver == "search" else resolve_train_ckpt_path
    with caplog.at_level(logging.INFO, logger="fpnas"):
        assert resolve(cfg, run) == str(run.previous_checkpoint)
    assert any("resuming from" in n and str(run.previous_checkpoint) in n for n in notices(caplog))
    if how != "ckpt_path=<file>":  # last.ckpt moved aside: as after a save cut short between its renames
        assert resolve(cfg, run) == str(run.previous_checkpoint)


@pytest.mark.parametrize("case", ["both damaged", "no previous"])
def test_no_intact_checkpoint_is_refused_in_one_line(tmp_path, case):
    run = saved_run(tmp_path, saves=2 if case == "both damaged" else 1)
    flip_bits(run.last_checkpoint)
    if case == "both damaged":
        garbage_4k(run.previous_checkpoint)
    with pytest.raises(DamagedCheckpointError) as refused:
        verified_checkpoint("ckpt_path=last", run.last_checkpoint, run_last=run.last_checkpoint)
    message = str(refused.value)
    assert "\n" not in message and str(run.last_checkpoint) in message and "no intact checkpoint" in message
    assert "start a new run" in message and CHECKSUMS in message
    assert run.last_checkpoint.is_file()  # nothing moved when nothing can be resumed


def test_a_checkpoint_without_checksum_resumes_with_a_notice(tmp_path, caplog):
    """Written by an earlier fpnas (no checksums.sha256), or copied by hand without the list."""
    old = tmp_path / "old" / "checkpoints" / "last.ckpt"
    old.parent.mkdir(parents=True)
    torch.save(state(5), old)
    run = saved_run(tmp_path / "new")
    copied = run.last_checkpoint.parent / "copy.ckpt"  # another run's, beside a list that does not name it
    copied.write_bytes(old.read_bytes())
    with caplog.at_level(logging.INFO, logger="fpnas"):
        assert verified_checkpoint("ckpt_path=last", old, run_last=old) == str(old)
        assert verified_checkpoint(f"ckpt_path={copied}", copied) == str(copied)
    lines = notices(caplog)
    assert len(lines) == 2 and all("could not be verified" in n and "unverified" in n for n in lines)
    assert str(old) in lines[0] and str(copied) in lines[1]
    # its next save keeps it as previous.ckpt (unlisted: it was never verified) and lists the new one
    generations_io(old).save_checkpoint(state(6), old)
    assert checksum_status(old) == "verified" and checksum_status(previous_generation(old)) == "unverified"


ENOSPC = OSError(errno.ENOSPC, "No space left on device")


@pytest.mark.parametrize("where", ["torch.save", "fsync of the data", "fsync of the list"])
def test_a_full_disk_is_one_line_naming_the_file_and_the_free_space(tmp_path, monkeypatch, capsys, where):
    run = saved_run(tmp_path, saves=2)
    last = run.last_checkpoint
    log_file = tmp_path / "search.log"
    handler = logging.FileHandler(log_file)  # what Hydra attaches: the run's log file
    logging.getLogger().addHandler(handler)
    if where == "torch.save":

        def full(obj, f, *args, **kwargs):
            f.write(b"PK" * 1000)
            raise ENOSPC

        monkeypatch.setattr(torch, "save", full)
    else:
        calls, fsync = [], os.fsync
        fail_at = 0 if where == "fsync of the data" else 1

        def full_fsync(fd):
            calls.append(fd)
            if len(calls) - 1 == fail_at:
                raise ENOSPC
            return fsync(fd)

        monkeypatch.setattr(os, "fsync", full_fsync)
    try:
        with pytest.raises(SystemExit) as stop:
            run_reporting_user_errors(lambda: generations_io(last).save_checkpoint(state(3), last))
    finally:
        logging.getLogger().removeHandler(handler)
        handler.close()
        monkeypatch.undo()
    assert stop.value.code == 2
    [line] = capsys.readouterr().err.strip().splitlines()  # one line, no traceback
    assert line.startswith(f"error: could not save the checkpoint {last}: [Errno 28] No space left on device")
    assert re.search(
        rf"; {re.escape(str(last.parent))} has [\d.]+ [MG]iB free, the last checkpoint \(last.ckpt\) is ", line
    )
    assert "ckpt_path=last" in line
    assert log_file.read_text().count("could not save the checkpoint") == 1
    # a checkpoint that verifies is left, and no temporary file
    used = verified_checkpoint("ckpt_path=last", last)
    assert checksum_status(used) == "verified" and step_of(used) in (2, 3)
    assert not [p for p in last.parent.iterdir() if p.name.endswith(".tmp")]


def test_the_error_of_a_save_keeps_its_cause_when_it_is_not_the_file_system(tmp_path):
    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("not a file system error")

    run = saved_run(tmp_path, saves=1)
    with pytest.raises(RuntimeError, match="not a file system error"):
        generations_io(run.last_checkpoint).save_checkpoint({"x": Unpicklable()}, run.last_checkpoint)
    assert step_of(verified_checkpoint("ckpt_path=last", run.last_checkpoint)) == 1


def test_stale_temporary_files_of_dead_processes_are_removed(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        names = [f".last.ckpt.{dead.pid}.tmp", f".checksums.sha256.{dead.pid}.tmp", f".last.ckpt.{os.getpid()}.tmp"]
        for name in [*names, f".last.ckpt.{live.pid}.tmp", "notes.tmp", "last.ckpt"]:
            (tmp_path / name).write_bytes(b"x")
        removed = remove_stale_temporaries(tmp_path)
        assert sorted(p.name for p in removed) == sorted(names)
        assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
            [f".last.ckpt.{live.pid}.tmp", "last.ckpt", "notes.tmp"]
        )
    finally:
        live.kill()
        live.wait()


class Killed(BaseException):
    """The process died (raised where the kill lands; no ``except Exception`` handles it)."""


def _save_killed_before_call(monkeypatch, last: Path, step: int, k: int, hard_links: bool) -> bool:
    """Save ``state(step)``, killed before its ``k``-th file-system call (fsync, link, rename, unlink): the
    call and every later one (the ``finally`` blocks' clean-up, which a real kill never runs) do nothing.
    True when the save finished first."""
    count, dead = [0], [False]

    def killing(fn):
        def call(*args, **kwargs):
            if dead[0]:
                return None
            if count[0] == k:
                dead[0] = True
                raise Killed
            count[0] += 1
            return fn(*args, **kwargs)

        return call

    def no_link(*args, **kwargs):
        raise OSError(errno.EPERM, "Operation not permitted")

    with monkeypatch.context() as patch:
        for name in ("fsync", "link", "replace", "rename", "unlink"):
            patch.setattr(os, name, killing(getattr(os, name) if hard_links or name != "link" else no_link))
        try:
            generations_io(last).save_checkpoint(state(step), last)
        except Killed:
            return False
    return True


@pytest.mark.parametrize("hard_links", [True, False], ids=["hard links", "renames only"])
def test_a_kill_at_any_step_of_a_save_leaves_a_verified_checkpoint(tmp_path, monkeypatch, hard_links):
    """Killed before each file-system call of a save in turn (writing, the list, the rotation, the
    rename): the run resumes from a checkpoint that verifies (the new one or the one before), and its
    next save leaves the clean state."""
    for k in range(40):
        run = saved_run(tmp_path / str(k), saves=2)
        last = run.last_checkpoint
        finished = _save_killed_before_call(monkeypatch, last, 3, k, hard_links)
        used = verified_checkpoint("ckpt_path=last", last, run_last=last)
        assert checksum_status(used) == "verified", (k, used)
        assert step_of(used) in ((3,) if finished else (2, 3)), k
        for tmp in last.parent.glob(f".*.{os.getpid()}.tmp"):  # the killed process's: as if another pid
            tmp.rename(tmp.with_name(tmp.name.replace(str(os.getpid()), "999999999")))
        remove_stale_temporaries(last.parent)
        assert not [p.name for p in last.parent.iterdir() if p.name.endswith(".tmp")], k
        generations_io(last).save_checkpoint(state(4), last)
        assert checksum_status(last) == checksum_status(run.previous_checkpoint) == "verified", k
        assert step_of(last) == 4 and step_of(run.previous_checkpoint) in (2, 3), k
        listed = {n for _, n in read_checksums(last.parent)}
        assert listed == {"last.ckpt", "previous.ckpt"}, (k, listed)
        if finished:
            break
    else:
        pytest.fail("the save never finished")
    assert k >= 5  # every step of the save was cut at least once


class PoisonAfterResume(pl.Callback):
    """Sets a weight to NaN at the first training step of a resumed fit: a checkpoint damaged where no
    checksum could tell."""

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.ckpt_path:
            with torch.no_grad():
                next(pl_module.supernet.parameters()).fill_(float("nan"))


class StopAtStep(pl.Callback):
    """Stops the fit before training step ``step`` + 1 with an error (as a crash does: no save)."""

    def __init__(self, step: int):
        self.step = step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.fit_loop.epoch_loop.batch_progress.total.processed == self.step:
            raise RuntimeError(f"stopped at step {self.step}")


class DiskFullAtEpoch(pl.Callback):
    """From the end of epoch ``epoch`` on, ``torch.save`` fails as on a full disk (before LastCheckpoint's save,
    which Lightning runs after the other callbacks)."""

    def __init__(self, epoch: int):
        self.epoch = epoch

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if trainer.current_epoch >= self.epoch:

            def full(obj, f, *args, **kwargs):
                f.write(b"\0" * 4096)
                raise OSError(errno.ENOSPC, "No space left on device")

            torch.save = full


def test_a_search_resumes_from_the_previous_checkpoint_and_names_it_when_it_diverges(tmp_path, cfg_search, caplog):
    """In process: a 3-epoch search (2 steps an epoch) that crashed in its third epoch leaves last.ckpt (step
    4) and previous.ckpt (step 2); with last.ckpt damaged, `ckpt_path=last` resumes from previous.ckpt and ends
    with the tensors of the straight run; a NaN right after a resume names the checkpoint it resumed from."""
    from fpnas.search.run import run_search

    base = [*MICRO, "callbacks.search_plots.every_n_epochs=0", "callbacks.checkpoint.every_n_steps=0"]
    base += ["trainer.max_epochs=3"]
    straight, run_dir = tmp_path / "straight", tmp_path / "run"
    run_search(cfg_search(*base, out=straight))
    crash = ["+callbacks.crash._target_=tests.test_checkpoint_integrity.StopAtStep", "+callbacks.crash.step=4"]
    with pytest.raises(RuntimeError, match="stopped at step 4"):
        run_search(cfg_search(*base, *crash, out=run_dir))
    run = RunDir(run_dir)
    assert int(torch.load(run.last_checkpoint, weights_only=False)["state_dict"]["steps_done"]) == 4
    assert int(torch.load(run.previous_checkpoint, weights_only=False)["state_dict"]["steps_done"]) == 2
    garbage_4k(run.last_checkpoint)
    stale = run.last_checkpoint.with_name(".last.ckpt.999999999.tmp")  # a pid that cannot run
    stale.write_bytes(b"cut short")
    with caplog.at_level(logging.INFO, logger="fpnas"):
        run_search(cfg_search(*base, "ckpt_path=last", out=run_dir))
    assert any(str(run.last_checkpoint) in n and str(run.previous_checkpoint) in n for n in notices(caplog))
    assert not stale.exists()
    a = torch.load(straight / "checkpoints" / "last.ckpt", weights_only=False)["state_dict"]
    b = torch.load(run.last_checkpoint, weights_only=False)["state_dict"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert checksum_status(run.last_checkpoint) == checksum_status(run.previous_checkpoint) == "verified"

    poison = ["+callbacks.poison._target_=tests.test_checkpoint_integrity.PoisonAfterResume"]
    with pytest.raises(NonFiniteLossError) as diverged:
        run_search(cfg_search(*base, "trainer.max_epochs=4", "ckpt_path=last", *poison, out=run_dir))
    message = str(diverged.value)
    assert f"the run resumed from {run.last_checkpoint}" in message and "may be damaged" in message
    assert str(run.previous_checkpoint) in message and "optim.omega.lr" in message


def test_a_full_disk_during_a_search_is_one_line_in_the_console_and_search_log(tmp_path):
    """End to end (search.py): no traceback, the line in search.log too, the checkpoint before it intact."""
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "search.py"),
            f"hydra.run.dir={tmp_path}",
            *MICRO,
            *QUICK_SEARCH,
            "trainer.max_epochs=3",
            "callbacks.search_plots.every_n_epochs=0",
            "+callbacks.full._target_=tests.test_checkpoint_integrity.DiskFullAtEpoch",
            "+callbacks.full.epoch=1",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=clean_env(OMP_NUM_THREADS="1"),
        timeout=600,
    )
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr + proc.stdout
    line = proc.stderr.strip().splitlines()[-1]
    last = tmp_path / "checkpoints" / "last.ckpt"
    assert line.startswith(f"error: could not save the checkpoint {last}: [Errno 28] No space left on device")
    assert "free" in line and "the last checkpoint (last.ckpt) is" in line
    assert (tmp_path / "search.log").read_text().count("could not save the checkpoint") == 1
    assert checksum_status(last) == "verified"
    assert int(torch.load(last, weights_only=False)["state_dict"]["steps_done"]) == 2
