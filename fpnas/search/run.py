"""The body of ``search.py``: check the config, build everything from it, search, write the results."""

from __future__ import annotations

import json
import logging
import time
import warnings
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from fpnas.errors import ConfigError, NonFiniteLossError
from fpnas.report.console import progress_callbacks
from fpnas.report.summary import (
    family_summary,
    print_family_summary,
    print_search_summary,
    search_summary,
    write_family,
)
from fpnas.runtime.checkpoint import check_checkpoint, verified_checkpoint
from fpnas.runtime.cli import in_sweep
from fpnas.runtime.config import instantiate_checked
from fpnas.runtime.distributed import AllReduceStats
from fpnas.runtime.launch import export_job_argv_for_ddp_children, restored_launcher_environment
from fpnas.runtime.lock import run_lock
from fpnas.runtime.resume import check_run_directory, check_same_space, finished_run, write_hydra_files
from fpnas.runtime.run_dir import RunDir
from fpnas.runtime.settings import check_same_settings
from fpnas.runtime.threads import apply_thread_policy, processes_per_node
from fpnas.runtime.trainer import build_trainer, end_distributed, fit
from fpnas.search.options import check_options
from fpnas.search.topk import export_from_search
from fpnas.space.arch import architecture_from_indices
from fpnas.space.spec import SearchSpace

log = logging.getLogger("fpnas")


def build_space(cfg: DictConfig):

    spec = OmegaConf.to_container(cfg.space, resolve=True)
    return SearchSpace(spec, name=spec.get("name"))


def warn_about_epochs(cfg: DictConfig) -> None:
    """Settings that are valid but make part of the search never happen."""
    max_epochs = cfg.trainer.get("max_epochs")
    if max_epochs is None:
        return
    if cfg.distribution.schedule == "coarse_to_fine" and int(cfg.distribution.switch_epoch) >= max_epochs:
        warnings.warn(
            f"distribution.switch_epoch={cfg.distribution.switch_epoch} >= trainer.max_epochs={max_epochs}: "
            "the search never reaches the joint distribution (use distribution.schedule=factorized to say so)",
            stacklevel=2,
        )
    if cfg.search.warmup_epochs >= max_epochs:
        warnings.warn(
            f"search.warmup_epochs={cfg.search.warmup_epochs} >= trainer.max_epochs={max_epochs}: "
            "α never moves; the result is the uniform distribution's mode",
            stacklevel=2,
        )


def build_search_module(cfg: DictConfig, space: SearchSpace, sampler, **arguments):
    """The search module of ``cfg``: the ``search`` group's class and arguments, given the other groups'
    objects (space, sampler, budgets, schedule, final pick, optimizers, seed); ``arguments`` replace any of
    them (tests, benchmarks)."""
    groups = dict(
        space=space,
        sampler=sampler,
        constraints=cfg.cost.constraints,
        schedule=instantiate_checked(cfg.distribution, "distribution"),
        final_pick=instantiate_checked(cfg.export, "export"),
        omega_optimizer=cfg.optim.omega,
        alpha_optimizer=cfg.optim.alpha,
        seed=cfg.seed,
    )
    return instantiate_checked(cfg.search, "search", **(groups | arguments))


def validate_search_config(cfg: DictConfig) -> None:
    """Every check ``search.py`` makes before any work, without seeding or writing anything: what a sweep
    runs for each of its jobs before the first one starts (raises :class:`ConfigError`)."""
    check_options(cfg)
    datamodule = instantiate_checked(cfg.data, "data")
    space = build_space(cfg).with_num_classes(datamodule.num_classes, datamodule.in_chans)
    sampler = instantiate_checked(cfg.sampler, "sampler")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the job itself warns (warn_about_epochs)
        build_search_module(cfg, space, sampler)


