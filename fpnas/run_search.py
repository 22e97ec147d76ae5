"""The body of ``search.py``: validate the config, build everything, search, write the results."""
from __future__ import annotations

import json
import logging
import time
import warnings
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from fpnas.distributed import AllReduceStats
from fpnas.errors import (
    ConfigError, NonFiniteLossError, check_checkpoint, check_option, check_required, instantiate_checked,
    instantiate_trainer)
from fpnas.checkpointing import LastCheckpoint, exit_status_of_interrupt
from fpnas.launch import export_job_argv_for_ddp_children, restored_launcher_environment
from fpnas.resume import check_run_directory, continue_logs, write_hydra_files
from fpnas.topk import check_export_config

log = logging.getLogger("fpnas")


def build_space(cfg: DictConfig):
    from fpnas.space.spec import SearchSpace

    spec = OmegaConf.to_container(cfg.space, resolve=True)
    return SearchSpace(spec, name=spec.get("name"))


CONF_DIR = Path(__file__).resolve().parents[1] / "conf"
# groups whose keys are read, not instantiated: a `+cost.target_mflop=...` typo must not be ignored
PLAIN_GROUPS = ("cost", "distribution", "search", "optim.omega", "optim.alpha")


def shipped_keys(group: str) -> set[str]:
    """Keys ``group`` (e.g. ``optim.omega``) has in the shipped config files (read, so it cannot drift)."""
    import yaml

    head, *rest = group.split(".")
    files = sorted((CONF_DIR / head).glob("*.yaml")) if (CONF_DIR / head).is_dir() else [CONF_DIR / "search.yaml"]
    keys: set[str] = set()
    for f in files:
        node = yaml.safe_load(f.read_text()) or {}
        for part in rest if (CONF_DIR / head).is_dir() else [head, *rest]:
            node = node.get(part) or {} if isinstance(node, dict) else {}
        keys |= set(node) if isinstance(node, dict) else set()
    return keys


def check_options(cfg: DictConfig) -> None:
    """Names, types and ranges of the search's own keys, each with the value to change."""
    from fpnas.search_module import SCHEDULES

    check_required(cfg)
    for group in PLAIN_GROUPS:
        known = shipped_keys(group)
        unknown = sorted(set(OmegaConf.select(cfg, group) or {}) - known)
        if unknown:
            raise ConfigError(f"{group}.{unknown[0]} is not a key of {group}; known keys: {sorted(known)}")
    c = cfg
    check_option("cost.target_mflops", c.cost.target_mflops, float, 0, exclusive=True, example=0.6)
    check_option("cost.beta", c.cost.beta, float, 0, example=0.75)
    check_option("cost.beta_lr", c.cost.get("beta_lr", 0.0), float, 0, example=0.02)
    check_option("trainer.max_epochs", c.trainer.get("max_epochs"), int, 1, example=20)  # -1 (endless) too
    if c.distribution.schedule not in SCHEDULES:
        raise ConfigError(f"distribution.schedule must be one of {list(SCHEDULES)}, got {c.distribution.schedule!r}")
    check_option("distribution.switch_epoch", c.distribution.switch_epoch, int, 0, example=8)
    check_option("search.warmup_epochs", c.search.warmup_epochs, int, 0, example=2)
    for key in ("weight_importance", "eval_batch_stats", "sync_bn"):
        check_option(f"search.{key}", c.search[key], bool, example="true")
    check_option("search.importance_temperature", c.search.importance_temperature, float, 0, exclusive=True,
                 example=1.0)
    o = c.optim
    check_option("optim.omega.lr", o.omega.lr, float, 0, exclusive=True, example=0.1)
    check_option("optim.omega.momentum", o.omega.momentum, float, 0, example=0.9)
    check_option("optim.omega.nesterov", o.omega.nesterov, bool, example="true")
    check_option("optim.omega.weight_decay", o.omega.weight_decay, float, 0, example=4e-5)
    check_option("optim.alpha.lr", o.alpha.lr, float, 0, exclusive=True, example=0.03)
    betas = o.alpha.betas
    if not (OmegaConf.is_list(betas) and len(betas) == 2
            and all(isinstance(b, (int, float)) and not isinstance(b, bool) and 0 <= b < 1 for b in betas)):
        raise ConfigError(f"optim.alpha.betas={betas} is invalid: it must be two numbers in [0, 1); "
                          "e.g. optim.alpha.betas=[0.9,0.999]")
    check_option("seed", c.seed, int, 0, example=0)
    check_option("auto_resume", c.get("auto_resume", False), bool, example="true")


