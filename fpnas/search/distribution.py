"""The architecture distribution P(A | alpha): a product of independent categoricals over *units*.

A unit is a tuple of decisions sampled jointly. Factorized (FD): every decision is its own unit
(sum of |D_m| logits). Joint (JD): one unit per block tuple (product of |D_m| logits). Logits of
all units live in one padded matrix so that sampling, log-probabilities, entropy and the
closed-form score-function gradient are a few batched tensor ops per step.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

import torch

from fpnas.search.options import check_schedule

PHASES = ("factorized", "joint")


@dataclass(frozen=True)
class Schedule:
    """The ``distribution`` group: which distribution the search uses when. ``schedule``: "coarse_to_fine"
    (factorized, then joint from epoch ``switch_epoch`` on: the paper's FD -> JD), "joint" (joint from the
    start: PARSEC) or "factorized" (factorized throughout)."""

    schedule: str
    switch_epoch: int

    def __post_init__(self):
        check_schedule(self.schedule, self.switch_epoch)

    @property
    def first_phase(self) -> str:
        return "joint" if self.schedule == "joint" else "factorized"

    def switches_at(self, epoch: int, phase: str) -> bool:
        """Whether a search in ``phase`` goes from factorized to joint at the start of ``epoch``."""
        return self.schedule == "coarse_to_fine" and phase == "factorized" and epoch >= self.switch_epoch


class ArchDistribution(torch.nn.Module):
    """Categoricals over units of decisions; alpha is a buffer updated by its own optimizer.

    alpha is a buffer, not a parameter: it never enters the weight optimizer or DDP's gradient
    reducer, and its gradient is set in closed form (:meth:`grad_weighted_nll`).
    """

    def __init__(
        self,
        sizes: Sequence[int],
        units: Sequence[Sequence[int]],
        kind: str,
        logits: Sequence[torch.Tensor] | None = None,
    ):
        super().__init__()
        if kind not in PHASES:
            raise ValueError(f"kind must be one of {PHASES}, got {kind!r}")
        self.kind = kind
        self.sizes = [int(s) for s in sizes]
        self.units = [list(map(int, u)) for u in units]
        covered = sorted(d for u in self.units for d in u)
        if covered != list(range(len(self.sizes))):
            raise ValueError("units must partition the decisions")
        self.unit_sizes = [math.prod(self.sizes[d] for d in u) for u in self.units]
        self.unit_of = {d: u for u, unit in enumerate(self.units) for d in unit}
        n_units, width = len(self.units), max(self.unit_sizes, default=1)
        max_arity = max((len(u) for u in self.units), default=1)
        # decode: flat index within a unit -> choice index of each of its decisions (row-major)
        decisions = torch.full((n_units, max_arity), len(self.sizes), dtype=torch.long)  # pad: dummy column
        strides = torch.zeros((n_units, max_arity), dtype=torch.long)
        radix = torch.ones((n_units, max_arity), dtype=torch.long)
        for u, unit in enumerate(self.units):
            acc = 1
            for j in reversed(range(len(unit))):
                decisions[u, j], strides[u, j], radix[u, j] = unit[j], acc, self.sizes[unit[j]]
                acc *= self.sizes[unit[j]]
        mask = torch.arange(width)[None, :] < torch.tensor(self.unit_sizes)[:, None]
        self.register_buffer("unit_decisions", decisions, persistent=False)
        self.register_buffer("unit_strides", strides, persistent=False)
        self.register_buffer("unit_radix", radix, persistent=False)
        self.register_buffer("mask", mask, persistent=False)
        alpha = torch.zeros((n_units, width))
        if logits is not None:
            for u, lg in enumerate(logits):
                alpha[u, : lg.numel()] = lg.flatten()
        self.register_buffer("alpha", alpha)

    # ------------------------------------------------------------------ constructors
    @classmethod
    def uniform(cls, sizes: Sequence[int], units: Sequence[Sequence[int]], kind: str) -> ArchDistribution:
        return cls(sizes, units, kind)

    def to_joint(self, units: Sequence[Sequence[int]]) -> ArchDistribution:
        """Exact FD->JD conversion: alpha_JD[(a_1..a_M)] = sum_m log_softmax(alpha_m)[a_m]."""
        marginal = self.marginals()
        marg = [marginal([d]) for d in range(len(self.sizes))]
        logits = []
        for unit in units:
            lp = self.alpha.new_zeros(())
            for d in unit:
                lp = lp[..., None] + marg[d].clamp_min(torch.finfo(marg[d].dtype).tiny).log()
            logits.append(lp.flatten())
        return ArchDistribution(self.sizes, units, "joint", logits).to(self.alpha.device)

    # ------------------------------------------------------------------ basic quantities
    def masked_logits(self) -> torch.Tensor:
        return self.alpha.masked_fill(~self.mask, float("-inf"))

    def unit_probs(self) -> torch.Tensor:
        """[n_units, width] probabilities (0 on padding)."""
        return torch.softmax(self.masked_logits(), dim=1)

    def entropy(self) -> torch.Tensor:
        """Entropy of the whole distribution in nats (sum over independent units)."""
        logp = torch.log_softmax(self.masked_logits(), dim=1)
        p = logp.exp()
        return -(p * logp.masked_fill(~self.mask, 0.0)).sum()

    def encode(self, choice_idx: torch.Tensor) -> torch.Tensor:
        """[n, D] choice indices -> [n, n_units] flat indices within each unit."""
        padded = torch.cat([choice_idx, choice_idx.new_zeros(choice_idx.shape[0], 1)], dim=1)
        return (padded[:, self.unit_decisions] * self.unit_strides).sum(-1)

    def decode(self, flat: torch.Tensor) -> torch.Tensor:
        """[n, n_units] flat indices -> [n, D] choice indices."""
        per_slot = (flat[..., None] // self.unit_strides.clamp_min(1)) % self.unit_radix
        out = flat.new_zeros(flat.shape[0], len(self.sizes) + 1)
        out.scatter_(1, self.unit_decisions.flatten()[None].expand(flat.shape[0], -1), per_slot.flatten(1))
        return out[:, :-1]

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n architectures as [n, D] choice indices."""
        probs = self.unit_probs().detach().cpu()  # the generator is a CPU one on every device
        flat = torch.multinomial(probs, n, replacement=True, generator=generator).to(self.alpha.device)
        return self.decode(flat.T)

    def log_prob(self, choice_idx: torch.Tensor) -> torch.Tensor:
        """[n] log P(A | alpha)."""
        logp = torch.log_softmax(self.masked_logits(), dim=1)
        flat = self.encode(choice_idx)
        return logp.gather(1, flat.T).sum(0)

    def mode(self) -> torch.Tensor:
        """The most likely architecture ([D] choice indices): argmax of every unit."""
        return self.decode(self.masked_logits().argmax(1)[None])[0]

    def marginal(self, decisions: Sequence[int], probs: torch.Tensor | None = None) -> torch.Tensor:
        """Joint probabilities of the given distinct decisions, shape [size of each].

        ``probs``: :meth:`unit_probs`, when the caller already has them (see :meth:`marginals`).
        """
        probs = self.unit_probs() if probs is None else probs
        factors = []  # (tensor, decisions it spans)
        by_unit: dict[int, list[int]] = {}
        for d in decisions:
            by_unit.setdefault(self.unit_of[d], []).append(d)
        for u, ds in by_unit.items():
            unit = self.units[u]
            p = probs[u, : self.unit_sizes[u]].reshape([self.sizes[d] for d in unit])
            keep = [unit.index(d) for d in ds]
            drop = [i for i in range(len(unit)) if i not in keep]
            if drop:
                p = p.sum(dim=drop)
            order = sorted(range(len(keep)), key=lambda i: keep[i])  # remaining dims follow unit order
            p = p.permute([order.index(i) for i in range(len(keep))]) if len(keep) > 1 else p
            factors.append((p, ds))
        # outer product, then arrange dims in the requested order
        out, spans = probs.new_ones(()), []
        for p, ds in factors:
            out = out.reshape(out.shape + (1,) * p.dim()) * p
            spans += ds
        return out.permute([spans.index(d) for d in decisions]) if decisions else out

    def marginals(self) -> Callable[[Sequence[int]], torch.Tensor]:
        """:meth:`marginal` at the current α with the softmax done once, for callers that ask
        for many marginals in a row (expected FLOPs, per-decision probabilities): one softmax
        instead of one per call keeps these per-step statistics cheap."""
        return partial(self.marginal, probs=self.unit_probs().detach())

    # ------------------------------------------------------------------ gradient
    def grad_weighted_nll(self, choice_idx: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """Closed-form gradient of sum_k m_k * (-log P(A_k | alpha)) with respect to alpha.

        Per unit: sum_k m_k * (softmax(alpha_u) - onehot(A_k,u)); zero on padding.
        """
        weights = weights.to(self.alpha.dtype)
        flat = self.encode(choice_idx)  # [K, U]
        onehot = torch.zeros_like(self.alpha)
        onehot.scatter_add_(1, flat.T, weights[None].expand(flat.shape[1], -1).contiguous())
        grad = weights.sum() * self.unit_probs() - onehot
        return grad.masked_fill(~self.mask, 0.0)
