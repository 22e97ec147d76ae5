"""How many intra-op threads a CPU run uses (``threads=auto|load|N``).

Float sums depend on the thread count, so the count is part of what a seed reproduces. ``auto`` (the
default) takes it from the machine alone: the cores this process may use (its affinity mask, at most
``OMP_NUM_THREADS`` when that is set), fixed for the run, so the same command and seed give the same
search on one machine whatever else it is doing. ``load`` adapts to the load instead: the cores nobody
else is using, counted when the run starts and again every few seconds (:class:`ThreadPolicy`). The
default search is made of many small ops whose parallel regions end at a barrier; when another process
holds one of the cores, every barrier waits for the scheduler (a step measured 35 ms with 1 thread took
~1,000 ms with 2 threads beside one busy process: benchmarks/threads.py), so ``load`` is much faster on
a shared machine, at the price of results that follow the load. A fixed ``N`` is left alone.
"""

from __future__ import annotations

import os
import time

import pytorch_lightning as pl
from pytorch_lightning.utilities import rank_zero_info

from fpnas.errors import ConfigError


def usable_cores() -> int:
    """Cores this process may use: its affinity mask where the OS has one, at most
    ``OMP_NUM_THREADS`` when the environment sets it (the user's, or a launcher's, decision)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        cores = os.cpu_count() or 1
    cap = os.environ.get("OMP_NUM_THREADS", "")
    return max(1, min(cores, int(cap))) if cap.isdigit() and int(cap) > 0 else cores


POLICIES = ("auto", "load")


def parse_threads(value) -> int | str:
    """``auto`` / ``load`` -> that policy's name, a positive integer -> itself; anything else is a
    one-line ConfigError."""
    if isinstance(value, str) and value.strip().lower() in POLICIES:
        return value.strip().lower()
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, str))
        or not str(value).strip().isdigit()
        or int(value) < 1
    ):
        raise ConfigError(
            f"threads must be 'auto', 'load' or a positive integer (intra-op CPU threads), got {value!r}; "
            "e.g. threads=auto (the machine's cores), threads=load (the free ones) or threads=1"
        )
    return int(value)


class BusyCores:
    """Cores other processes keep busy, measured between two calls from the machine's CPU counters
    (``/proc/stat``) minus this process's own CPU time; ``None`` where there is no ``/proc/stat``.
    (psutil's ``cpu_times`` reads the same line; it is not a dependency, and one line is enough.)"""

    def __init__(self):
        self._last = self._sample()

    @staticmethod
    def _sample() -> tuple[float, float, float] | None:
        try:
            with open("/proc/stat") as f:
                fields = [float(v) for v in f.readline().split()[1:]]
        except (OSError, ValueError):
            return None
        tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0.0)  # idle + iowait
        own = sum(os.times()[:2])  # user + system CPU seconds of this process (all its threads)
        return time.monotonic(), idle / tick, own

    def since_last(self) -> float | None:
        """Average number of cores busy with other processes since the previous call."""
        now = self._sample()
        last, self._last = self._last, now
        if now is None or last is None or now[0] - last[0] <= 0:
            return None
        wall = now[0] - last[0]
        total = os.cpu_count() or 1
        busy_all = total - (now[1] - last[1]) / wall  # cores not idle
        return max(0.0, busy_all - (now[2] - last[2]) / wall)


def threads_for(others_busy: float | None, cores: int) -> int:
    """Threads for ``cores`` usable cores of which ``others_busy`` (on average) are taken."""
    if others_busy is None:
        return cores
    return max(1, min(cores, int(cores - others_busy + 0.5)))


def processes_per_node(trainer_cfg) -> int:
    """Processes one machine runs for ``trainer_cfg`` (``trainer.devices`` when it is a count or a list)."""
    devices = (trainer_cfg or {}).get("devices", 1)
    if isinstance(devices, int) and not isinstance(devices, bool):
        return max(1, devices)
    if isinstance(devices, str) and devices.strip().isdigit():
        return max(1, int(devices))
    if isinstance(devices, (list, tuple)) or hasattr(devices, "__len__") and not isinstance(devices, str):
        return max(1, len(devices))
    return 1


def apply_thread_policy(value, probe_seconds: float = 0.1, processes: int = 1) -> str:
    """Set torch's intra-op threads for ``threads=value`` before the run; returns the log text.

    ``auto``: the usable cores, shared by the ``processes`` of this machine (DDP ranks). ``load``: the
    usable cores minus those other processes keep busy over ``probe_seconds``."""
    import torch

    policy = parse_threads(value)
    if isinstance(policy, int):
        torch.set_num_threads(policy)
        return f"threads={policy}"
    cores = usable_cores()
    if policy == "auto":
        n = max(1, cores // max(1, processes))
        torch.set_num_threads(n)
        share = f" shared by {processes} processes" if processes > 1 else ""
        return f"threads=auto: {n} (the {cores} usable cores{share}; threads=load follows other processes' load)"
    probe = BusyCores()
    time.sleep(probe_seconds)
    others = probe.since_last()
    n = threads_for(others, cores)
    torch.set_num_threads(n)
    seen = "" if others is None else f", {others:.1f} busy with other processes"
    return f"threads=load: {n} of {cores} usable cores{seen}"


class ThreadPolicy(pl.Callback):
    """``threads=load`` during the run: every ``every_seconds``, counts the cores other processes
    took since the last check and sets the intra-op threads to the free ones (logged when it
    changes). Reading two counters costs microseconds; nothing is done for ``auto`` or a fixed N."""

    def __init__(self, threads="auto", every_seconds: float = 5.0):
        self.auto = parse_threads(threads) == "load"
        self.every_seconds = float(every_seconds)
        self._probe: BusyCores | None = None
        self._checked = 0.0

    def on_train_start(self, trainer, pl_module) -> None:
        if self.auto:
            self._probe, self._checked = BusyCores(), time.monotonic()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self._probe is None or time.monotonic() - self._checked < self.every_seconds:
            return
        import torch

        self._checked = time.monotonic()
        n = threads_for(self._probe.since_last(), usable_cores())
        if n != torch.get_num_threads():
            rank_zero_info(
                f"[fpnas] threads=load: {torch.get_num_threads()} -> {n} intra-op threads "
                "(other processes' use of the cores changed)"
            )
            torch.set_num_threads(n)