def validate(cfg: DictConfig):
    """Everything that can be wrong with the config, checked before any data is loaded.

    Returns the space (with the data's classes and input channels), the sampler, the data
    module (constructed, not set up) and the space's exact (min, max) MFLOPs.
    """
    from fpnas.space.complexity import ComplexityTables

    check_options(cfg)
    space = build_space(cfg)
    datamodule = instantiate_checked(cfg.data, "data")  # cheap by contract: nothing is loaded before setup()
    space = space.with_num_classes(datamodule.num_classes, datamodule.in_chans)
    sampler = instantiate_checked(cfg.sampler, "sampler")
    target, beta = float(cfg.cost.target_mflops), float(cfg.cost.beta)
    if not target > 0:
        raise ConfigError(f"cost.target_mflops must be > 0, got {target}")
    if beta < 0:
        raise ConfigError(f"cost.beta must be >= 0, got {beta}")
    lo, hi = (m / 1e6 for m in ComplexityTables(space).macs_range())
    if target < lo:
        raise ConfigError(f"cost.target_mflops={target:g} is below what space '{space.name}' can reach "
                          f"(min {lo:.4g}, max {hi:.4g} MFLOPs); pick a target in that range")
    if target >= hi:
        warnings.warn(f"cost.target_mflops={target:g} is at or above the largest architecture of space "
                      f"'{space.name}' ({hi:.4g} MFLOPs): the cost term never acts and the search is unconstrained")
    max_epochs = cfg.trainer.get("max_epochs")
    schedule, theta = cfg.distribution.schedule, int(cfg.distribution.switch_epoch)
    if schedule == "coarse_to_fine" and max_epochs is not None and theta >= max_epochs:
        warnings.warn(f"distribution.switch_epoch={theta} >= trainer.max_epochs={max_epochs}: the search "
                      "never reaches the joint distribution (use distribution.schedule=factorized to say so)")
    if max_epochs is not None and cfg.search.warmup_epochs >= max_epochs:
        warnings.warn(f"search.warmup_epochs={cfg.search.warmup_epochs} >= trainer.max_epochs={max_epochs}: "
                      "α never moves; the result is the uniform distribution's mode")
    return space, sampler, datamodule, (lo, hi)


def build_module(cfg: DictConfig, space, sampler):
    from fpnas.search_module import SearchModule

    o = cfg.optim
    return SearchModule(
        space=space, sampler=sampler, target_mflops=cfg.cost.target_mflops, beta=cfg.cost.beta,
        schedule=cfg.distribution.schedule, switch_epoch=cfg.distribution.switch_epoch,
        warmup_epochs=cfg.search.warmup_epochs, weight_importance=cfg.search.weight_importance,
        importance_temperature=cfg.search.importance_temperature,
        omega_lr=o.omega.lr, omega_momentum=o.omega.momentum, omega_nesterov=o.omega.nesterov,
        omega_weight_decay=o.omega.weight_decay, alpha_lr=o.alpha.lr, alpha_betas=tuple(o.alpha.betas),
        seed=cfg.seed, eval_batch_stats=cfg.search.eval_batch_stats, sync_bn=cfg.search.sync_bn,
        beta_lr=cfg.cost.get("beta_lr", 0.0), export_mode=(cfg.get("export") or {}).get("mode", "feasible"),
        export_max_candidates=(cfg.get("export") or {}).get("max_candidates", 100_000))


def resolve_ckpt_path(cfg: DictConfig, output_dir: Path) -> str | None:
    """``ckpt_path``: a file, or ``last``; with ``auto_resume`` an existing last.ckpt is used."""
    ckpt = cfg.get("ckpt_path")
    last = output_dir / "checkpoints" / "last.ckpt"
    if ckpt is None:
        if cfg.get("auto_resume") and last.exists():
            log.info("auto_resume: continuing from %s", last)
            return str(last)
        return None
    if ckpt == "last":
        path = output_dir / "checkpoints" / "last.ckpt"
        if not path.exists():
            raise ConfigError(f"ckpt_path=last: no {path}; pass the run's directory with "
                              "hydra.run.dir=<run dir> or give ckpt_path=<file>")
        return str(path)
    if not Path(ckpt).is_file():
        raise ConfigError(f"ckpt_path={ckpt}: no such file; give a checkpoint file, or ckpt_path=last with "
                          "hydra.run.dir=<the run's directory>")
    return str(ckpt)