def instantiate_search(cfg: DictConfig):
    """``(search module, data module)`` of ``cfg``, as ``search.py`` builds them: every option checked,
    the space fitted to the data's classes and channels, the weights seeded; no data loaded yet."""
    import pytorch_lightning as pl

    check_options(cfg)
    datamodule = instantiate_checked(cfg.data, "data")  # cheap by contract: nothing is loaded before setup()
    space = build_space(cfg).with_num_classes(datamodule.num_classes, datamodule.in_chans)
    sampler = instantiate_checked(cfg.sampler, "sampler")
    pl.seed_everything(cfg.seed, workers=True)  # the super-net's initial weights
    module = build_search_module(cfg, space, sampler)
    warn_about_epochs(cfg)
    return module, datamodule


def describe_targets(module) -> str:
    """``target 0.6 MFLOPs (space range 0.2047-2.063)`` for every constraint of the search; ``targets 0.3,
    0.45, 0.6 MFLOPs (...)`` for a family of targets."""
    parts = []
    for j, (c, table) in enumerate(zip(module.constraints, module.cost_tables)):
        lo, hi = (v / c.metric.scale for v in table.value_range())
        targets = list(dict.fromkeys(m.constraints[j].target for m in module.members))
        listed = ", ".join(f"{t:.4g}" for t in targets)
        parts.append(
            f"target{'s' if len(targets) > 1 else ''} {listed} {c.metric.unit} (space range {lo:.4g}-{hi:.4g})"
        )
    return ", ".join(parts)


def resolve_ckpt_path(cfg: DictConfig, run: RunDir) -> str | None:
    """``ckpt_path``: a file, or ``last``; with ``auto_resume`` an existing last.ckpt is used. The file is
    checked against its checksum first: a damaged (or missing) last.ckpt falls back to previous.ckpt with a
    notice, and none intact is refused (:func:`~fpnas.runtime.checkpoint.verified_checkpoint`); the path
    returned is the one the run resumes from."""
    ckpt = cfg.get("ckpt_path")
    last = run.last_checkpoint
    saved = last.exists() or run.previous_checkpoint.exists()  # previous.ckpt alone: a save cut short
    if ckpt is None:
        if (cfg.get("auto_resume") is True or in_sweep()) and saved:  # a sweep run again continues its jobs
            path = verified_checkpoint("auto_resume", last, run_last=last)
            return path
        return None
    if ckpt == "last":
        if not saved:
            raise ConfigError(
                f"ckpt_path=last: no {last}; pass the run's directory with "
                "hydra.run.dir=<run dir> or give ckpt_path=<file>"
            )
        return verified_checkpoint("ckpt_path=last", last, run_last=last)
    if not Path(ckpt).is_file():
        raise ConfigError(
            f"ckpt_path={ckpt}: no such file; give a checkpoint file, or ckpt_path=last with "
            "hydra.run.dir=<the run's directory>"
        )
    return verified_checkpoint(f"ckpt_path={ckpt}", ckpt, run_last=last)


def write_member_results(cfg: DictConfig, module, trainer, run: RunDir, start: float, fit_time: float) -> dict:
    """The results of the member in view (the search's own, for a single target) in ``run``: arch.yaml,
    search_summary.json, top_archs.yaml; logged and printed. Returns its summary (on every rank)."""
    summary = search_summary(module, trainer, run, start, fit_time, cfg.export.top_k)
    # float sums depend on the thread count: part of what a seed reproduces (threads=load may change it)
    summary |= {"threads": torch.get_num_threads(), "threads_setting": str(cfg.threads)}
    if trainer.is_global_zero:
        arch = architecture_from_indices(
            module.space, module.exported_architecture().tolist(), phase=module.phase, selection=module.selection()
        )
        run.root.mkdir(parents=True, exist_ok=True)
        arch.save(run.arch)
        run.search_summary.write_text(json.dumps(summary, indent=2) + "\n")
        export_from_search(module, run.root)  # top_archs.yaml when export.top_k > 0
        log.info(
            "found %s, %.3f M params, val acc %.4f, %d samples in %.1f s -> %s",
            ", ".join(
                f"{c['arch']:.4g} {c['unit']} (target {c['target']:.4g})" for c in summary["constraints"].values()
            ),
            summary["arch_params_m"],
            summary["val_acc"],
            summary["total_arch_samples"],
            summary["wall_time_s"],
            run.root,
        )
        if len(module.members) == 1:  # a family prints one table of its members instead
            print_search_summary(summary, arch, run.root)
    return summary


