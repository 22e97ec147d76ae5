"""Lightning callbacks of the search: metric logging and architecture export."""
from __future__ import annotations

from pathlib import Path

import pytorch_lightning as pl
from pytorch_lightning.utilities import rank_zero_info, rank_zero_only

from fpnas.arch import architecture_from_indices


class SearchStatsLogger(pl.Callback):
    """Logs ``search/*`` every step and ``prob/<decision>/<choice>`` every N steps.

    ``search/entropy`` (nats), ``search/K``, ``search/samples_total``, ``search/flops_expected``
    (E[MFLOPs] under the distribution), ``search/flops_argmax`` (MFLOPs of the most likely
    architecture), ``search/flops_sampled`` (mean MFLOPs of this step's samples),
    ``search/cost_penalty`` (mean hinge cost of this step's samples).
    """

    def __init__(self, prob_every_n_steps: int = 50):
        if prob_every_n_steps < 0:
            raise ValueError("prob_every_n_steps must be >= 0 (0 disables probability logging)")
        self.prob_every_n_steps = prob_every_n_steps

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        stats = pl_module.last_step
        if stats is None:
            return
        argmax_mflops, _ = pl_module.architecture_mflops(pl_module.argmax_architecture())
        log = dict(on_step=True, on_epoch=False, batch_size=1)
        pl_module.log("search/entropy", stats.entropy, prog_bar=True, **log)
        pl_module.log("search/K", float(stats.k), prog_bar=True, **log)
        pl_module.log("search/samples_total", float(pl_module.samples_total), **log)
        pl_module.log("search/flops_expected", pl_module.expected_mflops(), **log)
        pl_module.log("search/flops_argmax", argmax_mflops, prog_bar=True, **log)
        pl_module.log("search/flops_sampled", float(stats.macs.mean()) / 1e6, **log)
        pl_module.log("search/cost_penalty", float(stats.costs.mean()), **log)
        step = int(pl_module.steps_done)
        if self.prob_every_n_steps and (step - 1) % self.prob_every_n_steps == 0:
            self.log_probabilities(trainer, pl_module)

    @rank_zero_only
    def log_probabilities(self, trainer, pl_module) -> None:
        """Marginal probability of every choice, written straight to the loggers (many keys,
        on their own cadence, independent of ``log_every_n_steps``)."""
        dist = pl_module.distribution
        metrics = {}
        for d, decision in enumerate(pl_module.space.decisions):
            for choice, p in zip(decision.choices, dist.marginal([d]).tolist()):
                metrics[f"prob/{decision.name}/{choice}"] = p
        for logger in trainer.loggers:
            logger.log_metrics(metrics, step=trainer.global_step)


class ArchitectureExporter(pl.Callback):
    """Writes the current most likely architecture to ``arch.yaml`` after every epoch."""

    def __init__(self, path: str):
        self.path = Path(path)

    @rank_zero_only
    def export(self, pl_module) -> None:
        idx = pl_module.argmax_architecture()
        arch = architecture_from_indices(pl_module.space, idx.tolist(), epoch=int(pl_module.current_epoch),
                                         phase=pl_module.phase)
        arch.save(self.path)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.export(pl_module)

    def on_train_end(self, trainer, pl_module) -> None:
        self.export(pl_module)


class CheckpointOnInterrupt(pl.Callback):
    """Ctrl-C or SIGTERM (cluster preemption) saves ``last.ckpt`` before the process exits.

    Lightning stops after the current batch on SIGTERM; this writes the state at that point
    where ``ModelCheckpoint`` would only have the last epoch's.
    """

    def __init__(self, path: str):
        self.path = Path(path)

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        from pytorch_lightning.utilities.exceptions import SIGTERMException

        if isinstance(exception, (KeyboardInterrupt, SIGTERMException)) and trainer.state.fn == "fit":
            trainer.save_checkpoint(self.path)
            rank_zero_info(f"[fpnas] interrupted at step {int(pl_module.steps_done)}: saved {self.path}; "
                           "resume with ckpt_path=last (same hydra.run.dir)")


__all__ = ["SearchStatsLogger", "ArchitectureExporter", "CheckpointOnInterrupt"]
