"""One owner per run directory: ``<run dir>/.lock``, held for the life of a run.

Two runs writing into one directory mix their checkpoints, logs and architectures into something
neither computed, so a run takes the lock before it writes anything and a second one is refused.
The lock file says who holds it (host, pid, the process's start time, when it started, the command);
the owner refreshes its modification time every :data:`HEARTBEAT_S` seconds. A lock is stale, and taken
over with a notice, when its owner is gone: on this host, no process with that pid and start time; from
another host (a shared file system), no refresh for :data:`STALE_AFTER_S` seconds.

``fcntl.flock`` is not used: it is not reliable on the network file systems clusters share run
directories on, while creating a file with ``O_EXCL`` is.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

from fpnas.errors import ConfigError

LOCK_NAME = ".lock"
HEARTBEAT_S = 30.0
STALE_AFTER_S = 300.0


def process_start_time(pid: int) -> str | None:
    """The start time of process ``pid`` in clock ticks since boot (Linux ``/proc``), or None: with the pid
    it names one process, so a pid reused by another process is not taken for the lock's owner."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]  # field 22, counted after the command name


def process_alive(pid: int, start: str | None = None) -> bool:
    """Whether process ``pid`` runs on this host (and, with ``start``, is still the process that started then:
    not another one that reuses the pid). Another user's process counts as running."""
    if pid <= 0 or os.name == "nt":  # os.kill(0, 0) would signal the process group; Windows: assume it runs
        return pid > 0
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        pass
    except (OSError, OverflowError):
        return False
    now = process_start_time(pid)
    return start is None or now is None or now == start


class RunLock:
    """The lock of ``run_dir``: :meth:`acquire` takes it (or raises :class:`ConfigError` naming the owner),
    :meth:`release` gives it back; a context manager. Only the launching process of a run takes it (rank 0
    of node 0); the processes a launcher starts for the same run do not."""

    def __init__(self, run_dir: str | Path, program: str):
        self.path = Path(run_dir) / LOCK_NAME
        self.program = program
        self.notice: str | None = None  # set when a stale lock was taken over
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._mine: dict | None = None

    def _record(self) -> dict:
        return {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "process_start": process_start_time(os.getpid()),
            "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
            "program": self.program,
            "argv": sys.argv[1:],
        }

    def _read(self) -> dict | None:
        try:
            return json.loads(self.path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return {}  # being written, or damaged: judged by its age

    def _stale(self, owner: dict) -> str | None:
        """Why the lock of ``owner`` is stale, or None when its owner may still run."""
        try:
            age = time.time() - self.path.stat().st_mtime
        except FileNotFoundError:
            return "released"
        if owner.get("host") == socket.gethostname() and isinstance(owner.get("pid"), int):
            if not process_alive(owner["pid"], owner.get("process_start")):
                return f"its process {owner['pid']} on this host has ended"
            return None
        if age > STALE_AFTER_S:
            return f"not refreshed for {age / 60:.0f} min"
        return None

    def _create(self) -> bool:
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        self._mine = self._record()
        with os.fdopen(fd, "w") as f:
            json.dump(self._mine, f)
            f.write("\n")
        return True

    def acquire(self) -> RunLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(5):  # a lock released or taken over between the steps: look again
            if self._create():
                self._start_heartbeat()
                return self
            owner = self._read()
            if owner is None:
                continue
            why = self._stale(owner)
            if why is None:
                raise ConfigError(self._refusal(owner))
            # take over: move the stale lock aside under a name of our own (one taker wins the rename),
            # check it is the one judged stale, then create ours
            aside = self.path.with_name(f"{LOCK_NAME}.stale.{os.getpid()}")
            try:
                os.rename(self.path, aside)
            except FileNotFoundError:
                continue
            try:
                moved = json.loads(aside.read_text() or "{}")
            except (OSError, ValueError):
                moved = {}  # unreadable, as it was judged
            if moved != owner:  # another run took it over first: put its lock back, and look again
                try:
                    os.link(aside, self.path)
                except FileExistsError:
                    pass
                aside.unlink(missing_ok=True)
                continue
            aside.unlink(missing_ok=True)
            self.notice = (
                f"[fpnas] took over the lock of {self.path.parent} from {_describe(owner)}: {why} "
                "(the run it left resumes from its checkpoint)"
            )
        raise ConfigError(f"{self.path} keeps changing: another run is starting in {self.path.parent}")

    def _refusal(self, owner: dict) -> str:
        return (
            f"hydra.run.dir={self.path.parent} is in use by another run ({_describe(owner)}): two runs in one "
            f"directory would mix their files; wait for it, stop it, or give another hydra.run.dir (if that run "
            f"is gone, delete {self.path})"
        )

    def _start_heartbeat(self) -> None:
        def beat():
            while not self._stop.wait(HEARTBEAT_S):
                try:
                    os.utime(self.path)
                except OSError:
                    pass

        self._thread = threading.Thread(target=beat, name="fpnas-run-lock", daemon=True)
        self._thread.start()

    def release(self) -> None:
        self._stop.set()
        if self._mine is not None and self._read() == self._mine:
            self.path.unlink(missing_ok=True)
        self._mine = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def _describe(owner: dict) -> str:
    if not owner:
        return "an unreadable lock file"
    return (
        f"{owner.get('program', 'a run')} pid {owner.get('pid')} on {owner.get('host')}, started {owner.get('started')}"
    )


def launching_process() -> bool:
    """Whether this process starts the run (not a process a launcher started for it: DDP ranks > 0, other
    nodes, SLURM tasks > 0), from the environment variables the launchers set."""
    for key in ("RANK", "SLURM_PROCID", "LOCAL_RANK", "NODE_RANK", "GROUP_RANK"):
        value = os.environ.get(key)
        if value not in (None, "", "0"):
            return False
    return True


@contextmanager
def run_lock(run_dir: str | Path, program: str):
    """Hold ``run_dir``'s lock for the block (in the launching process only; see :class:`RunLock`)."""
    if not launching_process():
        yield None
        return
    lock = RunLock(run_dir, program).acquire()
    try:
        if lock.notice:
            logging.getLogger("fpnas").warning(lock.notice)
        yield lock
    finally:
        lock.release()
