"""Lightning callbacks of the search: metric logging, pictures and architecture export."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.utilities import rank_zero_only

from fpnas.errors import ConfigError, check_option
from fpnas.report.plots import HISTORY_KEYS, search_figures
from fpnas.space.arch import architecture_from_indices


def step_numbers(pl_module) -> dict[str, float]:
    """MFLOPs (millions of MACs: the unit of logs and plots) of the most likely architecture and
    E[MFLOPs] after the current step, computed once per step and shared by the callbacks."""
    step = pl_module.steps_completed
    cached = getattr(pl_module, "_fpnas_step_numbers", None)
    if cached is None or cached[0] != step:
        argmax, _ = pl_module.architecture_cost(pl_module.argmax_architecture())
        cached = (step, {"argmax": argmax / 1e6, "expected": pl_module.expected_macs() / 1e6})
        pl_module._fpnas_step_numbers = cached
    return cached[1]


class SearchStatsLogger(pl.Callback):
    """Logs ``search/*`` every ``trainer.log_every_n_steps`` and ``prob/<decision>/<choice>`` every N steps.

    ``search/entropy`` (nats), ``search/K``, ``search/samples_total``, ``search/flops_expected``
    (E[MFLOPs] under the distribution), ``search/flops_argmax`` (MFLOPs of the most likely
    architecture), ``search/flops_sampled`` (mean MFLOPs of this step's samples),
    ``search/cost_penalty`` (mean hinge cost of this step's samples), ``search/beta`` (β of the cost
    term; it moves with ``cost.beta_lr`` > 0). For a constraint on another metric (latency,
    params): ``search/<metric>_expected`` and ``search/<metric>_argmax`` in its unit; with several
    constraints, ``search/beta_<metric>`` each (``search/beta`` is the first one's).

    Built from ``callbacks.search_stats`` of conf/callbacks/default.yaml, the one home of its values.
    """

    def __init__(self, prob_every_n_steps: int):
        check_option("callbacks.search_stats.prob_every_n_steps", prob_every_n_steps, int, 0, example=50)
        self.prob_every_n_steps = prob_every_n_steps

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        stats = pl_module.last_step
        if stats is None:
            return
        step = pl_module.steps_completed
        if self.prob_every_n_steps and (step - 1) % self.prob_every_n_steps == 0:
            self.log_probabilities(trainer, pl_module)
        # only at the loggers' cadence (trainer.log_every_n_steps): Lightning writes step values then and
        # keeps the latest one in between, and every value logged costs a blocking copy to the device
        if not getattr(getattr(trainer, "_logger_connector", None), "should_update_logs", True):
            return
        numbers = step_numbers(pl_module)
        log = dict(on_step=True, on_epoch=False, batch_size=1)
        pl_module.log("search/entropy", stats.entropy, prog_bar=True, **log)
        pl_module.log("search/K", float(stats.k), prog_bar=True, **log)
        pl_module.log("search/samples_total", float(pl_module.samples_completed), **log)
        pl_module.log("search/flops_expected", numbers["expected"], **log)
        pl_module.log("search/flops_argmax", numbers["argmax"], prog_bar=True, **log)
        pl_module.log("search/flops_sampled", float(stats.macs.mean()) / 1e6, **log)
        pl_module.log("search/cost_penalty", float(stats.costs.mean()), **log)
        pl_module.log("search/beta", pl_module.beta_value, **log)
        constraints = getattr(pl_module, "constraints", ())
        for c, table in zip(constraints, getattr(pl_module, "cost_tables", ())):
            if c.name != "flops":  # FLOPs are logged above, constrained or not
                scale = c.metric.scale
                argmax = float(table.lookup(pl_module.argmax_architecture())[0])
                pl_module.log(f"search/{c.name}_expected", pl_module.expected(c.name) / scale, **log)
                pl_module.log(f"search/{c.name}_argmax", argmax / scale, **log)
            if len(constraints) > 1:
                pl_module.log(f"search/beta_{c.name}", pl_module.beta_values[c.name], **log)

    @rank_zero_only
    def log_probabilities(self, trainer, pl_module) -> None:
        """Marginal probability of every choice, written straight to the loggers (many keys,
        on their own cadence, independent of ``log_every_n_steps``)."""
        marginal = pl_module.host_distribution().marginals()
        metrics = {}
        for d, decision in enumerate(pl_module.space.decisions):
            for choice, p in zip(decision.choices, marginal([d]).tolist()):
                metrics[f"prob/{decision.name}/{choice}"] = p
        for logger in trainer.loggers:
            # the step self.log uses (training batches), not global_step (2 optimizer steps per batch)
            logger.log_metrics(metrics, step=trainer.fit_loop.epoch_loop._batches_that_stepped)


class SearchPlots(pl.Callback):
    """Pictures of the search in ``dirpath``, every N epochs and at the end (rank zero).

    ``probabilities.png`` (marginal probability of every choice of every decision),
    ``entropy_k.png`` (entropy and K per step), ``mflops.png`` (sampled MFLOPs mean and
    min-max, E[MFLOPs], the most likely architecture's MFLOPs and the target per step). The same
    figures go to every TensorBoard logger (``add_figure``, tags ``plots/<name>``). The per-step
    history is a few floats appended per step (drawing happens only at the epoch cadence); it
    lives in the checkpoint, so a resumed search draws its whole trajectory. Above
    ``max_points`` steps every other point is dropped and then only every 2nd (4th, ...) step
    is recorded, so the history stays small in week-long searches.

    Built from ``callbacks.search_plots`` of conf/callbacks/default.yaml, the one home of its values.
    """

    def __init__(self, dirpath: str, *, every_n_epochs: int, max_points: int, dpi: int):
        if isinstance(every_n_epochs, bool) or not isinstance(every_n_epochs, int) or every_n_epochs < 0:
            raise ConfigError(
                f"callbacks.search_plots.every_n_epochs must be an integer >= 0 (0 = only at the "
                f"end), got {every_n_epochs!r}"
            )
        if not isinstance(max_points, int) or max_points < 10:
            raise ConfigError(f"callbacks.search_plots.max_points must be an integer >= 10, got {max_points!r}")

        self.dirpath = Path(dirpath)
        self.every_n_epochs = every_n_epochs
        self.max_points = max_points
        self.dpi = dpi
        self.history: dict[str, list] = {k: [] for k in HISTORY_KEYS}
        self.stride = 1  # record every stride-th step
        self._drawn_at: int | None = None

    # ------------------------------------------------------------------ history
    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        stats = pl_module.last_step
        step = pl_module.steps_completed
        if stats is None or (step - 1) % self.stride:
            return
        numbers = step_numbers(pl_module)
        macs = stats.macs
        row = (
            step,
            int(pl_module.current_epoch),
            float(stats.entropy),
            int(stats.k),
            float(macs.mean()) / 1e6,
            float(macs.min()) / 1e6,
            float(macs.max()) / 1e6,
            numbers["expected"],
            numbers["argmax"],
            pl_module.phase == "joint",
        )
        for key, value in zip(self.history, row):
            self.history[key].append(value)
        if len(self.history["step"]) > self.max_points:
            for key in self.history:
                self.history[key] = self.history[key][::2]
            self.stride *= 2

    def state_dict(self) -> dict[str, Any]:
        return {"history": {k: list(v) for k, v in self.history.items()}, "stride": self.stride}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        history = state_dict.get("history", {})
        self.history = {k: list(history.get(k, [])) for k in self.history}
        self.stride = int(state_dict.get("stride", 1))

    # ------------------------------------------------------------------ drawing
    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if self.every_n_epochs and (trainer.current_epoch + 1) % self.every_n_epochs == 0:
            self.draw(trainer, pl_module)

    def on_train_end(self, trainer, pl_module) -> None:
        self.draw(trainer, pl_module)

    @rank_zero_only
    def draw(self, trainer, pl_module) -> list[Path]:
        """Write the PNGs (overwritten each time: the latest state) and log them to TensorBoard."""
        step = int(trainer.global_step)
        if self._drawn_at == step:  # the last epoch's end and the train end: draw once
            return []
        self._drawn_at = step
        import matplotlib.pyplot as plt
        from pytorch_lightning.loggers import TensorBoardLogger

        figs = search_figures(pl_module.space, pl_module.host_distribution(), self.history, pl_module.target("flops"))
        # TensorBoardLogger's SummaryWriter, or any logger whose writer takes figures the same way
        boards = [
            lg.experiment
            for lg in trainer.loggers
            if isinstance(lg, TensorBoardLogger) or callable(getattr(lg.experiment, "add_figure", None))
        ]
        self.dirpath.mkdir(parents=True, exist_ok=True)
        paths = []
        for name, fig in figs.items():
            paths.append(self.dirpath / f"{name}.png")
            fig.savefig(paths[-1], dpi=self.dpi)
            for writer in boards:
                writer.add_figure(f"plots/{name}", fig, global_step=step, close=False)
            plt.close(fig)
        for writer in boards:
            writer.flush()
        return paths


class ArchitectureExporter(pl.Callback):
    """Writes the architecture the search currently returns (``SearchModule.exported_architecture``:
    by default the most probable one within the target) to ``arch.yaml`` after every epoch."""

    def __init__(self, path: str):
        self.path = Path(path)

    @rank_zero_only
    def export(self, pl_module) -> None:
        idx = pl_module.exported_architecture()
        arch = architecture_from_indices(
            pl_module.space,
            idx.tolist(),
            epoch=int(pl_module.current_epoch),
            phase=pl_module.phase,
            selection=pl_module.selection(),
        )
        arch.save(self.path)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.export(pl_module)

    def on_train_end(self, trainer, pl_module) -> None:
        self.export(pl_module)


__all__ = ["SearchStatsLogger", "SearchPlots", "ArchitectureExporter", "step_numbers"]
