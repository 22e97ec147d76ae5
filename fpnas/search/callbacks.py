"""Lightning callbacks of the search: metric logging, pictures and architecture export."""

from __future__ import annotations

from contextlib import nullcontext as _nothing
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.utilities import rank_zero_only

from fpnas.errors import ConfigError, check_option
from fpnas.report.plots import HISTORY_KEYS, search_figures
from fpnas.runtime.run_dir import member_path
from fpnas.space.arch import architecture_from_indices


def step_numbers(pl_module) -> dict[str, float]:
    """MFLOPs (millions of MACs: the unit of logs and plots) of the most likely architecture and
    E[MFLOPs] of the member in view after the current step, computed once per step and shared by the callbacks."""
    key = (pl_module.steps_completed, getattr(pl_module, "viewed", 0))
    cached = getattr(pl_module, "_fpnas_step_numbers", None)
    if cached is None or cached[0] != key:
        argmax, _ = pl_module.architecture_cost(pl_module.argmax_architecture())
        cached = (key, {"argmax": argmax / 1e6, "expected": pl_module.expected_macs() / 1e6})
        pl_module._fpnas_step_numbers = cached
    return cached[1]


def member_count(pl_module) -> int:
    """How many targets the search has (1 for a module without members)."""
    return len(getattr(pl_module, "members", ())) or 1


