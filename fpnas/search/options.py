"""The search's plain options and their checks, importable without torch or Lightning: ``search.py``
runs them on the composed config before the heavy imports (a bad value is one line within a second or
two), and :class:`~fpnas.search.module.SearchModule` and :class:`~fpnas.cost.constraint.Constraint` run the same
functions on their arguments (library use), so each rule has one home."""

from __future__ import annotations

import inspect
from typing import Any

from omegaconf import DictConfig, OmegaConf

from fpnas.cost.checks import check_budget
from fpnas.errors import ConfigError, check_option
from fpnas.report.log_handler import check_progress
from fpnas.runtime.config import check_required, shipped_example, shipped_keys, source_key

SCHEDULES = ("coarse_to_fine", "joint", "factorized")
EXPORT_MODES = ("feasible", "argmax")  # most probable under the target | argmax of every unit (the paper)
# groups whose keys reach a constructor through interpolations (cost.target_mflops -> cost.constraints): a
# `+cost.target_mflop=...` typo would be ignored, so their keys are compared with the shipped ones
PLAIN_GROUPS = ("cost", "cost.latency", "cost.params")
# search.<flag>: bool
SEARCH_FLAGS = ("weight_importance", "eval_batch_stats", "sync_bn", "sandwich", "distill", "restore_feasibility")


def check_options(cfg: DictConfig) -> None:
    """What no constructor owns: required values, unknown keys in the cost groups (read through
    interpolations) and the run's own keys. The search module, schedule, final pick, sampler, data and trainer
    check their own arguments."""
    check_required(cfg)
    for group in PLAIN_GROUPS:
        known = shipped_keys(group)
        unknown = sorted(set(OmegaConf.select(cfg, group) or {}) - known)
        if unknown:
            raise ConfigError(f"{group}.{unknown[0]} is not a key of {group}; known keys: {sorted(known)}")
    check_option("trainer.max_epochs", cfg.trainer.get("max_epochs"), int, 1, example=20)  # -1 (endless) too
    check_option("seed", cfg.seed, int, 0, example=0)
    check_option("auto_resume", cfg.get("auto_resume", False), bool, example="true")
    check_option("skip_invalid_jobs", cfg.get("skip_invalid_jobs", False), bool, example="true")
    check_progress(cfg.progress)


def check_schedule(schedule: str, switch_epoch: int) -> None:
    """The ``distribution`` group (:class:`~fpnas.search.distribution.Schedule`)."""
    if schedule not in SCHEDULES:
        raise ConfigError(f"distribution.schedule must be one of {list(SCHEDULES)}, got {schedule!r}")
    check_option("distribution.switch_epoch", switch_epoch, int, 0, example=8)


def check_final_pick(
    *,
    mode: str,
    top_k: int,
    max_candidates: int,
    candidates: int,
    fill: bool,
    significance: float,
    finetune_steps: int,
    finetune_lr: float,
) -> None:
    """The ``export`` group (:class:`~fpnas.search.selection.FinalPick`)."""
    if mode not in EXPORT_MODES:
        raise ConfigError(
            f"export.mode={mode!r} is invalid: it must be one of {list(EXPORT_MODES)} (feasible: the "
            "most probable architecture within the target; argmax: the argmax of every unit)"
        )
    check_option("export.top_k", top_k, int, 0, example=5)
    check_option("export.max_candidates", max_candidates, int, 1, example=100000)
    check_option("export.candidates", candidates, int, 1, example=10)
    check_option("export.finetune_steps", finetune_steps, int, 0, example=100)
    check_option("export.fill", fill, bool, example="true")
    check_option("export.significance", significance, float, 0, example=2.0)
    check_option("export.finetune_lr", finetune_lr, float, 0, exclusive=True, example=0.01)


def check_search_arguments(
    *,
    warmup_epochs: int,
    weight_importance: bool,
    eval_batch_stats: bool,
    sync_bn: bool,
    sandwich: bool,
    distill: bool,
    restore_feasibility: bool,
    importance_temperature: float,
    seed: int,
) -> None:
    """The search module's plain arguments (the ``search`` group, and ``seed``), each named by its config key;
    other keyword arguments (the space, sampler, optimizers, budgets, schedule, final pick) have their own checks."""
    check_option("search.warmup_epochs", warmup_epochs, int, 0, example=2)
    flags = dict(
        weight_importance=weight_importance,
        eval_batch_stats=eval_batch_stats,
        sync_bn=sync_bn,
        sandwich=sandwich,
        distill=distill,
        restore_feasibility=restore_feasibility,
    )
    for key in SEARCH_FLAGS:
        check_option(f"search.{key}", flags[key], bool, example="true")
    if distill and not sandwich:
        raise ConfigError(
            "search.distill=true distils from the largest architecture, which only search.sandwich=true "
            "trains: set search.sandwich=true too"
        )
    check_option("search.importance_temperature", importance_temperature, float, 0, exclusive=True, example=1.0)
    check_option("seed", seed, int, 0, example=0)


def _check_group(check, cfg: DictConfig, group: str, **extra: Any) -> None:
    """``check(**the group's keys, **extra)``; a key ``check`` does not take is refused by name (the group's
    constructor would refuse it too, after the heavy imports)."""
    node = OmegaConf.to_container(cfg[group], resolve=True)
    arguments = {k: v for k, v in node.items() if not k.startswith("_")}
    known = [p for p in inspect.signature(check).parameters if p not in extra]
    unknown = sorted(set(arguments) - set(known))
    if unknown:
        raise ConfigError(f"{group}.{unknown[0]} is not a key of {group}; known keys: {sorted(known)}")
    check(**arguments, **extra)


def check_search_config(cfg: DictConfig) -> None:
    """Every check of a composed ``search.py`` config that needs neither torch nor the data: the run's
    own keys, the search's, schedule's and final pick's plain arguments and each budget's values
    (:class:`ConfigError`)."""
    check_options(cfg)
    _check_group(check_search_arguments, cfg, "search", seed=cfg.seed)
    _check_group(check_schedule, cfg, "distribution")
    _check_group(check_final_pick, cfg, "export")
    constraints = cfg.cost.get("constraints")
    if isinstance(constraints, DictConfig):
        for name, node in constraints.items():
            if not isinstance(node, DictConfig):
                continue  # a null entry removes a constraint; other shapes are the module's to refuse
            where = f"cost.constraints.{name}"
            keys = [source_key(node, k, f"{where}.{k}") for k in ("target", "beta", "beta_lr")]
            values = [node.get(k) for k in ("target", "beta", "beta_lr")]
            check_budget(keys[0], values[0], keys[1], values[1], keys[2], values[2], example=shipped_example(keys[0]))
