"""Analytic MACs and parameter counts, and per-block look-up tables built from them.

Each block kind owns the "complexity twin" (pycls style) of its modules
(:meth:`~fpnas.space.blocks.base.BlockKind.complexity`); stem and head are here. Tests check
them against ``FlopCounterMode`` (which reports 2 x MACs) and the standalone model's parameter
count. Scoring a sampled architecture is then table look-ups:
no forward pass on the search's hot path.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import torch

from fpnas.space.spec import BlockConfig, SearchSpace, conv_out_size


def block_complexity(cfg: BlockConfig) -> tuple[int, int]:
    """(MACs, params) of one block for one image: its kind's twin (an identity skip costs nothing)."""
    return cfg.kind.complexity(cfg)


def stem_complexity(space: SearchSpace) -> tuple[int, int]:
    h = conv_out_size(space.input_size, space.stem_kernel, space.stem_stride)
    k2 = space.stem_kernel**2
    return (
        space.in_chans * space.stem_channels * k2 * h * h,
        space.in_chans * space.stem_channels * k2 + 2 * space.stem_channels,
    )


def head_complexity(space: SearchSpace, last_chs: int) -> tuple[int, int]:
    """1x1 head conv + BN, global pool, [linear after pooling,] linear classifier."""
    h, hc, nc = space.final_size, space.head_channels, space.num_classes
    macs, params = last_chs * hc * h * h, last_chs * hc + 2 * hc
    pc = space.head_pool_channels
    if pc:
        macs += hc * pc
        params += hc * pc + (pc if space.head_pool_bias else 0)
        hc = pc
    return macs + hc * nc, params + hc * nc + nc


def architecture_complexity(space: SearchSpace, choice_idx) -> tuple[int, int]:
    """(MACs, params) of one architecture by direct evaluation of the formulas."""
    macs, params = stem_complexity(space)
    for cfg in space.resolve(choice_idx):
        m, p = block_complexity(cfg)
        macs, params = macs + m, params + p
    m, p = head_complexity(space, space.last_width(choice_idx))
    return macs + m, params + p


@dataclass
class _Term:
    """One additive cost term: a table over the choices of the decisions it depends on."""

    decisions: list[int]  # decision indices, one per table dim (distinct)
    macs: torch.Tensor  # float64, shape [size of each decision]
    params: torch.Tensor