class SearchStatsLogger(pl.Callback):
    """Logs ``search/*`` every ``trainer.log_every_n_steps`` and ``prob/<decision>/<choice>`` every N steps.

    ``search/entropy`` (nats), ``search/K``, ``search/samples_total``, ``search/flops_expected``
    (E[MFLOPs] under the distribution), ``search/flops_argmax`` (MFLOPs of the most likely
    architecture), ``search/flops_sampled`` (mean MFLOPs of this step's samples),
    ``search/cost_penalty`` (mean hinge cost of this step's samples), ``search/beta`` (β of the cost
    term; it moves with ``cost.beta_lr`` > 0). For a constraint on another metric (latency,
    params): ``search/<metric>_expected`` and ``search/<metric>_argmax`` in its unit; with several
    constraints, ``search/beta_<metric>`` each (``search/beta`` is the first one's). A search for several
    targets logs each member's under ``search/target_<i>/`` (``search/target_1/entropy``...), and the
    probabilities as ``prob/target_<i>/<decision>/<choice>``.

    Built from ``callbacks.search_stats`` of conf/callbacks/default.yaml, the one home of its values.
    """

    def __init__(self, prob_every_n_steps: int):
        check_option("callbacks.search_stats.prob_every_n_steps", prob_every_n_steps, int, 0, example=50)
        self.prob_every_n_steps = prob_every_n_steps

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if pl_module.last_step is None:
            return
        step, members = pl_module.steps_completed, member_count(pl_module)
        if self.prob_every_n_steps and (step - 1) % self.prob_every_n_steps == 0:
            self.log_probabilities(trainer, pl_module)
        # only at the loggers' cadence (trainer.log_every_n_steps): Lightning writes step values then and
        # keeps the latest one in between, and every value logged costs a blocking copy to the device
        if not getattr(getattr(trainer, "_logger_connector", None), "should_update_logs", True):
            return
        if members == 1:
            self.log_member(pl_module, "search/", prog_bar=True)
            return
        pl_module.log(
            "search/samples_total", float(pl_module.samples_completed), on_step=True, on_epoch=False, batch_size=1
        )
        for i in range(members):
            with pl_module.viewing(i):
                if pl_module.last_step is not None:
                    self.log_member(pl_module, f"search/target_{i}/", prog_bar=False)

    @staticmethod
    def log_member(pl_module, prefix: str, prog_bar: bool) -> None:
        """The member in view's numbers after its last step, under ``prefix``."""
        stats, numbers = pl_module.last_step, step_numbers(pl_module)
        log = dict(on_step=True, on_epoch=False, batch_size=1)
        pl_module.log(f"{prefix}entropy", stats.entropy, prog_bar=prog_bar, **log)
        pl_module.log(f"{prefix}K", float(stats.k), prog_bar=prog_bar, **log)
        if prefix == "search/":  # a single target: the counter sits among its numbers
            pl_module.log("search/samples_total", float(pl_module.samples_completed), **log)
        pl_module.log(f"{prefix}flops_expected", numbers["expected"], **log)
        pl_module.log(f"{prefix}flops_argmax", numbers["argmax"], prog_bar=prog_bar, **log)
        pl_module.log(f"{prefix}flops_sampled", float(stats.macs.mean()) / 1e6, **log)
        pl_module.log(f"{prefix}cost_penalty", float(stats.costs.mean()), **log)
        pl_module.log(f"{prefix}beta", pl_module.beta_value, **log)
        constraints = getattr(pl_module, "constraints", ())
        for c, table in zip(constraints, getattr(pl_module, "cost_tables", ())):
            if c.name != "flops":  # FLOPs are logged above, constrained or not
                scale = c.metric.scale
                argmax = float(table.lookup(pl_module.argmax_architecture())[0])
                pl_module.log(f"{prefix}{c.name}_expected", pl_module.expected(c.name) / scale, **log)
                pl_module.log(f"{prefix}{c.name}_argmax", argmax / scale, **log)
            if len(constraints) > 1:
                pl_module.log(f"{prefix}beta_{c.name}", pl_module.beta_values[c.name], **log)

    @rank_zero_only
    def log_probabilities(self, trainer, pl_module) -> None:
        """Marginal probability of every choice, written straight to the loggers (many keys,
        on their own cadence, independent of ``log_every_n_steps``)."""
        members, metrics = member_count(pl_module), {}
        for i in range(members):
            prefix = "prob/" if members == 1 else f"prob/target_{i}/"
            with pl_module.viewing(i) if members > 1 else _nothing():
                marginal = pl_module.host_distribution().marginals()
            for d, decision in enumerate(pl_module.space.decisions):
                for choice, p in zip(decision.choices, marginal([d]).tolist()):
                    metrics[f"{prefix}{decision.name}/{choice}"] = p
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
    is recorded, so the history stays small in week-long searches. A search for several targets keeps one
    history per member and draws each member's pictures into ``target_<i>/`` beside ``dirpath``.

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
        self.histories: list[dict[str, list]] = [self._empty()]  # one per member
        self.strides = [1]  # record every stride-th step of the member
        self._drawn_at: int | None = None

    @staticmethod
    def _empty() -> dict[str, list]:
        return {k: [] for k in HISTORY_KEYS}

    @property
    def history(self) -> dict[str, list]:
        """The (first) member's per-step history."""
        return self.histories[0]

    @property
    def stride(self) -> int:
        """The (first) member's recording stride."""
        return self.strides[0]

    def _sized(self, members: int) -> None:
        while len(self.histories) < members:
            self.histories.append(self._empty())
            self.strides.append(1)

    # ------------------------------------------------------------------ history
    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        stats = pl_module.last_step
        step, members = pl_module.steps_completed, member_count(pl_module)
        member = getattr(pl_module, "viewed", 0)  # the member that made this step
        self._sized(members)
        history, stride = self.histories[member], self.strides[member]
        if stats is None or ((step - 1) // members) % stride:
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
        for key, value in zip(history, row):
            history[key].append(value)
        if len(history["step"]) > self.max_points:
            for key in history:
                history[key] = history[key][::2]
            self.strides[member] *= 2

    def state_dict(self) -> dict[str, Any]:
        state = [
            {"history": {k: list(v) for k, v in h.items()}, "stride": s} for h, s in zip(self.histories, self.strides)
        ]
        return state[0] | ({"members": state[1:]} if len(state) > 1 else {})

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.histories, self.strides = [], []
        for state in [state_dict, *state_dict.get("members", [])]:
            history = state.get("history", {})
            self.histories.append({k: list(history.get(k, [])) for k in HISTORY_KEYS})
            self.strides.append(int(state.get("stride", 1)))

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

        # TensorBoardLogger's SummaryWriter, or any logger whose writer takes figures the same way
        boards = [
            lg.experiment
            for lg in trainer.loggers
            if isinstance(lg, TensorBoardLogger) or callable(getattr(lg.experiment, "add_figure", None))
        ]
        members = member_count(pl_module)
        self._sized(members)
        paths = []
        for i in range(members):
            with pl_module.viewing(i) if members > 1 else _nothing():
                figs = search_figures(
                    pl_module.space, pl_module.host_distribution(), self.histories[i], pl_module.target("flops")
                )
            dirpath = member_path(self.dirpath, i, members)
            dirpath.mkdir(parents=True, exist_ok=True)
            tag = "plots/" if members == 1 else f"plots/target_{i}/"
            for name, fig in figs.items():
                paths.append(dirpath / f"{name}.png")
                fig.savefig(paths[-1], dpi=self.dpi)
                for writer in boards:
                    writer.add_figure(f"{tag}{name}", fig, global_step=step, close=False)
                plt.close(fig)
        for writer in boards:
            writer.flush()
        return paths


class ArchitectureExporter(pl.Callback):
    """Writes the architecture the search currently returns (``SearchModule.exported_architecture``:
    by default the most probable one within the target) to ``arch.yaml`` after every epoch; each member's to
    ``target_<i>/arch.yaml`` in a search for several targets."""

    def __init__(self, path: str):
        self.path = Path(path)

    @rank_zero_only
    def export(self, pl_module) -> None:
        members = member_count(pl_module)
        for i in range(members):
            with pl_module.viewing(i) if members > 1 else _nothing():
                arch = architecture_from_indices(
                    pl_module.space,
                    pl_module.exported_architecture().tolist(),
                    epoch=int(pl_module.current_epoch),
                    phase=pl_module.phase,
                    selection=pl_module.selection(),
                )
            path = member_path(self.path, i, members)
            path.parent.mkdir(parents=True, exist_ok=True)
            arch.save(path)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.export(pl_module)

    def on_train_end(self, trainer, pl_module) -> None:
        self.export(pl_module)


__all__ = ["SearchStatsLogger", "SearchPlots", "ArchitectureExporter", "step_numbers"]
