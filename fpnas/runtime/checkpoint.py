"""Never lose a run: ``last.ckpt`` kept current and written atomically, and the exit status of an interrupt.

Lightning 2.6's ``ModelCheckpoint`` is not used: with ``save_top_k: 0`` it writes ``last.ckpt`` only
at the end of the fit, it takes one trigger (epochs, steps or time), and it versions file names
(``last-v1.ckpt``) instead of replacing the run's checkpoint. Lightning's own atomic save goes through
a temporary file in the system's temp directory and ``shutil.move``, which is a plain copy when that
directory is on another file system (a cluster's local ``/tmp`` vs the shared run directory).

Verified generations: each save of the run's checkpoint keeps the one it replaces as ``previous.ckpt`` and
records the SHA-256 of both in ``checksums.sha256`` beside them (``sha256sum`` format); a resume checks the
file first and falls back to ``previous.ckpt`` when ``last.ckpt`` is damaged (:func:`verified_checkpoint`).
The steps of a save, and what a kill at each leaves: :func:`save_generation`.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import shutil
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning_fabric.utilities.rank_zero import _get_rank
from pytorch_lightning.callbacks import Checkpoint
from pytorch_lightning.utilities import rank_zero_info

from fpnas.errors import CheckpointWriteError, ConfigError, DamagedCheckpointError, find_cause
from fpnas.runtime.lock import process_alive

log = logging.getLogger("fpnas")

CHECKSUMS = "checksums.sha256"  # beside the checkpoints: "<sha256>  <file name>" lines, as sha256sum writes them
# SHA-256 rather than BLAKE2b: hashlib's sha256 runs on the CPU's SHA instructions (x86 SHA-NI, ARMv8 crypto
# extensions), about 1.7 GB/s against blake2b's 0.6 GB/s in 1 MiB chunks on a 2-core x86 VM (blake2b is
# faster only on CPUs without them), so reading the file back and hashing it stays a fraction of writing
# and fsync-ing it; and `sha256sum -c checksums.sha256` checks the files by hand on any machine.
HASH_CHUNK = 1 << 20  # files are hashed in 1 MiB reads: flat memory for checkpoints of any size
_TEMPORARY = re.compile(r"\.(?P<name>.+)\.(?P<pid>\d+)\.tmp")  # .<name>.<pid>.tmp, as _temporary names them
_LISTED = re.compile(r"(?P<digest>[0-9a-f]{64}) [ *](?P<name>.+)")
_digests: dict[tuple, str] = {}  # file identity -> SHA-256 of the files this process wrote or hashed

# exit statuses of an interrupted run, as a shell reports a process killed by the signal (128 + signal)
EXIT_SIGINT, EXIT_SIGTERM = 128 + signal.SIGINT, 128 + signal.SIGTERM


class AtomicCheckpointIO(TorchCheckpointIO):
    """``torch.save`` to a temporary file beside the target, flushed to disk, then ``os.replace``:
    a kill at any moment leaves either the previous checkpoint or the new one, never a damaged file.

    The paths in ``generations`` (:class:`LastCheckpoint` adds its own) are saved by :func:`save_generation`:
    the replaced file kept as ``previous.ckpt``, both listed with their SHA-256. A save that fails for the
    file system (a full disk, a quota, a read-only mount) raises :class:`~fpnas.errors.CheckpointWriteError`."""

    def __init__(self):
        super().__init__()
        self.generations: set[str] = set()  # absolute paths

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        if storage_options is not None:
            raise TypeError("AtomicCheckpointIO.save_checkpoint takes no storage_options")
        if os.path.abspath(path) in self.generations:
            save_generation(checkpoint, path)
        else:
            atomic_torch_save(checkpoint, path)


def atomic_torch_save(obj: Any, path) -> None:
    path = Path(path)
    with _reporting_write_errors(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = _temporary(path)
        try:
            _write_synced(tmp, lambda f: torch.save(obj, f))
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
    _fsync_directory(path.parent)


def save_generation(obj: Any, path) -> None:
    """``torch.save`` ``obj`` to ``path`` (``last.ckpt``), keeping the file it replaces as
    :func:`previous_generation` (``previous.ckpt``) and the SHA-256 of both in ``checksums.sha256``.

    A file verifies when its digest is any one listed (:func:`checksum_status`), so every step leaves a
    checkpoint that verifies; the steps, and what a kill right after each leaves (N = this save):

    1. write ``.last.ckpt.<pid>.tmp``, fsync, hash it: last (N-1) and previous (N-2) as they were
    2. list N as last.ckpt, N-1 and N-2 as previous.ckpt (temporary file, fsync, rename): both verify
    3. previous.ckpt <- last.ckpt, a hard link (a rename where the file system has none: last.ckpt is then
       missing until step 4 and a resume falls back to previous.ckpt, N-1): both verify, both N-1
    4. last.ckpt <- the temporary file: last (N) and previous (N-1) verify
    5. list N as last.ckpt, N-1 as previous.ckpt: the clean state

    A ``last.ckpt`` that was not listed (an earlier fpnas's) is kept as previous.ckpt unlisted (it could not
    be verified before either); one that fails its checksum is replaced, not kept. The temporary files a
    kill leaves are removed when the next run starts (:func:`remove_stale_temporaries`).
    """
    path = Path(path)
    directory, previous = path.parent, previous_generation(path)
    with _reporting_write_errors(path):
        directory.mkdir(parents=True, exist_ok=True)
        tmp = _temporary(path)
        try:
            _write_synced(tmp, lambda f: torch.save(obj, f))  # 1
            digest = file_digest(tmp)
            listed = read_checksums(directory)
            others = [(d, n) for d, n in listed or [] if n not in (path.name, previous.name)]
            kept = [(d, n) for d, n in listed or [] if n == previous.name]
            status = checksum_status(path) if path.is_file() else "missing"  # hashed already: remembered
            if status == "verified":
                old = [(file_digest(path), previous.name)]
                step2, step5 = [(digest, path.name), *old, *kept, *others], [(digest, path.name), *old, *others]
            elif status == "unverified":  # nothing to vouch for: previous.ckpt becomes that file, unlisted
                step2, step5 = others, [(digest, path.name), *others]
            else:  # missing, or damaged since it was saved: previous.ckpt stays as it is
                if status == "damaged":
                    log.warning("%s no longer matches its checksum (damaged since it was saved): replaced", path)
                step2 = step5 = [(digest, path.name), *kept, *others]
            rotate = status in ("verified", "unverified")
            if listed is not None or step2:
                _write_checksums(directory, step2)  # 2
            if rotate:
                _rotate(path, previous)  # 3
            os.replace(tmp, path)  # 4
            _remember(path, digest)
            _write_checksums(directory, step5)  # 5
        finally:
            tmp.unlink(missing_ok=True)
    _fsync_directory(directory)


def previous_generation(path) -> Path:
    """The file that keeps the checkpoint ``path`` replaced: ``previous.ckpt`` beside ``last.ckpt``
    (:attr:`~fpnas.runtime.run_dir.RunDir.previous_checkpoint`), ``<stem>.previous<suffix>`` beside another."""
    path = Path(path)
    return path.with_name("previous.ckpt" if path.name == "last.ckpt" else f"{path.stem}.previous{path.suffix}")


def file_digest(path) -> str:
    """SHA-256 (hex) of the file ``path``, read in 1 MiB chunks; remembered for the file as it is (device,
    inode, size, times), so that a save does not hash again the checkpoint it keeps as previous.ckpt."""
    key = _identity(path)
    if key in _digests:
        return _digests[key]
    sha = hashlib.sha256()
    buffer = bytearray(HASH_CHUNK)
    view = memoryview(buffer)
    with open(path, "rb") as f:
        while n := f.readinto(buffer):
            sha.update(view[:n])
    digest = sha.hexdigest()
    _remember(path, digest, key)
    return digest


def read_checksums(directory) -> list[tuple[str, str]] | None:
    """``(sha256, file name)`` of every line of ``<directory>/checksums.sha256``; None without the file."""
    try:
        text = (Path(directory) / CHECKSUMS).read_text(errors="replace")
    except OSError:
        return None
    return [(m["digest"], m["name"]) for line in text.splitlines() if (m := _LISTED.fullmatch(line.strip()))]


def checksum_status(path) -> str:
    """``verified``: the SHA-256 of the file ``path`` is listed in the ``checksums.sha256`` beside it;
    ``damaged``: its name is listed with another digest (it changed since it was saved); ``unverified``: no
    list, or its name is not in it (written by an earlier fpnas, or copied without the list)."""
    path = Path(path)
    listed = read_checksums(path.parent)
    if not listed:
        return "unverified"
    if file_digest(path) in {d for d, _ in listed}:
        return "verified"
    return "damaged" if any(n == path.name for _, n in listed) else "unverified"


def verified_checkpoint(key: str, path, run_last=None) -> str:
    """The checkpoint to resume from for ``path`` (config ``key``, e.g. ``ckpt_path=last``), checked against
    its checksum: ``path`` when it verifies, or has no checksum (a one-line notice); when it is damaged or
    missing, the checkpoint saved before it (:func:`previous_generation`), with a notice naming both; when
    neither is intact, a :class:`~fpnas.errors.DamagedCheckpointError` naming the file and what to do.

    ``run_last``: the run's own ``last.ckpt``; when ``path`` is it and damaged, rank 0 moves it aside
    (``last.ckpt.damaged``), so that the run's next save keeps previous.ckpt instead of the damaged file."""
    path = Path(path)
    status = checksum_status(path) if path.is_file() else "missing"
    if status == "verified":
        return str(path)
    listing = path.parent / CHECKSUMS
    if status == "unverified":
        _notice(
            f"{key}: {path} could not be verified (no checksum for it in {listing}: written by an earlier fpnas, "
            "or copied by hand); resuming from it unverified"
        )
        return str(path)
    previous = previous_generation(path)
    fallback = checksum_status(previous) if previous.is_file() else "missing"
    why = (
        f"{path} is damaged (its SHA-256 is not the one in {listing})"
        if status == "damaged"
        else f"{path} is missing (a save was cut short, or it was moved away)"
    )
    if fallback in ("missing", "damaged"):
        earlier = (
            f"{previous}, saved before it, is damaged too"
            if fallback == "damaged"
            else "there is no checkpoint saved before it" + (f" ({previous.name})" if path.name == "last.ckpt" else "")
        )
        anyway = path if status == "damaged" else previous
        raise DamagedCheckpointError(
            f"{key}: {why} and {earlier}: no intact checkpoint to resume from; start a new run (another "
            f"hydra.run.dir), or, to load {anyway.name} anyway (e.g. put there on purpose), delete its line "
            f"in {listing}"
        )
    aside = ""
    if status == "damaged" and run_last is not None and path.resolve() == Path(run_last).resolve():
        if (_get_rank() or 0) == 0:
            damaged = path.with_name(path.name + ".damaged")
            try:
                os.replace(path, damaged)
            except OSError as exc:
                raise DamagedCheckpointError(
                    f"{key}: {why}; {previous} is intact but {path} could not be moved aside ({exc}): move it "
                    "away by hand, then resume with ckpt_path=last"
                ) from None
            aside = f"; the damaged file is kept as {damaged.name}"
        else:  # rank 0 moves it aside: wait, so that every rank sees the same run directory
            deadline = time.monotonic() + 120
            while path.exists() and time.monotonic() < deadline:
                time.sleep(0.2)
    unverified = "" if fallback == "verified" else f" (not verified either: no checksum for it in {listing})"
    _notice(f"{key}: {why}; resuming from {previous}, the checkpoint saved before it{unverified}{aside}")
    return str(previous)


