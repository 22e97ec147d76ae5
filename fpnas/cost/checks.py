"""A budget's values checked without torch (``search.py`` checks them before the heavy imports)."""

from __future__ import annotations

from fpnas.errors import check_option


def check_budget(target_key: str, target, beta_key: str, beta, beta_lr_key: str, beta_lr, example=None) -> None:
    """One constraint's values: a target > 0 in the metric's unit, β >= 0, a dual-ascent rate >= 0."""
    check_option(target_key, target, float, 0, exclusive=True, example=example)
    check_option(beta_key, beta, float, 0, example=0.75)
    check_option(beta_lr_key, beta_lr, float, 0, example=0.02)
