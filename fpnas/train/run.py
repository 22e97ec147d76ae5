"""The body of ``train.py``: build the plain model of an architecture, train, test, report."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf, open_dict

from fpnas.errors import ConfigError, check_option
from fpnas.report.console import progress_callbacks
from fpnas.report.log_handler import check_progress
from fpnas.report.summary import print_train_summary, run_times
from fpnas.report.tables import architecture_table, table_title, wide_console
from fpnas.runtime.checkpoint import check_checkpoint, verified_checkpoint
from fpnas.runtime.cli import in_sweep
from fpnas.runtime.config import check_required, instantiate_checked
from fpnas.runtime.lock import run_lock
from fpnas.runtime.resume import check_run_directory, finished_run, write_hydra_files
from fpnas.runtime.run_dir import RunDir
from fpnas.runtime.settings import check_same_settings
from fpnas.runtime.threads import apply_thread_policy, processes_per_node
from fpnas.runtime.trainer import build_trainer, end_distributed, fit
from fpnas.space.reference import resolve_architecture, searchpath_dirs
from fpnas.train.distill import load_teacher, warm_start_from_search
from fpnas.train.module import TrainModule

log = logging.getLogger("fpnas")

TRAIN_SPLITS = ("omega", "alpha")
OPTIMIZERS = ("sgd", "momentum", "nesterov", "rmsproptf", "rmsprop", "adamw", "adam", "lamb", "lars")


def check_config(cfg: DictConfig) -> None:
    """Early checks (names, types, ranges), with messages that say what to change."""

    check_required(cfg)
    check_progress(cfg.progress)
    r = cfg.recipe
    if str(r.opt).lower() not in OPTIMIZERS:
        raise ConfigError(f"recipe.opt={r.opt!r}: use one of {list(OPTIMIZERS)}")
    check_option("recipe.lr", r.lr, float, 0, exclusive=True, example=0.05)
    for key, example in (("weight_decay", 4e-5), ("momentum", 0.9), ("warmup_lr", 1e-3), ("min_lr", 0)):
        check_option(f"recipe.{key}", r.get(key, 0.0), float, 0, example=example)
    check_option("recipe.warmup_epochs", r.get("warmup_epochs", 0), int, 0, example=1)
    if not 0 <= check_option("recipe.label_smoothing", r.label_smoothing, float, 0, 1, example=0.1) < 1:
        raise ConfigError(f"recipe.label_smoothing must be in [0, 1), got {r.label_smoothing}")
    if not 0 <= check_option("recipe.ema_decay", r.ema_decay, float, 0, 1, example=0.99) < 1:
        raise ConfigError(f"recipe.ema_decay must be in [0, 1) (0 = no EMA), got {r.ema_decay}")
    if not check_option("dry_run", cfg.get("dry_run", False), bool, example="true"):  # a dry run trains nothing
        try:
            check_option("trainer.max_epochs", cfg.trainer.get("max_epochs"), int, 1, example=15)
        except ConfigError as exc:
            raise ConfigError(
                f"{exc}; to build the model and count its MFLOPs and params without training, use dry_run=true"
            ) from None
    check_option("input_size", cfg.get("input_size"), int, 8, example=224, none_ok=True)
    check_option("seed", cfg.seed, int, 0, example=0)
    for key in ("drop_rate", "drop_path_rate"):
        check_option(f"model.{key}", cfg.model[key], float, 0, 0.99, example=0.2)
    check_option("model.channels_last", cfg.model.get("channels_last", False), bool, example="true")
    d = cfg.distill
    if d.teacher:
        check_option("distill.weight", d.weight, float, 0, 1, example=0.5)
        check_option("distill.temperature", d.temperature, float, 0, exclusive=True, example=1.0)
    for key in ("init.from_search", "distill.teacher"):  # a damaged file fails here, not inside torch.load
        value = OmegaConf.select(cfg, key)
        if value and Path(str(value)).is_file():
            check_checkpoint(key, value)
    train_splits(cfg)


def train_splits(cfg: DictConfig) -> tuple[str, ...]:
    """``train_on``: the splits the model is trained on (default ω and α; ω only keeps α a validation split)."""
    value = cfg.get("train_on", list(TRAIN_SPLITS))
    splits = [value] if isinstance(value, str) else list(value or [])
    if not splits or any(s not in TRAIN_SPLITS for s in splits) or len(set(splits)) != len(splits):
        raise ConfigError(
            f"train_on={value} is invalid: it must be a non-empty list of {list(TRAIN_SPLITS)}, "
            "e.g. train_on=[omega,alpha] (all training images) or train_on=[omega]"
        )
    return tuple(s for s in TRAIN_SPLITS if s in splits)


def build_train_module(cfg: DictConfig, arch, datamodule):
    """The :class:`~fpnas.train.module.TrainModule` of ``train.py`` for ``arch``: the plain model (with its
    warm start), the teacher and the recipe of ``cfg`` (shared with ``benchmarks/ground_truth.py``)."""

    model = arch.build(drop_rate=cfg.model.drop_rate, drop_path_rate=cfg.model.drop_path_rate)
    if cfg.init.get("from_search"):
        copied = warm_start_from_search(model, arch, cfg.init.from_search)
        log.info("warm start: %d tensors from the super-net of %s", copied, cfg.init.from_search)
    teacher = None
    if cfg.distill.get("teacher"):
        teacher = load_teacher(
            cfg.distill.teacher,
            datamodule.num_classes,
            datamodule.in_chans,
            cfg.distill.get("teacher_checkpoint"),
            cfg.distill.get("teacher_ema", True),
        )
    recipe = OmegaConf.to_container(cfg.recipe, resolve=True)
    return TrainModule(
        model,
        arch.space.num_classes,
        arch=arch.to_dict(),
        teacher=teacher,
        distill_weight=cfg.distill.weight,
        distill_temperature=cfg.distill.temperature,
        channels_last=cfg.model.get("channels_last", False),
        **recipe,
    )


def evaluate(trainer, module, datamodule) -> dict[str, float]:
    """Accuracy on the held-out test split (raw weights and EMA), and on the α split when the model was
    not trained on it (``alpha_acc``, ``alpha_acc_ema``: a validation split then)."""
    out = {}
    splits = [("test", datamodule.test_dataloader)]
    if "alpha" not in datamodule.train_splits:
        splits.append(("alpha", datamodule.val_dataloader))  # α in a fixed order
    for split, loader in splits:
        module.eval_split = split
        metrics = trainer.test(module, dataloaders=loader(), verbose=False)[0]
        for name in ("acc", "acc_ema", "acc5", "acc5_ema"):
            if f"{split}/{name}" in metrics:
                out[f"{split}_{name}"] = float(metrics[f"{split}/{name}"])
        out.setdefault(f"{split}_acc_ema", out[f"{split}_acc"])  # no EMA: the raw weights are the model
    module.eval_split = "test"
    return out


def hydra_searchpath() -> list[str]:
    """The run's ``hydra.searchpath`` (empty outside a Hydra run, e.g. under ``compose``)."""
    from hydra.core.hydra_config import HydraConfig

    return list(HydraConfig.get().searchpath or []) if HydraConfig.initialized() else []