def run_search(cfg: DictConfig) -> dict[str, Any]:
    """Run one search; returns the summary that is also written to search_summary.json."""
    import pytorch_lightning as pl
    from hydra.utils import instantiate

    from fpnas.threads import ThreadPolicy, apply_thread_policy

    start = time.time()
    output_dir = Path(cfg.paths.output_dir)
    threads = apply_thread_policy(cfg.get("threads", "auto"))  # before the data is loaded
    space, sampler, datamodule, (lo, hi) = validate(cfg)
    check_export_config(cfg.get("export"))  # export.top_k / max_candidates
    ckpt_path = resolve_ckpt_path(cfg, output_dir)
    pl.seed_everything(cfg.seed, workers=True)
    module = build_module(cfg, space, sampler)
    if ckpt_path:  # α's shape follows the phase (FD or JD): the checkpoint's phase is restored on load
        check_checkpoint("ckpt_path", ckpt_path, module, ignore=("distribution.", "beta"))  # β: see on_load_checkpoint
    callbacks = [instantiate(c) for c in (cfg.get("callbacks") or {}).values() if c is not None]
    callbacks.append(ThreadPolicy(cfg.get("threads", "auto")))
    loggers = [instantiate(c) for c in (cfg.get("logger") or {}).values() if c is not None]
    if ckpt_path:
        continue_logs(loggers, ckpt_path)
    trainer = instantiate_trainer(cfg.trainer, callbacks=callbacks, logger=loggers or False)
    check_run_directory(output_dir, ckpt_path)  # the config is valid (trainer included): now files may change
    write_hydra_files(cfg, output_dir)
    log.info("%s | target %.4g MFLOPs (space range %.4g-%.4g) | %s | %s", space.describe(),
             cfg.cost.target_mflops, lo, hi, sampler, threads)
    export_job_argv_for_ddp_children()
    AllReduceStats.reset()  # per job: a sweep runs several in one process
    fit_start = time.time()
    try:
        with restored_launcher_environment():
            trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)
    except NonFiniteLossError as exc:  # name the checkpoint to go back to (the module does not know it)
        last = output_dir / "checkpoints" / "last.ckpt"
        where = (f"the last good checkpoint is {last} (left as it was)" if last.is_file()
                 else "no checkpoint was written yet")
        raise NonFiniteLossError(f"{exc}; {where}; try a lower optim.omega.lr (now {cfg.optim.omega.lr:g}) or "
                                 f"optim.alpha.lr (now {cfg.optim.alpha.lr:g}) in a new run (a resume keeps the "
                                 "checkpoint's learning rates)") from exc
    except SystemExit as exc:  # Ctrl-C or SIGTERM stopped the fit after last.ckpt was saved: 130 / 143
        code = exit_status_of_interrupt(trainer)
        raise SystemExit(code if code is not None else exc.code) from None
    fit_time = time.time() - fit_start

    # the last validation of the fit scored the final argmax architecture; NaN when validation is off
    # (no trainer.validate here: under DDP it would start a second set of processes)
    val_acc = trainer.callback_metrics.get("val/acc", float("nan"))
    idx = module.exported_architecture()
    mflops, params_m = module.architecture_mflops(idx)
    summary = {
        "space": space.name,
        "target_mflops": float(cfg.cost.target_mflops),
        "arch_mflops": mflops,
        "arch_params_m": params_m,
        "export_mode": module.hparams.export_mode,
        "selection": module.selection(),
        "argmax_mflops": module.architecture_mflops(module.argmax_architecture())[0],
        "beta_final": float(module.beta),
        "val_acc": float(val_acc),
        "total_arch_samples": int(module.samples_total),
        "steps": int(module.steps_done),
        "epochs": int(trainer.current_epoch),
        "entropy_initial": float(module.entropy_initial),
        "entropy_final": float(module.distribution.entropy()),
        "k_initial": int(module.k_initial),
        "k_final": int(module.sampler(float(module.distribution.entropy()))),
        "phase_final": module.phase,
        "expected_mflops_final": module.expected_mflops(),
        "wall_time_s": round(time.time() - start, 2),
        "fit_time_s": round(fit_time, 2),
        "processes": int(trainer.world_size),
        "grad_allreduces": AllReduceStats.calls,
        "grad_allreduce_mb": round(AllReduceStats.bytes / 2**20, 3),
        "arch_file": str(output_dir / "arch.yaml"),
        "checkpoint": next((str(c.path) for c in trainer.callbacks if isinstance(c, LastCheckpoint)), None),
    }
    if (cfg.get("export") or {}).get("top_k"):
        summary["top_archs_file"] = str(output_dir / "top_archs.yaml")
    if trainer.is_global_zero:
        from fpnas.arch import architecture_from_indices
        from fpnas.summary import print_search_summary
        from fpnas.topk import export_from_search

        arch = architecture_from_indices(space, idx.tolist(), phase=module.phase, selection=module.selection())
        arch.save(output_dir / "arch.yaml")
        (output_dir / "search_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        export_from_search(module, output_dir, cfg.get("export"))  # top_archs.yaml when export.top_k > 0
        log.info("found %.4g MFLOPs (target %.4g), %.3f M params, val acc %.4f, %d samples in %.1f s -> %s",
                 mflops, summary["target_mflops"], params_m, summary["val_acc"],
                 summary["total_arch_samples"], summary["wall_time_s"], output_dir)
        print_search_summary(summary, arch, output_dir)
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
    return summary
