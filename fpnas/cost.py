"""FLOPs-aware cost and the importance weights of PARSEC / FP-NAS (FPNAS.md sections 1 and 4)."""

from __future__ import annotations

import torch


def hinge_cost(macs: torch.Tensor, target_macs: float) -> torch.Tensor:
    """C(A) = max(0, FLOPs(A) / TARGET - 1)."""
    return (macs / target_macs - 1.0).clamp_min(0.0)


def weight_importance(log_lik: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Self-normalised importance weights w_k = softmax_k(l_k / T) of the omega update."""
    return torch.softmax(log_lik / temperature, dim=0)


def arch_importance(
    val_log_lik: torch.Tensor, costs: torch.Tensor, beta: float, temperature: float = 1.0
) -> torch.Tensor:
    """m_k = softmax_k(v_k / T) - beta * C_k / sum_j C_j (Eq. 7); the cost term is 0 when sum C = 0.

    On the device of ``val_log_lik``; ``costs`` may live elsewhere (the search keeps them on the
    CPU, where the tables are: their sum is tested there without a device read).
    """
    m = torch.softmax(val_log_lik / temperature, dim=0)
    total = float(costs.sum())
    if total > 0:
        m = m - float(beta) * costs.to(m.device, m.dtype, non_blocking=True) / total
    return m


def dual_ascent_beta(beta: torch.Tensor, expected_macs: float, target_macs: float, lr: float) -> torch.Tensor:
    """One projected dual-ascent step on β for the constraint E[FLOPs] <= TARGET:
    β <- max(0, β + lr · (E[FLOPs] / TARGET - 1)).

    β is the Lagrange multiplier of the constraint: it grows while the distribution's expected FLOPs
    exceed the target and shrinks while they are under it, so no β has to be tuned per target; the
    relative gap keeps ``lr`` independent of the space's scale.
    """
    return (beta + lr * (float(expected_macs) / target_macs - 1.0)).clamp_min(0.0)