def remove_stale_temporaries(directory) -> list[Path]:
    """Remove the temporary files (``.<name>.<pid>.tmp``) that a save killed half-way left in ``directory``:
    those of a process that no longer runs (or of this one: at the start of a run nothing of it is being
    written). Returns the files removed."""
    try:
        candidates = list(Path(directory).iterdir())
    except OSError:
        return []
    removed = []
    for file in candidates:
        match = _TEMPORARY.fullmatch(file.name)
        if match is None or not file.is_file():
            continue
        pid = int(match["pid"])
        if pid != os.getpid() and process_alive(pid):
            continue
        try:
            file.unlink()
            removed.append(file)
        except OSError:
            pass
    return removed


def write_failure_message(path, error: OSError) -> str:
    """One line for a save of ``path`` that failed with ``error``: the file, the error, the free space on its
    file system against the size of the last checkpoint, and how to go on."""
    path = Path(path)
    reason = f"[Errno {error.errno}] {error.strerror}" if error.errno else " ".join(str(error).split())
    try:
        free = _size(shutil.disk_usage(path.parent).free)
    except OSError:
        free = "an unknown amount"
    existing = [p for p in (path, previous_generation(path)) if p.is_file()]
    if existing:
        size = _size(existing[0].stat().st_size)
        last = f"the last checkpoint ({existing[0].name}) is {size} and intact"
        then = "then resume with ckpt_path=last (same hydra.run.dir)"
    else:
        last, then = "no checkpoint was written yet", "then run the same command again"
    return (
        f"could not save the checkpoint {path}: {reason}; {path.parent} has {free} free, {last}; free space "
        f"there (or fix its file system), {then}"
    )


