"""FLOPs-aware cost and the importance weights of PARSEC / FP-NAS (docs/method.md sections 1 and 4)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from fpnas.cost.checks import budget_targets, check_budget
from fpnas.cost.metrics import METRICS, Metric
from fpnas.errors import ConfigError


def hinge_cost(macs: torch.Tensor, target_macs: float) -> torch.Tensor:
    """C(A) = max(0, FLOPs(A) / TARGET - 1)."""
    return (macs / target_macs - 1.0).clamp_min(0.0)


def dual_ascent_beta(beta: torch.Tensor, expected_macs: float, target_macs: float, lr: float) -> torch.Tensor:
    """One projected dual-ascent step on β for the constraint E[FLOPs] <= TARGET:
    β <- max(0, β + lr · (E[FLOPs] / TARGET - 1)).

    β is the Lagrange multiplier of the constraint: it grows while the distribution's expected FLOPs
    exceed the target and shrinks while they are under it, so no β has to be tuned per target; the
    relative gap keeps ``lr`` independent of the space's scale.
    """
    return (beta + lr * (float(expected_macs) / target_macs - 1.0)).clamp_min(0.0)


class Constraint:
    """A budget on one metric: E-step penalty ``β · max(0, metric / target - 1)`` (the paper's hinge)
    with its own β, fixed or adapted by dual ascent (``beta_lr`` > 0).

    ``target`` is in the metric's unit; a list of targets (``cost.target_mflops=[0.3,0.6]``) configures one
    search for a family of budgets, which :func:`split_targets` turns into one single-target constraint per
    member (only a single-target constraint has a ``target`` and a ``limit``). ``prefix`` is the config node
    the values come from, so that every message names the key to change (``cost.target_mflops``,
    ``cost.latency.target_ms``). :meth:`table_for` builds the metric's table for a space. Built from a
    ``cost.constraints.<metric>`` node of conf/cost/*.yaml, the one home of its values.
    """

    def __init__(self, metric, target: float | Sequence[float], beta: float, beta_lr: float, prefix: str):
        if not isinstance(metric, Metric):
            raise ConfigError(
                f"{prefix}: metric must be an fpnas.cost.metrics.Metric (Flops, Params, Latency), got {metric!r}"
            )
        self.metric, self.prefix = metric, prefix
        keys = [self.key(metric.target_key), self.key("beta"), self.key("beta_lr")]
        check_budget(keys[0], target, keys[1], beta, keys[2], beta_lr, example=metric.example)
        self.targets = budget_targets(keys[0], target)
        self.several = isinstance(target, Sequence) and not isinstance(target, str)
        self.beta, self.beta_lr = float(beta), float(beta_lr)

    @property
    def target(self) -> float:
        """The target in the metric's unit (e.g. MFLOPs)."""
        if self.several:
            raise ValueError(f"{self!r} has several targets: split_targets gives one constraint per target")
        return self.targets[0]

    @property
    def limit(self) -> float:
        """The target in the metric's counted unit (MACs for FLOPs)."""
        return self.target * self.metric.scale

    def at(self, index: int) -> Constraint:
        """The single-target constraint of target ``index`` (a single target serves every index)."""
        target = self.targets[index if self.several else 0]
        return Constraint(self.metric, target, self.beta, self.beta_lr, self.prefix)

    @property
    def name(self) -> str:
        return self.metric.name

    def key(self, name: str) -> str:
        """The config key of one of this constraint's values."""
        return f"{self.prefix}.{name}"

    def table_for(self, space, complexity=None):
        """The metric's table for ``space`` (:class:`~fpnas.space.complexity.AdditiveTable`), with the
        target checked against its exact range."""
        table = self.metric.table(space, complexity)
        self.check_target(space, table)
        return table

    def check_target(self, space, table) -> None:
        """The target must be reachable in ``space``; at or above its largest architecture it never acts."""
        import warnings

        scale, unit, key = self.metric.scale, self.metric.unit, self.key(self.metric.target_key)
        lo, hi = (v / scale for v in table.value_range())
        if self.target < lo:
            raise ConfigError(
                f"{key}={self.target:g} is below what space '{space.name}' can reach "
                f"(min {lo:.4g}, max {hi:.4g} {unit}); pick a target in that range"
            )
        if self.target >= hi:
            warnings.warn(
                f"{key}={self.target:g} is at or above the largest architecture of space "
                f"'{space.name}' ({hi:.4g} {unit}): the cost term never acts and the search is unconstrained",
                stacklevel=3,
            )

    def hinge(self, values: torch.Tensor) -> torch.Tensor:
        """C(A) of architectures' metric values (counted unit)."""
        return hinge_cost(values, self.limit)

    def describe(self) -> str:
        beta = f"β {self.beta:g}" + (f", dual ascent lr {self.beta_lr:g}" if self.beta_lr > 0 else "")
        return f"{self.metric.name} <= {self._target_text()} {self.metric.describe()} ({beta})"

    def to_dict(self) -> dict:
        """Plain data (hparams.yaml); :func:`constraint_from` rebuilds the constraint from it."""
        return {
            "metric": self.metric.name,
            **({"table": str(self.metric.path)} if self.metric.name == "latency" else {}),
            "target": list(self.targets) if self.several else self.targets[0],
            "beta": self.beta,
            "beta_lr": self.beta_lr,
            "prefix": self.prefix,
        }

    def _target_text(self) -> str:
        return "[" + ", ".join(f"{t:g}" for t in self.targets) + "]" if self.several else f"{self.targets[0]:g}"

    def __repr__(self) -> str:
        return (
            f"Constraint({self.metric!r}, target={self._target_text()}, beta={self.beta:g}, beta_lr={self.beta_lr:g}, "
            f"prefix={self.prefix!r})"
        )


def constraint_from(value) -> Constraint:
    """A :class:`Constraint`, or one rebuilt from :meth:`Constraint.to_dict`'s plain data."""
    if isinstance(value, Constraint):
        return value
    if not isinstance(value, dict) or value.get("metric") not in METRICS:
        raise ConfigError(
            f"a cost constraint must be an fpnas.cost.constraint.Constraint node (see conf/cost/*.yaml) or a dict with "
            f"metric one of {sorted(METRICS)}, got {value!r}"
        )
    value = dict(value)
    name = value.pop("metric")
    metric = METRICS[name](value.pop("table")) if name == "latency" else METRICS[name]()
    return Constraint(metric, **value)


def split_targets(constraints: Sequence[Constraint]) -> list[list[Constraint]]:
    """One list of single-target constraints per member of the search: one member when every constraint has
    one target; N when a constraint lists N targets (the others serve every member, so that a FLOPs family
    can share one latency cap). Lists of different lengths are refused."""
    counts = {len(c.targets) for c in constraints if c.several}
    if len(counts) > 1:
        lists = ", ".join(f"{c.key(c.metric.target_key)} has {len(c.targets)}" for c in constraints if c.several)
        raise ConfigError(f"the cost targets' lists must have one length (one entry per member): {lists}")
    n = counts.pop() if counts else 1
    return [[c.at(i) for c in constraints] for i in range(n)]