class ComplexityTables:
    """Per-block tables of MACs/params indexed by choice indices.

    Each block's cost depends only on its own variables and on at most two width decisions
    (its input's and its own), so a table per block is small (<= a few thousand entries) and
    exact. Blocks with the same choices at the same position in the network (the repeats of a
    group) share one table.
    """

    def __init__(self, space: SearchSpace):
        self.space = space
        dindex = space.decision_index
        stem_m, stem_p = stem_complexity(space)
        self.constant_macs, self.constant_params = float(stem_m), float(stem_p)
        self.terms: list[_Term] = []
        cache: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}
        for slot in space.blocks:
            costly = [var for var in slot.choices if slot.kind.variable(var).costs]  # not the nonlinearity
            names = [slot.in_decision, slot.out_decision, *(slot.var_decisions[var] for var in costly)]
            decs = list(dict.fromkeys(dindex[n] for n in names if n is not None))
            # everything the table depends on (the decisions' names aside)
            key = (
                slot.op,
                tuple(sorted(slot.options.items())),
                slot.stride,
                slot.in_size,
                slot.in_channels,
                slot.out_channels,
                slot.in_decision is not None and slot.in_decision == slot.out_decision,
                tuple((var, slot.choices[var]) for var in costly),
            )
            if key not in cache:
                cache[key] = self._block_table(space, slot, decs)
            self.terms.append(_Term(decs, *cache[key]))
        last = space.last_channel_decision
        decs = [dindex[last]] if last is not None else []
        widths = space.decisions[decs[0]].choices if decs else space.last_channels
        hm = torch.tensor([head_complexity(space, w)[0] for w in widths], dtype=torch.float64)
        hp = torch.tensor([head_complexity(space, w)[1] for w in widths], dtype=torch.float64)
        if decs:
            self.terms.append(_Term(decs, hm, hp))
        else:
            self.constant_macs += float(hm[0])
            self.constant_params += float(hp[0])
        self._flat = [
            (t.decisions, torch.tensor(self._strides(t.macs.shape)), t.macs.flatten(), t.params.flatten())
            for t in self.terms
        ]
        self._flat_by_device: dict[torch.device, list] = {}

    @staticmethod
    def _block_table(space: SearchSpace, slot, decs: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """MACs and params of one block over every combination of its decisions' choices."""
        shape = [space.sizes[d] for d in decs]
        macs, params = [], []
        idx = [0] * space.num_decisions
        for combo in itertools.product(*[range(s) for s in shape]):
            for d, c in zip(decs, combo):
                idx[d] = c
            m, p = block_complexity(space.resolve_block(slot, idx))
            macs.append(m)
            params.append(p)
        return (
            torch.tensor(macs, dtype=torch.float64).reshape(shape),
            torch.tensor(params, dtype=torch.float64).reshape(shape),
        )

    @staticmethod
    def _strides(shape) -> list[int]:
        strides, acc = [], 1
        for s in reversed(shape):
            strides.append(acc)
            acc *= s
        return strides[::-1] or [0]

    def _flat_on(self, device: torch.device) -> list:
        """The flat tables on ``device`` (copied once per device; the search looks up on the CPU)."""
        if device.type == "cpu":
            return self._flat
        if device not in self._flat_by_device:
            self._flat_by_device[device] = [(d, *(t.to(device) for t in rest)) for d, *rest in self._flat]
        return self._flat_by_device[device]

    def lookup(self, choice_idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """MACs and params (float64) of architectures given as [n, D] choice indices, on the
        indices' device."""
        idx = torch.as_tensor(choice_idx).long()
        if idx.dim() == 1:
            idx = idx[None]
        macs = torch.full((idx.shape[0],), self.constant_macs, dtype=torch.float64, device=idx.device)
        params = torch.full((idx.shape[0],), self.constant_params, dtype=torch.float64, device=idx.device)
        for decs, strides, tm, tp in self._flat_on(idx.device):
            flat = (idx[:, decs] * strides).sum(1) if decs else torch.zeros_like(macs, dtype=torch.long)
            macs += tm[flat]
            params += tp[flat]
        return macs, params

    def expected_macs(self, marginal) -> torch.Tensor:
        """Exact E[MACs] under a distribution; ``marginal(decisions)`` returns their joint probs."""
        total = torch.tensor(self.constant_macs, dtype=torch.float64)
        for term in self.terms:
            total = total + (marginal(term.decisions).detach().to("cpu", torch.float64) * term.macs).sum()
        return total

    def macs_range(self) -> tuple[float, float]:
        """Exact minimum and maximum MACs over the whole space.

        Block terms share only width decisions, which form a chain (each term touches two
        consecutive widths at most, group or block level): min/max by dynamic programming over it.
        """
        return self.extreme_architecture("min")[0], self.extreme_architecture("max")[0]

    def extreme_architecture(self, kind: str = "min") -> tuple[float, list[int]]:
        """``(MACs, choice indices)`` of a cheapest (``min``) or most expensive (``max``) architecture,
        exactly: dynamic programming over the width chain, then back-tracking the choices. Decisions
        no term depends on (the nonlinearity) get choice 0."""
        space = self.space
        pick = torch.argmin if kind == "min" else torch.argmax
        chain = [space.decision_index[n] for n in space.width_chain]
        pos = {d: i for i, d in enumerate(chain)}
        # every term as a factor over its (<= 2) chain decisions, remembering the best choice of its others
        unary = {d: torch.zeros(space.decisions[d].size, dtype=torch.float64) for d in chain}
        pair: dict[tuple[int, int], torch.Tensor] = {}
        const = self.constant_macs
        reduced = []  # (term, chain decisions kept in table order, flat argmin/argmax over the others)
        for term in self.terms:
            keep = [i for i, d in enumerate(term.decisions) if d in pos]
            drop = [i for i in range(term.macs.dim()) if i not in keep]
            t = term.macs.permute(keep + drop)
            t = t.reshape([term.macs.shape[i] for i in keep] + [-1])
            best = pick(t, dim=-1)
            t = t.gather(-1, best[..., None])[..., 0]
            kept = [term.decisions[i] for i in keep]
            reduced.append((term, keep, drop, kept, best))
            if not kept:
                const += float(t)
            elif len(kept) == 1:
                unary[kept[0]] += t
            else:
                a, b = sorted(kept, key=pos.get)
                pair[(a, b)] = pair.get((a, b), 0) + (t if kept[0] == a else t.T)
        if set(pair) - set(zip(chain, chain[1:])):
            raise RuntimeError("cost terms couple non-adjacent widths")
        choice = [0] * space.num_decisions
        if chain:
            msg, back = unary[chain[0]].clone(), []
            for prev, cur in zip(chain, chain[1:]):
                p = pair.get((prev, cur))
                total = msg[:, None] + (
                    p if p is not None else torch.zeros(len(msg), len(unary[cur]), dtype=torch.float64)
                )
                arg = pick(total, dim=0)
                back.append(arg)
                msg = total.gather(0, arg[None])[0] + unary[cur]
            last = int(pick(msg))
            value = const + float(msg[last])
            choice[chain[-1]] = last
            for d, arg in zip(reversed(chain[:-1]), reversed(back)):
                choice[d] = int(arg[choice[chain[chain.index(d) + 1]]])
        else:
            value = const
        for term, _keep, drop, kept, best in reduced:  # the other decisions of each term, given the chain
            flat = int(best[tuple(choice[d] for d in kept)]) if kept else int(best)
            for i in reversed(drop):
                size = term.macs.shape[i]
                choice[term.decisions[i]] = flat % size
                flat //= size
        return value, choice