@contextlib.contextmanager
def _reporting_write_errors(path: Path):
    """An ``OSError`` while saving ``path`` (also one raised inside ``torch.save``) becomes a
    :class:`~fpnas.errors.CheckpointWriteError` with :func:`write_failure_message`, also written to the run's
    log file (the console gets it once, from the entry point's error report)."""
    try:
        yield
    except (OSError, RuntimeError) as exc:
        error = find_cause(exc, OSError)
        if error is None:
            raise
        message = write_failure_message(path, error)
        _log_to_files(logging.ERROR, message)
        raise CheckpointWriteError(message) from exc


def _temporary(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def _write_synced(path: Path, write: Callable) -> None:
    with open(path, "wb") as f:
        write(f)
        f.flush()
        os.fsync(f.fileno())


def _write_checksums(directory: Path, entries: list[tuple[str, str]]) -> None:
    """``checksums.sha256`` replaced atomically by ``entries`` (duplicates dropped, order kept)."""
    lines = "".join(dict.fromkeys(f"{digest}  {name}\n" for digest, name in entries))
    target = directory / CHECKSUMS
    tmp = _temporary(target)
    try:
        _write_synced(tmp, lambda f: f.write(lines.encode()))
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def _rotate(path: Path, previous: Path) -> None:
    """``previous`` <- ``path``: a hard link, so that ``path`` never goes missing; a rename where the file
    system has no hard links (some network and FUSE file systems)."""
    link = _temporary(previous)
    try:
        link.unlink(missing_ok=True)
        os.link(path, link)
    except OSError:
        os.replace(path, previous)
        return
    try:
        os.replace(link, previous)
    finally:
        link.unlink(missing_ok=True)


def _fsync_directory(directory: Path) -> None:
    try:  # the renames themselves survive a power cut once the directory entries are on disk
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        pass


def _identity(path) -> tuple:
    st = os.stat(path)
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _remember(path, digest: str, key: tuple | None = None) -> None:
    if len(_digests) > 64:  # a handful of checkpoints per run: keep the newest
        _digests.pop(next(iter(_digests)))
    _digests[key or _identity(path)] = digest


def _size(n: int) -> str:
    return f"{n / 2**30:.2f} GiB" if n >= 2**30 else f"{n / 2**20:.1f} MiB"


def _notice(message: str) -> None:
    """One line for the user (console and the run's log), from rank 0 only."""
    if (_get_rank() or 0) == 0:
        log.warning(message)


def _log_to_files(level: int, message: str) -> None:
    """``message`` to the log files of the run (Hydra's ``<run dir>/search.log`` / ``train.log``) only."""
    record = log.makeRecord(log.name, level, __file__, 0, message, None, None)
    for handler in {*logging.getLogger().handlers, *log.handlers}:
        if isinstance(handler, logging.FileHandler) and record.levelno >= handler.level:
            handler.handle(record)


class LastCheckpoint(Checkpoint):
    """Keeps ``path`` (``<run dir>/checkpoints/last.ckpt``) the full state of the run: after every epoch,
    every ``every_n_steps`` training steps, every ``every_n_minutes`` minutes, at the end, and when Ctrl-C
    or SIGTERM (a cluster's preemption) stops the run; always the same file, replaced atomically.

    A run stopped by a signal exits with 130 (Ctrl-C) or 143 (SIGTERM) after the save, so that a
    scheduler requeues it instead of treating it as finished (:func:`exit_status_of_interrupt`).
    A :class:`~pytorch_lightning.callbacks.Checkpoint`, so Lightning runs it after the other callbacks
    (the state it saves includes theirs for the step) and adds no checkpoint callback of its own.

    Built from ``callbacks.checkpoint`` of conf/callbacks/default.yaml (search) and conf/train.yaml (train), the
    one home of its values.
    """

    def __init__(self, path: str, *, every_n_steps: int, every_n_minutes: float):
        for key, value, kind in (("every_n_steps", every_n_steps, int), ("every_n_minutes", every_n_minutes, float)):
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or value < 0
                or (kind is int and int(value) != value)
            ):
                raise ConfigError(
                    f"callbacks.checkpoint.{key}={value!r} is invalid: it must be "
                    f"{'an integer' if kind is int else 'a number'} >= 0 (0 = off)"
                )
        self.path = Path(path)
        self.every_n_steps = int(every_n_steps)
        self.every_n_minutes = float(every_n_minutes)
        self._last_time = time.monotonic()
        self.interrupted_by: str | None = None  # "SIGINT" | "SIGTERM" once a signal stopped the run
        self.saves: list[float] = []  # seconds per save (the checkpoint overhead, for the benchmarks)
        self._saved_at: int | None = None  # global step of the last save

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        io = trainer.strategy.checkpoint_io
        if isinstance(io, AtomicCheckpointIO):  # saved as verified generations (previous.ckpt, checksums)
            io.generations.add(os.path.abspath(self.path))
        if stage == "fit" and trainer.is_global_zero:
            removed = remove_stale_temporaries(self.path.parent)
            if removed:
                log.info(
                    "removed %d temporary file(s) of a save cut short: %s",
                    len(removed),
                    ", ".join(p.name for p in removed),
                )

    def save(self, trainer: pl.Trainer) -> None:
        start = time.perf_counter()
        trainer.save_checkpoint(self.path)  # every rank takes part; rank 0 writes
        self.saves.append(time.perf_counter() - start)
        self._last_time = time.monotonic()
        self._saved_at = trainer.global_step

    def on_fit_start(self, trainer, pl_module) -> None:
        self._last_time = time.monotonic()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        done = trainer.fit_loop.epoch_loop.batch_progress.total.processed  # training steps so far, resumes too
        due = bool(self.every_n_steps) and done % self.every_n_steps == 0
        if self.every_n_minutes and not due:
            due = time.monotonic() - self._last_time >= 60 * self.every_n_minutes
            due = bool(trainer.strategy.broadcast(due, src=0))  # rank 0's clock decides for everyone
        last_of_epoch = batch_idx + 1 >= trainer.num_training_batches  # the epoch end saves anyway
        if due and not last_of_epoch:
            self.save(trainer)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.save(trainer)

    def on_train_end(self, trainer, pl_module) -> None:
        if self._saved_at != trainer.global_step:  # stopped inside an epoch (max_steps, a time limit)
            self.save(trainer)

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        from pytorch_lightning.utilities.exceptions import SIGTERMException

        if trainer.state.fn != "fit":
            return
        if isinstance(exception, (KeyboardInterrupt, SIGTERMException)):
            self.interrupted_by = "SIGINT" if isinstance(exception, KeyboardInterrupt) else "SIGTERM"
            self.save(trainer)
            rank_zero_info(
                f"[fpnas] interrupted ({self.interrupted_by}) at step "
                f"{trainer.fit_loop.epoch_loop.batch_progress.total.completed}: saved {self.path}; "
                "resume with ckpt_path=last (same hydra.run.dir)"
            )


