"""A run is never mixed, lost or silently altered: one owner per run directory, resumes that continue the
computation their checkpoint holds, finished runs kept as they are, and sweeps that finish when run again."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fpnas.errors import ConfigError
from fpnas.runtime.lock import LOCK_NAME, STALE_AFTER_S, RunLock
from fpnas.runtime.settings import run_settings, settings_differences
from tests.helpers import MICRO, QUICK_SEARCH, clean_env, compose_config

ROOT = Path(__file__).resolve().parents[1]
ENV = clean_env(OMP_NUM_THREADS="1")
RUN = [*MICRO, *QUICK_SEARCH, "trainer.max_epochs=2", "callbacks.search_plots.every_n_epochs=0"]


def search(run_dir: Path, *overrides: str, multirun: bool = False, timeout: int = 600) -> subprocess.CompletedProcess:
    where = f"hydra.sweep.dir={run_dir}" if multirun else f"hydra.run.dir={run_dir}"
    cmd = [sys.executable, str(ROOT / "search.py"), *(["-m"] if multirun else []), where, *overrides]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=ENV, timeout=timeout)


def snapshot(run_dir: Path) -> dict[str, tuple[int, str]]:
    """Every file of ``run_dir``: (modification time in ns, SHA-256); the lock's time is its owner's heartbeat."""
    return {
        str(p.relative_to(run_dir)): (
            0 if p.name == LOCK_NAME else p.stat().st_mtime_ns,
            hashlib.sha256(p.read_bytes()).hexdigest(),
        )
        for p in sorted(run_dir.rglob("*"))
        if p.is_file()
    }


# ----------------------------------------------------------------------------- the lock
def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def write_lock(run_dir: Path, **owner) -> Path:
    path = run_dir / LOCK_NAME
    path.write_text(json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "started": "then"} | owner))
    return path


def test_the_lock_refuses_a_live_owner_and_takes_over_a_dead_ones(tmp_path):
    """On this host: a lock whose process runs refuses, naming it; one whose process has ended is taken over
    with a notice. Released, the lock file is gone."""
    write_lock(tmp_path, pid=os.getppid(), program="search.py")  # a process that runs (pytest's parent)
    with pytest.raises(ConfigError, match=rf"is in use by another run \(search.py pid {os.getppid()} on "):
        RunLock(tmp_path, "search.py").acquire()
    write_lock(tmp_path, pid=dead_pid())
    lock = RunLock(tmp_path, "search.py").acquire()
    assert "took over the lock" in lock.notice and "has ended" in lock.notice
    assert json.loads((tmp_path / LOCK_NAME).read_text())["pid"] == os.getpid()
    with pytest.raises(ConfigError, match="in use by another run"):  # ours now: a second taker is refused
        RunLock(tmp_path, "train.py").acquire()
    lock.release()
    assert not (tmp_path / LOCK_NAME).exists()


def test_a_lock_from_another_host_is_stale_only_when_its_owner_stopped_refreshing_it(tmp_path):
    """Another host's process cannot be asked: its lock counts as held while it is refreshed (every 30 s)."""
    path = write_lock(tmp_path, host="elsewhere.cluster", pid=1)
    with pytest.raises(ConfigError, match="on elsewhere.cluster"):
        RunLock(tmp_path, "search.py").acquire()
    old = time.time() - STALE_AFTER_S - 60
    os.utime(path, (old, old))
    lock = RunLock(tmp_path, "search.py").acquire()
    assert "not refreshed for" in lock.notice
    lock.release()