def dry_run(cfg: DictConfig, arch) -> dict:
    """``dry_run=true``: build the model of ``arch`` and print the per-block table of ``python -m fpnas.show``
    and its totals; nothing is trained and no checkpoint or run file is written."""

    arch.build(drop_rate=cfg.model.drop_rate, drop_path_rate=cfg.model.drop_path_rate)  # it builds
    macs, params = arch.complexity()
    console = wide_console()
    console.print(architecture_table(arch, title=table_title(str(cfg.arch), arch)))
    console.print(
        f"dry run: {macs / 1e6:.4f} MFLOPs (MACs), {params:,} params ({params / 1e6:.4f} M) at "
        f"{arch.space.input_size} px; nothing trained (drop dry_run=true to train)"
    )
    # train.py returns test_acc (None: there is none)
    return {
        "arch": str(cfg.arch),
        "space": arch.space.name,
        "input_size": arch.space.input_size,
        "num_classes": arch.space.num_classes,
        "mflops": macs / 1e6,
        "params_m": params / 1e6,
        "dry_run": True,
        "test_acc": None,
    }


def resolve_train_ckpt_path(cfg: DictConfig, run: RunDir) -> str | None:
    """``ckpt_path`` (a file, or ``last``; ``+auto_resume=true``: last.ckpt when there is one), checked against
    its checksum: a damaged (or missing) last.ckpt falls back to previous.ckpt with a notice, none intact is
    refused (:func:`~fpnas.runtime.checkpoint.verified_checkpoint`). A missing file is left to
    :func:`~fpnas.runtime.checkpoint.check_checkpoint` to report."""
    ckpt, last = cfg.get("ckpt_path"), run.last_checkpoint
    saved = last.exists() or run.previous_checkpoint.exists()  # previous.ckpt alone: a save cut short
    if ckpt is None:
        if (cfg.get("auto_resume") is True or in_sweep()) and saved:  # a sweep run again continues its jobs
            return verified_checkpoint("auto_resume", last, run_last=last)
        return None
    if ckpt == "last":
        return verified_checkpoint("ckpt_path=last", last, run_last=last) if saved else str(last)
    return verified_checkpoint(f"ckpt_path={ckpt}", ckpt, run_last=last) if Path(str(ckpt)).is_file() else str(ckpt)


def run_train(cfg: DictConfig) -> dict:
    """Train one architecture; returns the summary also written to train_summary.json. The run directory is
    locked for the run's life before anything is written into it (another run there is refused)."""
    if cfg.get("dry_run") is True:  # writes nothing: no directory to own
        return _train(cfg)
    with run_lock(cfg.paths.output_dir, "train.py"):
        return _train(cfg)