def exit_status_of_interrupt(trainer: pl.Trainer) -> int | None:
    """130 / 143 when a signal stopped ``trainer``'s fit (after :class:`LastCheckpoint` saved), else None."""
    for callback in trainer.callbacks:
        if isinstance(callback, LastCheckpoint) and callback.interrupted_by:
            return EXIT_SIGINT if callback.interrupted_by == "SIGINT" else EXIT_SIGTERM
    return None


def check_checkpoint(key: str, path, module=None, ignore: tuple[str, ...] = (), resumes: str | None = None) -> None:
    """``path`` (config key ``key``) must be a readable PyTorch checkpoint; with ``module``, its
    ``state_dict`` must hold exactly ``module``'s tensors with the same shapes (a checkpoint of another
    space or architecture would otherwise fail deep inside Lightning).

    Tensors whose name starts with one of ``ignore`` are not compared. ``resumes`` ("search.py" or
    "train.py"): the program that resumes it, so that the other one's checkpoint is named as such, with
    what to do instead. Memory-maps the file, so tensors are not read.
    """
    import zipfile
    from pathlib import Path

    import torch

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{key}={path}: no such file; give a checkpoint file (e.g. <run dir>/checkpoints/last.ckpt)")
    damaged = (
        f"{key}={path} is not a readable PyTorch checkpoint ({{}}); it is damaged (e.g. a copy cut short) "
        "or another kind of file: give another checkpoint, e.g. the run's checkpoints/last.ckpt"
    )
    if not zipfile.is_zipfile(path):  # torch.save (and so Lightning) writes zip archives
        raise ConfigError(damaged.format("not a torch.save zip archive"))
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False, mmap=True)
    except Exception as exc:  # noqa: BLE001 - any failure to read means the file is not a checkpoint
        raise ConfigError(damaged.format(f"{type(exc).__name__}: {' '.join(str(exc).split())[:120]}")) from None
    state = ckpt.get("state_dict") if isinstance(ckpt, dict) else None
    if module is None:
        return
    if state is None:
        raise ConfigError(f"{key}={path} holds no 'state_dict': it is not a Lightning checkpoint of fpnas")
    mine = {k: tuple(v.shape) for k, v in module.state_dict().items() if not k.startswith(ignore)}
    theirs = {k: tuple(v.shape) for k, v in state.items() if hasattr(v, "shape") and not k.startswith(ignore)}
    missing, extra = sorted(set(mine) - set(theirs)), sorted(set(theirs) - set(mine))
    wrong = sorted(k for k in set(mine) & set(theirs) if mine[k] != theirs[k])
    if missing or extra or wrong:
        detail = (
            f"{wrong[0]} has shape {list(theirs[wrong[0]])} there but {list(mine[wrong[0]])} here"
            if wrong
            else f"{len(missing)} tensor(s) missing (e.g. {missing[0]})"
            if missing
            else f"{len(extra)} unexpected tensor(s) (e.g. {extra[0]})"
        )
        kind = (
            "a search.py checkpoint"
            if "fpnas" in ckpt
            else "a train.py checkpoint"
            if "arch" in (ckpt.get("hyper_parameters") or {})
            else "a checkpoint"
        )
        if resumes == "train.py" and kind == "a search.py checkpoint":
            raise ConfigError(
                f"{key}={path} is a search.py checkpoint: train.py resumes only its own; to start training "
                f"from the search's super-net weights give init.from_search={path} (with arch=<run dir>/arch.yaml)"
            )
        if resumes == "search.py" and kind == "a train.py checkpoint":
            raise ConfigError(
                f"{key}={path} is a train.py checkpoint: search.py resumes only search checkpoints "
                "(<search run dir>/checkpoints/last.ckpt)"
            )
        raise ConfigError(
            f"{key}={path} is {kind} of another space or architecture ({detail}); resume with the "
            "settings it was written with (space=, data=, arch=) or start a new run"
        )
