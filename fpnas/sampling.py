"""How many architectures to sample per step: entropy-adaptive K (FP-NAS) or fixed K (PARSEC)."""
from __future__ import annotations

import math

from fpnas.errors import ConfigError


class AdaptiveK:
    """K = max(K_min, floor(lambda * H)), H the distribution's entropy in nats (FPNAS.md §2)."""

    def __init__(self, lam: float = 0.25, k_min: int = 2):
        if not lam > 0:
            raise ConfigError(f"sampler.lam must be > 0 (paper: 0.25), got {lam}")
        if int(k_min) != k_min or k_min < 1:
            raise ConfigError(f"sampler.k_min must be an integer >= 1, got {k_min}")
        self.lam, self.k_min = float(lam), int(k_min)

    def __call__(self, entropy: float) -> int:
        return max(self.k_min, math.floor(self.lam * float(entropy)))

    def __repr__(self) -> str:
        return f"AdaptiveK(lam={self.lam}, k_min={self.k_min})"


class FixedK:
    """A constant number of samples per step (PARSEC baseline, K = 14)."""

    def __init__(self, k: int = 14):
        if int(k) != k or k < 1:
            raise ConfigError(f"sampler.k must be an integer >= 1, got {k}")
        self.k = int(k)

    def __call__(self, entropy: float) -> int:
        return self.k

    def __repr__(self) -> str:
        return f"FixedK(k={self.k})"
