"""A resume continues the run as it was set up: its own overrides come back, and its files are kept.

``python search.py hydra.run.dir=R ckpt_path=last`` must continue the run in ``R`` with the settings
it was started with, not with the defaults. Before Hydra parses the command line, the run's overrides
(``R/.hydra/overrides.yaml``) are put first and the command line's on top; a command-line override
that would change what the checkpoint was computed with (the space, the data, the seed, the method,
the optimizers...) is refused, the others (more epochs, loggers, callbacks, export, devices) are
applied and reported. The ``.hydra/`` files of a run are written only once its config has passed
validation (:func:`write_hydra_files`), so a command that fails leaves an earlier run as it was.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import yaml

from fpnas.runtime.run_dir import RunDir

HYDRA_DIR = ".hydra"
# what a resume may change: it does not alter the computation the checkpoint continues
CHANGEABLE = (
    "trainer.",
    "logger",
    "callbacks.",
    "export.",
    "hydra.",
    "ckpt_path",
    "auto_resume",
    "data.num_workers",
    "data.val_batch_size",
    "paths.",
)
CHANGEABLE_EXACT = ("trainer", "callbacks", "export", "paths", "threads", "progress")  # threads: float rounding


def override_key(override: str) -> str:
    """``+a.b=1`` -> ``a.b``; ``~a`` -> ``a``; ``group=option`` -> ``group``."""
    return override.split("=", 1)[0].lstrip("+~")


def changeable(key: str) -> bool:
    return key in CHANGEABLE_EXACT or key.startswith(CHANGEABLE)


def resumed_argv(argv: list[str]) -> tuple[list[str], str | None]:
    """``argv`` with the run's own overrides restored when it resumes a run directory; and a message.

    Applies to a single run (no ``-m``) that names its directory (``hydra.run.dir=R``) and resumes it
    (``ckpt_path=last``, or ``auto_resume=true`` with ``R/checkpoints/last.ckpt`` present) when
    ``R/.hydra/overrides.yaml`` exists. A refused change exits with status 2 and one line.
    """
    args = [a for a in argv if not a.startswith("-")]
    if len(args) != len(argv):  # -m, --cfg, --help, ...: not a plain run
        return argv, None
    values = {override_key(a): a.split("=", 1)[1] for a in args if "=" in a}
    run_dir = values.get("hydra.run.dir")
    if run_dir is None:
        return argv, None
    saved_run = RunDir(run_dir)
    resuming = values.get("ckpt_path") == "last" or (
        values.get("auto_resume", "").lower() == "true"
        and (saved_run.last_checkpoint.is_file() or saved_run.previous_checkpoint.is_file())
    )
    saved_file = Path(run_dir) / HYDRA_DIR / "overrides.yaml"
    if not resuming or not saved_file.is_file():
        return argv, None
    try:
        saved = [str(o) for o in (yaml.safe_load(saved_file.read_text()) or [])]
    except yaml.YAMLError as exc:
        _refuse(f"{saved_file} is not valid YAML ({exc}); restore it, or give every override of the run again")
    saved_by_key = {override_key(o): o for o in saved}
    refused = [
        a for a in args if not changeable(override_key(a)) and saved_by_key.get(override_key(a), None) not in (None, a)
    ]
    added = [a for a in args if not changeable(override_key(a)) and override_key(a) not in saved_by_key]
    if refused or added:
        bad = (refused or added)[0]
        key = override_key(bad)
        was = saved_by_key.get(key, "its value from the config files")
        _refuse(
            f"{bad} cannot change when resuming {run_dir}: the checkpoint continues the run as it was set up "
            f"({was}); start a new run (another hydra.run.dir) to change it"
        )
    current = {override_key(a) for a in args}
    # where the run's config files were found (a space or data set of the user's own): composing the
    # run's config again needs the same search path
    restored = [o for o in saved_search_path(run_dir) if override_key(o) not in current]
    merged = restored + [o for o in saved if override_key(o) not in current] + args
    saved = restored + saved
    extra = [
        a
        for a in args
        if saved_by_key.get(override_key(a)) != a
        and override_key(a) not in ("hydra.run.dir", "ckpt_path", "auto_resume")
    ]
    message = f"[fpnas] resuming {run_dir} with the run's own overrides: {' '.join(saved) or '(none)'}" + (
        f"; changed on the command line: {' '.join(extra)}" if extra else ""
    )
    return merged, message


def saved_search_path(run_dir: str) -> list[str]:
    """The ``hydra.searchpath=...`` override the run in ``run_dir`` was started with (empty if none)."""
    hydra_file = Path(run_dir) / HYDRA_DIR / "hydra.yaml"
    if not hydra_file.is_file():
        return []
    try:
        doc = yaml.safe_load(hydra_file.read_text()) or {}
    except yaml.YAMLError:
        return []
    overrides = ((doc.get("hydra") or {}).get("overrides") or {}).get("hydra") or []
    return [str(o) for o in overrides if override_key(str(o)) == "hydra.searchpath"]


def _refuse(message: str) -> None:
    from fpnas.runtime.cli import report

    report(message)


def adopt_run_overrides() -> None:
    """Called at the top of ``search.py`` / ``train.py`` (before Hydra parses ``sys.argv``); not in the DDP
    children Lightning starts, whose argv is already the job's (:mod:`fpnas.runtime.launch`)."""
    if os.environ.get("LOCAL_RANK", "0") != "0":
        return
    argv, message = resumed_argv(sys.argv[1:])
    if message:
        print(message, file=sys.stderr)
        sys.argv = [sys.argv[0], *argv]


