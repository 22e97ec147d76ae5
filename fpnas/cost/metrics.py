"""What a search can constrain: additive metrics of an architecture (FLOPs, parameters, latency).

A metric is measured, a constraint (:class:`fpnas.cost.constraint.Constraint`) penalises it: the split of
NNI's ``Profiler`` and ``ProfilerPenalty``. Every metric is an :class:`AdditiveTable` over the
decisions each block depends on, built once per space; the code counts the metric's own unit
(MACs, parameters, milliseconds) and ``scale`` converts to the unit of files and messages.
"""

from __future__ import annotations

from pathlib import Path

from fpnas.cost.latency import load_table
from fpnas.space.complexity import AdditiveTable, ComplexityTables
from fpnas.space.spec import SearchSpace


class Metric:
    """An additive metric of architectures of a space."""

    name: str  # e.g. "flops": log keys (search/<name>_argmax) and file keys (arch_<name>...)
    unit: str  # the unit of files and messages, e.g. "MFLOPs"
    scale: float  # counted units per ``unit`` (1e6 MACs per MFLOP)
    target_key: str  # the config key of its target, e.g. "target_mflops"
    example: float  # an example target for error messages
    summary_key: str  # search_summary.json key of the exported architecture's value
    target_summary_key: str  # search_summary.json key of the target

    def table(self, space: SearchSpace, complexity: ComplexityTables | None = None) -> AdditiveTable:
        """The metric's table for ``space`` (``complexity``: the space's analytic tables, if built)."""
        raise NotImplementedError

    def describe(self) -> str:
        return self.unit

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class Flops(Metric):
    """Multiply-adds (the paper's FLOPs), analytic and exact."""

    name, unit, scale, target_key, example = "flops", "MFLOPs", 1e6, "target_mflops", 0.6
    summary_key, target_summary_key = "arch_mflops", "target_mflops"

    def table(self, space, complexity=None):
        return (complexity or ComplexityTables(space)).macs


class Params(Metric):
    """Parameter count, analytic and exact."""

    name, unit, scale, target_key, example = "params", "M params", 1e6, "target_mparams", 0.05
    summary_key, target_summary_key = "arch_params_m", "target_params_m"

    def table(self, space, complexity=None):
        return (complexity or ComplexityTables(space)).params


class Latency(Metric):
    """Measured latency: the sum of a look-up table's block, stem and head entries (``fpnas.cost.latency``)."""

    name, unit, scale, target_key, example = "latency", "ms", 1.0, "target_ms", 1.0
    summary_key, target_summary_key = "arch_latency_ms", "target_latency_ms"

    def __init__(self, table: str | Path | None):

        self.path = table
        self.lut = load_table(table, "cost.latency.table")  # checked here: before any data is loaded

    def table(self, space, complexity=None):
        return self.lut.additive_table(space, "cost.latency.table")

    def describe(self) -> str:
        return f"ms on {self.lut.key['device_name']} (batch {self.lut.key['batch']}, {self.lut.key['threads']} threads)"

    def __repr__(self) -> str:
        return f"Latency(table={str(self.path)!r})"


METRICS = {m.name: m for m in (Flops, Params, Latency)}  # by name: constraints rebuilt from hparams.yaml