def run_search(cfg: DictConfig) -> dict[str, Any]:
    """Run one search; returns the summary that is also written to search_summary.json. The run directory
    is locked for the run's life before anything is written into it (another run there is refused)."""
    with run_lock(cfg.paths.output_dir, "search.py"):
        return _search(cfg)


def _search(cfg: DictConfig) -> dict[str, Any]:

    start = time.time()
    output_dir = Path(cfg.paths.output_dir)
    run = RunDir(output_dir)
    threads = apply_thread_policy(cfg.threads, processes=processes_per_node(cfg.trainer))  # before the data is loaded
    ckpt_path = resolve_ckpt_path(cfg, run)
    if ckpt_path:  # before anything is logged: a refused resume leaves the run's log as it was
        check_same_settings(ckpt_path, cfg, world_size=None)  # space, data, cost, seed... as the checkpoint's
        done = finished_run(run, run.search_summary, ckpt_path, cfg.trainer)
        if done is not None:
            return done
        if cfg.get("ckpt_path") is None:
            log.info("auto_resume: continuing from %s", ckpt_path)
    module, datamodule = instantiate_search(cfg)
    if ckpt_path:  # the members' state is not compared: α's shape follows the phase (FD or JD), restored on
        # load, and checkpoints of earlier versions keep it under other names (see upgrade_state_dict)
        member_state = ("members.", "distribution.", "beta", "entropy_initial", "k_initial")
        check_checkpoint("ckpt_path", ckpt_path, module, ignore=member_state, resumes="search.py")
        check_same_space(ckpt_path, module.space)
    trainer = build_trainer(cfg, progress_callbacks(cfg.trainer, cfg.progress), ckpt_path, started=start)
    if ckpt_path:  # what the checkpoint was computed with (space, data, cost, seed, processes...) = the config's
        check_same_settings(ckpt_path, cfg, trainer.world_size)  # the process count too, now that it is known
    check_run_directory(output_dir, ckpt_path)  # the config is valid (trainer included): now files may change
    write_hydra_files(cfg, output_dir)
    log.info("%s | %s | %s | %s", module.space.describe(), describe_targets(module), module.sampler, threads)
    export_job_argv_for_ddp_children()
    AllReduceStats.reset()  # per job: a sweep runs several in one process
    try:
        with restored_launcher_environment():
            fit_time = fit(trainer, module, datamodule, ckpt_path, run)
    except NonFiniteLossError as exc:  # name the checkpoint to go back to (the module does not know it)
        last = run.last_checkpoint
        where = (
            f"the last good checkpoint is {last} (left as it was)"
            if last.is_file()
            else "no checkpoint was written yet"
        )
        if ckpt_path:  # a checkpoint damaged where no checksum could tell diverges right after the resume
            fix = (
                f"move it aside and resume with ckpt_path=last, which falls back to {run.previous_checkpoint}"
                if Path(ckpt_path).resolve() == last.resolve() and run.previous_checkpoint.is_file()
                else "resume from an earlier checkpoint, or start a new run"
            )
            where = (
                f"the run resumed from {ckpt_path}: if it diverged right after the resume, that checkpoint "
                f"may be damaged ({fix}); else {where}"
            )
        raise NonFiniteLossError(
            f"{exc}; {where}; try a lower optim.omega.lr (now {cfg.optim.omega.get('lr')}) or "
            f"optim.alpha.lr (now {cfg.optim.alpha.get('lr')}) in a new run (a resume keeps the "
            "checkpoint's learning rates)"
        ) from exc

    # no trainer.validate here: under DDP it would start a second set of processes
    family = len(module.members) > 1
    summaries = []
    for index in range(len(module.members)):
        with module.viewing(index):
            summaries.append(
                write_member_results(cfg, module, trainer, run.member(index) if family else run, start, fit_time)
            )
    summary = summaries[0]
    if family:
        summary = family_summary(summaries, run)
    if trainer.is_global_zero and family:
        run.search_summary.write_text(json.dumps(summary, indent=2) + "\n")
        write_family(summary, run)
        print_family_summary(summary, output_dir)
    end_distributed()
    return summary