def write_hydra_files(cfg, output_dir: str | Path) -> None:
    """``<run dir>/.hydra/{config,hydra,overrides}.yaml`` as Hydra would write them (Hydra's own writing is
    off: ``hydra.output_subdir: null``), once the config has passed validation."""
    from hydra.core.hydra_config import HydraConfig
    from lightning_fabric.utilities.rank_zero import _get_rank
    from omegaconf import OmegaConf

    if not HydraConfig.initialized() or (_get_rank() or 0) != 0:
        return
    hc = HydraConfig.get()
    directory = Path(output_dir) / HYDRA_DIR
    directory.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(cfg, directory / "config.yaml")
    OmegaConf.save({"hydra": hc}, directory / "hydra.yaml")
    OmegaConf.save(list(hc.overrides.task), directory / "overrides.yaml")


def check_run_directory(output_dir: Path, ckpt_path: str | None) -> None:
    """A new run never silently takes over a directory that holds another run's checkpoint."""
    from fpnas.errors import ConfigError

    run = RunDir(output_dir)
    own = {p.resolve() for p in (run.last_checkpoint, run.previous_checkpoint) if p.is_file()}
    if own and (ckpt_path is None or Path(ckpt_path).resolve() not in own):
        held = run.last_checkpoint if run.last_checkpoint.is_file() else run.previous_checkpoint
        raise ConfigError(
            f"hydra.run.dir={output_dir} already holds a run ({held}): resume it with ckpt_path=last "
            "(or auto_resume=true), or give another hydra.run.dir for a new run"
        )


def space_differences(old: dict, new: dict, prefix: str = "") -> list[str]:
    """Where two space specs differ, as ``key: old -> new`` (nested groups by index: ``groups[2].act``)."""
    out = []
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new), key=str):
            out += space_differences(old.get(key), new.get(key), f"{prefix}.{key}" if prefix else str(key))
    elif (
        isinstance(old, list)
        and isinstance(new, list)
        and len(old) == len(new)
        and any(isinstance(v, (dict, list)) for v in old)
    ):
        for i, (a, b) in enumerate(zip(old, new)):
            out += space_differences(a, b, f"{prefix}[{i}]")
    elif old != new:
        out.append(f"{prefix}: {old!r} -> {new!r}")
    return out


def check_same_space(ckpt_path: str, space) -> None:
    """A search resumes only in the space it was written in: an edited space whose tensor shapes did not
    change (an activation, a choice's order) would otherwise resume silently into another search."""
    import torch

    from fpnas.errors import ConfigError

    ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=False, mmap=True)
    saved = (ckpt.get("fpnas") or {}).get("space") if isinstance(ckpt, dict) else None
    if saved is None:
        return
    diff = space_differences(dict(saved), dict(space.spec))
    if diff:
        more = f" (and {len(diff) - 3} more)" if len(diff) > 3 else ""
        raise ConfigError(
            f"ckpt_path={ckpt_path} was written in another version of space '{space.name}' "
            f"({'; '.join(diff[:3])}{more}): resume with the space it was written with, or start a new run"
        )


def continue_logs(loggers, ckpt_path: str) -> None:
    """Loggers of a resumed run continue its history: TensorBoard drops the events of the steps a kill
    lost (``purge_step``: the checkpoint's step) and appends; the CSV logger does the same by itself
    (:mod:`fpnas.runtime.loggers`)."""
    import torch
    from pytorch_lightning.loggers import TensorBoardLogger

    boards = [lg for lg in loggers if isinstance(lg, TensorBoardLogger)]
    if not boards:
        return
    ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=False, mmap=True)
    loop = ckpt.get("loops", {}).get("fit_loop", {}).get("epoch_loop.state_dict", {})
    step = int(loop.get("_batches_that_stepped", 0))
    for board in boards:
        board._kwargs.setdefault("purge_step", step)  # SummaryWriter(purge_step=...): Lightning passes **kwargs


def finished_summary(summary_file: Path, trainer_cfg) -> dict | None:
    """The summary of a run that finished what ``trainer_cfg`` asks for (its ``max_epochs`` / ``max_steps``),
    or None: no summary (never finished, or killed), or fewer epochs or steps than asked (a run extended
    with more epochs, or a summary left by a run that has been continued since)."""
    import json

    try:
        summary = json.loads(Path(summary_file).read_text())
    except (OSError, ValueError):
        return None
    max_epochs, max_steps = trainer_cfg.get("max_epochs"), trainer_cfg.get("max_steps")
    if isinstance(max_epochs, int) and max_epochs >= 0 and int(summary.get("epochs", -1)) < max_epochs:
        return None
    # max_steps counts optimizer steps (the search makes two per step): the summary's global_step
    if isinstance(max_steps, int) and max_steps > 0 and int(summary.get("global_step", max_steps)) < max_steps:
        return None
    return summary


def finished_run(run: RunDir, summary_file: Path, ckpt_path: str, trainer_cfg) -> dict | None:
    """The summary of the finished run that resuming ``ckpt_path`` would restart, after saying so; None when
    there is work left (or ``ckpt_path`` is not the run's own checkpoint). A finished run is kept as it is:
    resuming it would train nothing and overwrite its results."""
    own = {p.resolve() for p in (run.last_checkpoint, run.previous_checkpoint)}
    if Path(ckpt_path).resolve() not in own:
        return None
    summary = finished_summary(summary_file, trainer_cfg)
    if summary is not None:  # printed, not logged: the finished run's log stays as it was
        print(
            f"[fpnas] {run.root} holds a finished run ({summary.get('epochs')} epochs, {summary_file.name}): "
            "kept as it is; to train it longer, resume with a larger trainer.max_epochs",
            file=sys.stderr,
        )
    return summary
