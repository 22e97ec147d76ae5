"""Choice lists of a space file: parsing and validation of one value, and the width roundings.

A leaf module (no torch) shared by the space spec and the block kinds.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from fpnas.errors import ConfigError

ACTIVATIONS = ("relu", "swish", "hswish", "relu6")


def as_choices(value: Any, where: str, cast: Callable[[Any], Any]) -> tuple:
    """A scalar or list as a tuple of validated, distinct choices; ``ConfigError`` names ``where``."""
    values = value if isinstance(value, (list, tuple)) else [value]
    if not values:
        raise ConfigError(f"{where}: empty choice list; give at least one value")
    try:
        out = tuple(cast(v) for v in values)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: bad value in {list(values)} ({exc})") from None
    if len(set(out)) != len(out):
        raise ConfigError(f"{where}: duplicate choices in {list(values)}")
    return out


def positive_int(v) -> int:
    if isinstance(v, bool) or int(v) != float(v) or int(v) < 1:
        raise ValueError(f"{v!r} is not a positive integer")
    return int(v)


def non_negative_int(v) -> int:
    if isinstance(v, bool) or int(v) != float(v) or int(v) < 0:
        raise ValueError(f"{v!r} is not a non-negative integer")
    return int(v)


def kernel(v) -> int:
    if isinstance(v, bool) or int(v) != float(v) or (int(v) != 0 and int(v) % 2 == 0) or int(v) < 0:
        raise ValueError(f"{v!r} is not 0 (skip) or an odd kernel size")
    return int(v)


def expansion(v) -> float:
    f = float(v)
    if not f > 0:
        raise ValueError(f"{v!r} is not a positive expansion ratio")
    return f


def activation(v) -> str:
    if v not in ACTIVATIONS:
        raise ValueError(f"{v!r} is not one of {list(ACTIVATIONS)}")
    return str(v)


def se_flag(v) -> int:
    if v not in (0, 1) or isinstance(v, float) and not v.is_integer():
        raise ValueError(f"{v!r} is not 0 (no SE) or 1 (SE)")
    return int(v)


def splits(v) -> int:
    if isinstance(v, bool) or int(v) != float(v) or int(v) < 0:
        raise ValueError(f"{v!r} is not a number of splits (0 = none, 1 = SE-like, 2, 4, ...)")
    return int(v)


def flag(v) -> bool:
    if not isinstance(v, bool):
        raise ValueError(f"{v!r} is not true or false")
    return v


def conv_out_size(size: int, kernel: int, stride: int) -> int:
    """Output side of a conv with symmetric padding ``kernel // 2`` (timm's default padding)."""
    return (size + 2 * (kernel // 2) - kernel) // stride + 1


def divisible_by(value: float, divisor: int) -> int:
    """mobile-vision's ``get_divisible_by``: nearest multiple (half away from zero), no 90% floor."""
    ret = int(value)
    if divisor > 0 and value % divisor != 0:
        q = value / divisor
        ret = int((int(math.floor(q + 0.5)) or 1) * divisor)
    return ret


def make_divisible(value: float, divisor: int = 8) -> int:
    """timm's ``make_divisible`` (the rounding timm's blocks apply to expanded channels)."""
    from timm.layers import make_divisible as timm_make_divisible

    return int(timm_make_divisible(value, divisor))
