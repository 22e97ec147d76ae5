"""The body of ``train.py``: build the plain model of an architecture file, train, test, report."""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import torch
from omegaconf import DictConfig, open_dict

from fpnas.arch import load_architecture
from fpnas.errors import ConfigError

log = logging.getLogger("fpnas")


def run_train(cfg: DictConfig) -> dict:
    import pytorch_lightning as pl
    from hydra.utils import instantiate

    from fpnas.train_module import TrainModule

    start = time.time()
    if not cfg.get("arch"):
        raise ConfigError("no architecture given: pass arch=<path to arch.yaml written by search.py>")
    arch = load_architecture(cfg.arch)
    space = arch.space
    with open_dict(cfg):
        cfg.data.image_size = space.input_size  # train at the architecture's input size
    datamodule = instantiate(cfg.data)  # cheap: nothing is loaded before setup()
    if datamodule.in_chans != space.in_chans:
        raise ConfigError(f"architecture {cfg.arch} takes {space.in_chans}-channel input but data "
                          f"{type(datamodule).__name__} has {datamodule.in_chans} channels")
    if datamodule.num_classes != space.num_classes:
        raise ConfigError(f"architecture {cfg.arch} has {space.num_classes} classes but data "
                          f"{type(datamodule).__name__} has {datamodule.num_classes}")
    output_dir = Path(cfg.paths.output_dir)
    pl.seed_everything(cfg.seed, workers=True)
    model = arch.build(drop_rate=cfg.model.drop_rate)
    module = TrainModule(model, space.num_classes, **cfg.optim)
    loggers = [instantiate(c) for c in (cfg.get("logger") or {}).values() if c is not None]
    callbacks = [instantiate(c) for c in (cfg.get("callbacks") or {}).values() if c is not None]
    trainer = instantiate(cfg.trainer, logger=loggers or False, callbacks=callbacks)
    macs, params = arch.complexity()
    log.info("training %s: %.4g MFLOPs, %.4g M params", cfg.arch, macs / 1e6, params / 1e6)
    trainer.fit(module, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))
    test_acc = trainer.test(module, datamodule=datamodule, verbose=False)[0]["test/acc"]
    summary = {"arch": str(cfg.arch), "test_acc": float(test_acc), "mflops": macs / 1e6,
               "params_m": params / 1e6, "epochs": int(trainer.current_epoch),
               "wall_time_s": round(time.time() - start, 2)}
    if trainer.is_global_zero:
        (output_dir / "train_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        log.info("test acc %.4f (%.4g MFLOPs) in %.1f s -> %s", summary["test_acc"], summary["mflops"],
                 summary["wall_time_s"], output_dir)
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
    return summary
