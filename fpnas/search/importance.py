"""PARSEC / FP-NAS importance weights: the ω update's per-sample weights and the α update's penalised ones."""

from __future__ import annotations

import torch


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
    return penalised_importance(val_log_lik, [costs], [beta], temperature)


def penalised_importance(
    val_log_lik: torch.Tensor,
    costs: list[torch.Tensor],
    betas: list[float],
    temperature: float = 1.0,
    feasibility_first: bool = False,
) -> torch.Tensor:
    """m_k = softmax_k(v_k / T) - sum_c β_c C_ck / sum_j C_cj: Eq. 7 with one term per constraint
    (each 0 when none of the samples exceeds that constraint's target). One constraint gives
    :func:`arch_importance` exactly.

    ``feasibility_first``: when every sample is over a target, the accuracy term's mass goes to the sample
    least over (the smallest sum of hinge costs) instead of the softmax (Deb's feasibility rule for
    constrained search: a feasible candidate beats an infeasible one, and among infeasible ones the smaller
    violation wins). Eq. 7's cost term is only relative among the samples, so without it a distribution
    whose samples all exceed a tight target is pulled to ever larger networks by the accuracy term; the
    search applies it only once the distribution has lost the target (``search.restore_feasibility``).
    """
    violation = sum(costs) if feasibility_first and costs else None  # CPU, where the tables are
    if violation is not None and bool((violation > 0).all()):
        m = torch.zeros_like(val_log_lik)
        m[int(violation.argmin())] = 1.0
    else:
        m = torch.softmax(val_log_lik / temperature, dim=0)
    for c, beta in zip(costs, betas):
        total = float(c.sum())
        if total > 0:
            m = m - float(beta) * c.to(m.device, m.dtype, non_blocking=True) / total
    return m