def _train(cfg: DictConfig) -> dict:
    import pytorch_lightning as pl

    start = time.time()
    threads = apply_thread_policy(cfg.threads, processes=processes_per_node(cfg.trainer))
    if not cfg.get("arch"):
        raise ConfigError(
            "no architecture given: pass arch=<path to arch.yaml written by search.py> or a "
            "registered name (e.g. arch=mobilenetv2_100)"
        )
    check_config(cfg)
    arch, is_reference = resolve_architecture(cfg.arch, searchpath_dirs(hydra_searchpath()))
    input_size = cfg.get("input_size") or arch.space.input_size
    with open_dict(cfg):
        cfg.data.image_size = input_size  # train at the architecture's (or the requested) input size
    datamodule = instantiate_checked(cfg.data, "data")  # cheap: nothing is loaded before setup()
    adapt = cfg.model.adapt_to_data
    adapt = is_reference if adapt == "auto" else bool(adapt)  # a reference: a registered name or a fixed inline space
    data_name = type(datamodule).__name__
    sp = arch.space
    if (
        adapt and (datamodule.in_chans, datamodule.num_classes) != (sp.in_chans, sp.num_classes)
    ) or input_size != sp.input_size:
        arch = arch.with_data(
            datamodule.num_classes if adapt else sp.num_classes,
            datamodule.in_chans if adapt else sp.in_chans,
            input_size if input_size != sp.input_size else None,
        )
    if datamodule.in_chans != arch.space.in_chans:
        raise ConfigError(
            f"architecture {cfg.arch} takes {arch.space.in_chans}-channel input but data "
            f"{data_name} has {datamodule.in_chans} channels (model.adapt_to_data=true adapts the stem)"
        )
    if datamodule.num_classes != arch.space.num_classes:
        raise ConfigError(
            f"architecture {cfg.arch} has {arch.space.num_classes} classes but data "
            f"{data_name} has {datamodule.num_classes} (model.adapt_to_data=true adapts the classifier)"
        )
    if cfg.get("dry_run"):  # the data module is constructed (classes, channels), never set up
        return dry_run(cfg, arch)
    output_dir = Path(cfg.paths.output_dir)
    datamodule.train_splits = train_splits(cfg)
    ckpt_path = resolve_train_ckpt_path(cfg, RunDir(output_dir))
    if ckpt_path:  # before anything is logged: a refused resume leaves the run's log as it was
        check_same_settings(ckpt_path, cfg, world_size=None)  # architecture, data, recipe, seed... as the checkpoint's
        done = finished_run(RunDir(output_dir), RunDir(output_dir).train_summary, ckpt_path, cfg.trainer)
        if done is not None:
            return done
    pl.seed_everything(cfg.seed, workers=True)
    module = build_train_module(cfg, arch, datamodule)
    if ckpt_path:  # a damaged file or one of another architecture fails here, not inside Lightning
        check_checkpoint("ckpt_path", ckpt_path, module, resumes="train.py")
    trainer = build_trainer(cfg, progress_callbacks(cfg.trainer, cfg.progress), ckpt_path, started=start)
    if ckpt_path:  # the process count too, now that it is known
        check_same_settings(ckpt_path, cfg, trainer.world_size)
    check_run_directory(output_dir, ckpt_path)  # the config is valid (trainer included): now files may change
    write_hydra_files(cfg, output_dir)
    macs, params = arch.complexity()
    if trainer.is_global_zero:
        arch.save(RunDir(output_dir).arch)
    log.info(
        "training %s (%s): %.4g MFLOPs, %.4g M params at %d px | %s",
        cfg.arch,
        arch.space.name,
        macs / 1e6,
        params / 1e6,
        arch.space.input_size,
        threads,
    )
    train_time = fit(trainer, module, datamodule, ckpt_path, RunDir(output_dir))
    metrics = evaluate(trainer, module, datamodule)
    summary = {
        "arch": str(cfg.arch),
        "space": arch.space.name,
        "input_size": arch.space.input_size,
        "num_classes": arch.space.num_classes,
        "train_on": list(datamodule.train_splits),
        **metrics,
        "mflops": macs / 1e6,
        "params_m": params / 1e6,
        "epochs": int(trainer.current_epoch),
        "steps": int(trainer.global_step),
        "ema": cfg.recipe.ema_decay > 0,
        "distill_teacher": str(cfg.distill.teacher) if cfg.distill.get("teacher") else None,
        "init_from_search": str(cfg.init.from_search) if cfg.init.get("from_search") else None,
        "threads": torch.get_num_threads(),  # float sums depend on it: part of what a seed reproduces
        "threads_setting": str(cfg.threads),
        # train_time_s, wall_time_s: all segments of a resumed run; *_last_segment_s: this one
        **run_times(trainer, start, train_time, "train_time_s"),
    }
    if trainer.is_global_zero:
        RunDir(output_dir).train_summary.write_text(json.dumps(summary, indent=2) + "\n")
        log.info(
            "test acc %.4f (EMA %.4f), %.4g MFLOPs, in %.1f s -> %s",
            summary["test_acc"],
            summary["test_acc_ema"],
            summary["mflops"],
            summary["wall_time_s"],
            output_dir,
        )

        print_train_summary(summary, arch, output_dir)
    end_distributed()
    return summary
