"""How many architectures to sample per step: entropy-adaptive K (FP-NAS) or fixed K (PARSEC)."""

from __future__ import annotations

import math

from fpnas.errors import ConfigError


def _is_count(value) -> bool:
    """An integer >= 1 (a YAML ``2.0`` counts; a string or ``true`` does not)."""
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
        and int(value) == value
        and value >= 1
    )


class AdaptiveK:
    """K = max(K_min, floor(lambda * H)), H the distribution's entropy in nats (docs/method.md)."""

    def __init__(self, lam: float, k_min: int):
        if isinstance(lam, bool) or not isinstance(lam, (int, float)) or not lam > 0:
            raise ConfigError(f"sampler.lam must be > 0 (paper: 0.25), got {lam}")
        if not _is_count(k_min):
            raise ConfigError(f"sampler.k_min must be an integer >= 1, got {k_min}")
        self.lam, self.k_min = float(lam), int(k_min)

    def __call__(self, entropy: float) -> int:
        return max(self.k_min, math.floor(self.lam * float(entropy)))

    def __repr__(self) -> str:
        return f"AdaptiveK(lam={self.lam}, k_min={self.k_min})"


class FixedK:
    """A constant number of samples per step (PARSEC baseline, K = 14)."""

    def __init__(self, k: int):
        if not _is_count(k):
            raise ConfigError(f"sampler.k must be an integer >= 1, got {k}")
        self.k = int(k)

    def __call__(self, entropy: float) -> int:
        return self.k

    def __repr__(self) -> str:
        return f"FixedK(k={self.k})"
