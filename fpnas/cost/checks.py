"""A budget's values checked without torch (``search.py`` checks them before the heavy imports)."""

from __future__ import annotations

from collections.abc import Sequence

from fpnas.errors import ConfigError, check_option


def budget_targets(target_key: str, target, example=None) -> list[float]:
    """A constraint's target as a list: one number (one search), or a list of them (one search for a family of
    budgets sharing the super-net's weights, ``cost.target_mflops=[0.3,0.45,0.6]``); each > 0, none twice."""
    many = isinstance(target, Sequence) and not isinstance(target, str)
    values = list(target) if many else [target]
    if many and not values:
        raise ConfigError(f"{target_key}=[] names no target; give a number or a list of numbers, e.g. [0.3,0.6]")
    for i, value in enumerate(values):
        check_option(f"{target_key}[{i}]" if many else target_key, value, float, 0, exclusive=True, example=example)
    values = [float(v) for v in values]
    twice = sorted({v for v in values if values.count(v) > 1})
    if twice:
        raise ConfigError(f"{target_key}={target}: {twice[0]:g} is listed twice; each target of a family once")
    return values


def check_budget(target_key: str, target, beta_key: str, beta, beta_lr_key: str, beta_lr, example=None) -> None:
    """One constraint's values: a target > 0 in the metric's unit (or a list of them: :func:`budget_targets`),
    β >= 0, a dual-ascent rate >= 0."""
    budget_targets(target_key, target, example)
    check_option(beta_key, beta, float, 0, example=0.75)
    check_option(beta_lr_key, beta_lr, float, 0, example=0.02)
