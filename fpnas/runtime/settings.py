"""What a checkpoint was computed with, recorded in it and compared on resume.

The overrides a resume restores (:mod:`fpnas.runtime.resume`) guard the command line; this guards the
rest: a config file edited since (a space, a data set, a default), a run directory another run wrote
into, or a changed number of processes (which changes the global batch, hence the result). Every key of
the composed config counts except those a resume may change (:func:`fpnas.runtime.resume.changeable`) and
file locations (a run directory or data set that moved is the same run).
"""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.callbacks import Callback

from fpnas.errors import ConfigError
from fpnas.runtime.checkpoint import check_checkpoint
from fpnas.runtime.resume import changeable

CHECKPOINT_KEY = "run_settings"
# where files are, not what is computed: a run directory, data set or architecture file may move
NOT_COMPARED = ("skip_invalid_jobs", "arch", "init.from_search", "distill.teacher", "data.root", "data.download")
NOT_COMPARED += ("data.classes_file",)


def _flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for key, value in node.items():
            out |= _flatten(value, f"{prefix}{key}.")
        return out
    return {prefix[:-1]: node}


def run_settings(cfg: DictConfig, world_size: int) -> dict[str, Any]:
    """The settings that decide what a run computes: ``cfg`` resolved and flattened (``a.b.c: value``)
    without the keys a resume may change, plus the number of processes (``world_size``)."""
    raw = OmegaConf.to_container(cfg, resolve=False)
    keys = [k for k in _flatten({k: v for k, v in raw.items() if k != "hydra"}) if not changeable(k)]
    settings = {}
    for key in keys:
        if key.startswith(NOT_COMPARED):
            continue
        value = OmegaConf.select(cfg, key, throw_on_resolution_failure=False)  # resolved; only what is compared
        settings[key] = OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value
    return settings | {"processes": int(world_size)}


def settings_differences(saved: dict[str, Any], now: dict[str, Any]) -> list[str]:
    """``key: saved -> now`` for every key both have with another value (a key only one has is an option
    added or removed by another fpnas version: its default reproduces the older behaviour)."""
    return [f"{k}: {_short(saved[k])} -> {_short(now[k])}" for k in sorted(set(saved) & set(now)) if saved[k] != now[k]]


def _short(value: Any, width: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= width else text[: width - 3] + "..."


def _program(settings: dict[str, Any]) -> str:
    return "search.py" if "search._target_" in settings else "train.py"


def check_same_settings(ckpt_path: str, cfg: DictConfig, world_size: int | None) -> None:
    """A resume continues the computation its checkpoint holds: any difference between the settings it
    recorded and ``cfg``'s with ``world_size`` processes is refused in one line naming each one (a changed
    process count also names the global batch it would change). ``world_size`` None: not known yet (the
    trainer is not built), every other setting is compared."""
    import torch

    check_checkpoint("ckpt_path", ckpt_path)  # a readable checkpoint first: another file is refused by name
    checkpoint = torch.load(ckpt_path, map_location="cpu", weights_only=False, mmap=True)
    settings = run_settings(cfg, world_size or 0)
    if world_size is None:
        settings.pop("processes")
    saved = checkpoint.get(CHECKPOINT_KEY) if isinstance(checkpoint, dict) else None
    if not isinstance(saved, dict):
        return  # written before settings were recorded
    if _program(saved) != _program(settings):
        return  # the other program's checkpoint: check_checkpoint says so, with what to do instead
    diff = settings_differences(saved, settings)
    if not diff:
        return
    if world_size is None and any(d.startswith("space.") for d in diff):
        return  # another space: check_same_space and check_checkpoint name its first difference more clearly
    hint = "resume with the settings it was written with, or start a new run (another hydra.run.dir)"
    if "processes" in settings and saved.get("processes") != settings["processes"]:
        batch = settings.get("data.batch_size")
        hint = (
            f"the global batch would change from {saved['processes']} x {batch} to {settings['processes']} x {batch} "
            f"images; resume with {saved['processes']} processes (trainer.devices x trainer.num_nodes), or " + hint
        )
    more = f" (and {len(diff) - 6} more)" if len(diff) > 6 else ""
    raise ConfigError(f"ckpt_path={ckpt_path} was written with other settings ({'; '.join(diff[:6])}{more}): {hint}")


class RecordSettings(Callback):
    """Writes :func:`run_settings` of ``cfg`` into every checkpoint, under ``run_settings``."""

    def __init__(self, cfg: DictConfig):
        self.cfg = cfg
        self.settings: dict[str, Any] | None = None

    def setup(self, trainer, pl_module, stage: str) -> None:
        self.settings = run_settings(self.cfg, trainer.world_size)

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict[str, Any]) -> None:
        if self.settings is None:
            self.settings = run_settings(self.cfg, trainer.world_size)
        checkpoint[CHECKPOINT_KEY] = self.settings