def test_a_second_search_in_a_busy_run_dir_is_refused_and_writes_nothing(tmp_path):
    """Two searches started in one directory: while the first runs, a second one (new, or ckpt_path=last)
    exits 2 with one line naming the owner and leaves every file of the directory as it was."""
    run_dir, go = tmp_path / "run", tmp_path / "go"
    first = subprocess.Popen(
        [sys.executable, str(ROOT / "search.py"), f"hydra.run.dir={run_dir}", *RUN]
        + [
            "+callbacks.pause._target_=tests.helpers.PauseAtStep",
            "+callbacks.pause.step=3",
            f"+callbacks.pause.until={go}",
        ],
        cwd=ROOT,
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 300
        while not Path(f"{go}.paused").exists():
            assert first.poll() is None and time.monotonic() < deadline, first.communicate()[1][-3000:]
            time.sleep(0.1)
        before = snapshot(run_dir)
        assert LOCK_NAME in before and "checkpoints/last.ckpt" in before  # epoch 0 saved, epoch 1 running
        for extra in (["seed=1"], ["ckpt_path=last"]):
            proc = search(run_dir, *RUN, *extra)
            assert proc.returncode == 2, proc.stderr[-3000:]
            error = proc.stderr.strip().splitlines()[-1]
            assert error.startswith(
                f"error: hydra.run.dir={run_dir} is in use by another run (search.py pid {first.pid}"
            )
            assert snapshot(run_dir) == before
    finally:
        go.touch()
        out, err = first.communicate(timeout=600)
    assert first.returncode == 0, err[-3000:]
    assert not (run_dir / LOCK_NAME).exists()
    assert json.loads((run_dir / "search_summary.json").read_text())["epochs"] == 2


# ----------------------------------------------------------------------------- settings on resume
def test_settings_are_the_config_without_what_a_resume_may_change():
    cfg = compose_config("search", "/tmp/unused", *MICRO)
    settings = run_settings(cfg, world_size=2)
    assert settings["seed"] == 0 and settings["processes"] == 2 and settings["cost.constraints.flops.target"] == 0.08
    assert settings["space.name"] == "micro" and settings["data.batch_size"] == 64
    assert not [k for k in settings if k.startswith(("trainer.", "callbacks.", "logger", "export.", "paths."))]
    other = run_settings(compose_config("search", "/tmp/elsewhere", *MICRO, "seed=3", "trainer.max_epochs=9"), 1)
    assert settings_differences(settings, other) == ["processes: 2 -> 1", "seed: 0 -> 3"]
    assert settings_differences({"a": 1, "old": 2}, {"a": 1, "new": 3}) == []  # options of other versions


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """A finished 2-epoch search."""
    run_dir = tmp_path_factory.mktemp("finished")
    proc = search(run_dir, *RUN)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return run_dir


def test_resume_refuses_a_checkpoint_computed_with_other_settings(finished, tmp_path):
    """A run dir whose .hydra/overrides.yaml another run overwrote (seed=1) no longer matches its checkpoint:
    the resume is refused, naming the difference; so is a checkpoint resumed with another process count
    (the global batch would change) or from another directory with another target."""
    run_dir = tmp_path / "mixed"
    subprocess.run(["cp", "-r", str(finished), str(run_dir)], check=True)
    overrides = run_dir / ".hydra" / "overrides.yaml"
    overrides.write_text(
        overrides.read_text().replace("- cost.target_mflops=0.08", "- cost.target_mflops=0.08\n- seed=1")
    )
    before = snapshot(run_dir)
    proc = search(run_dir, "ckpt_path=last", "trainer.max_epochs=3")
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "was written with other settings (seed: 0 -> 1)" in proc.stderr
    assert snapshot(run_dir) == before
    ckpt = finished / "checkpoints" / "last.ckpt"
    proc = search(
        tmp_path / "ddp", *RUN, f"ckpt_path={ckpt}", "trainer=ddp_cpu", "trainer.devices=2", "trainer.max_epochs=3"
    )
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "(processes: 1 -> 2)" in proc.stderr and "global batch would change from 1 x 64 to 2 x 64" in proc.stderr
    proc = search(tmp_path / "other", *RUN, f"ckpt_path={ckpt}", "cost.target_mflops=0.1", "trainer.max_epochs=3")
    assert proc.returncode == 2 and "cost.constraints.flops.target: 0.08 -> 0.1" in proc.stderr, proc.stderr[-3000:]


def test_a_finished_run_resumed_is_kept_as_it_is(finished):
    """auto_resume=true (or ckpt_path=last) on a finished run says so and exits 0 without touching a file;
    with more epochs it continues."""
    before = snapshot(finished)
    for extra in ("auto_resume=true", "ckpt_path=last"):
        proc = search(finished, *RUN, extra)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert "holds a finished run (2 epochs, search_summary.json): kept as it is" in proc.stderr
        assert snapshot(finished) == before


@pytest.mark.slow
def test_a_killed_sweep_run_again_keeps_finished_jobs_resumes_the_cut_one_and_runs_the_rest(tmp_path):
    """A 3-job sweep stopped by SIGTERM inside job 1: the same command run again keeps job 0 untouched, resumes
    job 1 from its checkpoint and runs job 2; the sweep summary has every job's own result."""
    sweep = [*RUN, "trainer.max_epochs=3", "cost.target_mflops=0.06,0.08,0.1"]
    cmd = [sys.executable, str(ROOT / "search.py"), "-m", f"hydra.sweep.dir={tmp_path}", *sweep]
    first = subprocess.Popen(cmd, cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    cut = tmp_path / "1" / "checkpoints" / "last.ckpt"
    deadline = time.monotonic() + 600
    while not cut.exists():  # job 0 finished, job 1 saved its first epoch
        assert first.poll() is None and time.monotonic() < deadline, first.communicate()[1][-3000:]
        time.sleep(0.05)
    first.send_signal(signal.SIGTERM)
    _, err = first.communicate(timeout=600)
    assert first.returncode == 143, err[-3000:]
    assert not (tmp_path / "1" / "search_summary.json").exists() and not (tmp_path / "2").exists()
    job0 = snapshot(tmp_path / "0")
    proc = subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "holds a finished run" in proc.stderr and "auto_resume: continuing from" in proc.stdout + proc.stderr
    assert snapshot(tmp_path / "0") == job0
    for job in ("1", "2"):
        summary = json.loads((tmp_path / job / "search_summary.json").read_text())
        assert summary["epochs"] == 3 and summary["steps"] == 6 and summary["val_acc"] == summary["val_acc"]
    rows = (tmp_path / "sweep_summary.csv").read_text().splitlines()
    assert len(rows) == 4 and "nan" not in "".join(rows[1:]).lower()
