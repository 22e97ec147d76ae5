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
    """[1x1 head conv + BN,] global pool, [linear after pooling,] linear classifier."""
    h, hc, nc = space.final_size, space.head_channels, space.num_classes
    macs, params = last_chs * hc * h * h, last_chs * hc + 2 * hc  # 0, 0 without a conv before pooling
    hc = hc or last_chs  # the pooled width
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
    """One additive term: a table over the choices of the decisions it depends on."""

    decisions: list[int]  # decision indices, one per table dim (distinct)
    values: torch.Tensor  # float64, shape [size of each decision]


def _strides(shape) -> list[int]:
    strides, acc = [], 1
    for s in reversed(shape):
        strides.append(acc)
        acc *= s
    return strides[::-1] or [0]


class AdditiveTable:
    """An additive metric of architectures: a constant plus one table per block (and head) over
    the decisions it depends on, built once. Look-up, the exact expectation under a distribution
    and the exact extremes work for any such metric (MACs, parameters, a latency look-up table).

    Each block's value depends only on its own variables and on at most two width decisions (its
    input's and its own): the tables are small and the width decisions form a chain, which makes
    the extremes a dynamic programme.
    """

    def __init__(self, space: SearchSpace, constant: float, terms: list[_Term]):
        self.space = space
        self.constant = float(constant)
        self.terms = terms
        self._flat = [(t.decisions, torch.tensor(_strides(t.values.shape)), t.values.flatten()) for t in terms]
        self._flat_by_device: dict[torch.device, list] = {}

    @staticmethod
    def weighted_sum(tables: list[tuple[AdditiveTable, float]]) -> AdditiveTable:
        """``sum_i w_i table_i`` of tables of one space (built by :func:`additive_tables`: one term
        per block, then the head's): additive too, one term per block over the union of the
        decisions, so that its extremes stay exact."""
        space = tables[0][0].space
        constant = sum(w * t.constant for t, w in tables)
        terms = []
        for parts in zip(*(t.terms for t, _ in tables), strict=True):
            decisions = list(dict.fromkeys(d for term in parts for d in term.decisions))
            total = torch.zeros([space.sizes[d] for d in decisions], dtype=torch.float64)
            for term, (_, w) in zip(parts, tables):
                # the term's dims in union order, broadcast over the decisions it does not depend on
                order = sorted(range(len(term.decisions)), key=lambda i: decisions.index(term.decisions[i]))
                values = term.values.permute(order) if order else term.values
                shape = [space.sizes[d] if d in term.decisions else 1 for d in decisions]
                total = total + w * values.reshape(shape)
            terms.append(_Term(decisions, total))
        return AdditiveTable(space, constant, terms)

    def _flat_on(self, device: torch.device) -> list:
        """The flat tables on ``device`` (copied once per device; the search looks up on the CPU)."""
        if device.type == "cpu":
            return self._flat
        if device not in self._flat_by_device:
            self._flat_by_device[device] = [(d, *(t.to(device) for t in rest)) for d, *rest in self._flat]
        return self._flat_by_device[device]

    def lookup(self, choice_idx: torch.Tensor) -> torch.Tensor:
        """The metric (float64) of architectures given as [n, D] choice indices, on the indices' device."""
        idx = torch.as_tensor(choice_idx).long()
        if idx.dim() == 1:
            idx = idx[None]
        total = torch.full((idx.shape[0],), self.constant, dtype=torch.float64, device=idx.device)
        for decs, strides, values in self._flat_on(idx.device):
            flat = (idx[:, decs] * strides).sum(1) if decs else torch.zeros_like(total, dtype=torch.long)
            total += values[flat]
        return total

    def expected(self, marginal) -> torch.Tensor:
        """Exact expectation under a distribution; ``marginal(decisions)`` returns their joint probs."""
        total = torch.tensor(self.constant, dtype=torch.float64)
        for term in self.terms:
            total = total + (marginal(term.decisions).detach().to("cpu", torch.float64) * term.values).sum()
        return total

    def value_range(self) -> tuple[float, float]:
        """Exact minimum and maximum over the whole space."""
        return self.extreme_architecture("min")[0], self.extreme_architecture("max")[0]

    def extreme_architecture(self, kind: str = "min") -> tuple[float, list[int]]:
        """``(value, choice indices)`` of a minimal (``min``) or maximal (``max``) architecture,
        exactly: dynamic programming over the width chain, then back-tracking the choices. Decisions
        no term depends on get choice 0."""
        space = self.space
        pick = torch.argmin if kind == "min" else torch.argmax
        chain = [space.decision_index[n] for n in space.width_chain]
        pos = {d: i for i, d in enumerate(chain)}
        # every term as a factor over its (<= 2) chain decisions, remembering the best choice of its others
        unary = {d: torch.zeros(space.decisions[d].size, dtype=torch.float64) for d in chain}
        pair: dict[tuple[int, int], torch.Tensor] = {}
        const = self.constant
        reduced = []  # (term, chain decisions kept in table order, flat argmin/argmax over the others)
        owner: dict[int, int] = {}  # a non-chain decision -> the one term that depends on it
        for n, term in enumerate(self.terms):
            for d in term.decisions:
                if d not in pos and owner.setdefault(d, n) != n:
                    raise RuntimeError("two cost terms share a per-block decision")
            keep = [i for i, d in enumerate(term.decisions) if d in pos]
            drop = [i for i in range(term.values.dim()) if i not in keep]
            t = term.values.permute(keep + drop)
            t = t.reshape([term.values.shape[i] for i in keep] + [-1])
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
                size = term.values.shape[i]
                choice[term.decisions[i]] = flat % size
                flat //= size
        return value, choice


def block_decisions(space: SearchSpace, slot, variables) -> list[int]:
    """The decisions a block's value depends on: its input and output widths and ``variables``."""
    names = [slot.in_decision, slot.out_decision, *(slot.var_decisions[var] for var in variables)]
    return list(dict.fromkeys(space.decision_index[n] for n in names if n is not None))


def block_table_key(slot, variables) -> tuple:
    """Everything a block's table depends on (its decisions' names aside): blocks with equal keys
    (the repeats of a group) share one table."""
    return (
        slot.op,
        tuple(sorted(slot.options.items())),
        slot.stride,
        slot.in_size,
        slot.in_channels,
        slot.out_channels,
        slot.in_decision is not None and slot.in_decision == slot.out_decision,
        tuple((var, slot.choices[var]) for var in variables),
    )


def block_configs(space: SearchSpace, slot, decs: list[int]):
    """``(combination, resolved BlockConfig)`` for every combination of ``decs``' choices, in table order."""
    idx = [0] * space.num_decisions
    for combo in itertools.product(*[range(space.sizes[d]) for d in decs]):
        for d, c in zip(decs, combo):
            idx[d] = c
        yield combo, space.resolve_block(slot, idx)


def additive_tables(space: SearchSpace, n: int, block_values, head_values, stem_values, all_variables: bool):
    """``n`` :class:`AdditiveTable` s of ``space`` from per-block values.

    ``block_values(cfg)``, ``head_values(last_width)`` and ``stem_values()`` return ``n`` numbers
    each. A block's table depends on its widths and its variables: all of them with
    ``all_variables`` (a measured latency depends on the nonlinearity), else only those that cost
    MACs or parameters (smaller tables).
    """
    dindex = space.decision_index
    constants = [float(v) for v in stem_values()]
    terms: list[list[_Term]] = [[] for _ in range(n)]
    cache: dict[tuple, list[torch.Tensor]] = {}
    for slot in space.blocks:
        variables = [var for var in slot.choices if all_variables or slot.kind.variable(var).costs]
        decs = block_decisions(space, slot, variables)
        key = block_table_key(slot, variables)
        if key not in cache:
            shape = [space.sizes[d] for d in decs]
            rows = [block_values(cfg) for _, cfg in block_configs(space, slot, decs)]
            cache[key] = [torch.tensor([r[i] for r in rows], dtype=torch.float64).reshape(shape) for i in range(n)]
        for i in range(n):
            terms[i].append(_Term(decs, cache[key][i]))
    last = space.last_channel_decision
    widths = space.decisions[dindex[last]].choices if last is not None else space.last_channels
    heads = [head_values(w) for w in widths]
    for i in range(n):
        column = torch.tensor([h[i] for h in heads], dtype=torch.float64)
        if last is not None:
            terms[i].append(_Term([dindex[last]], column))
        else:
            constants[i] += float(column[0])
    return [AdditiveTable(space, constants[i], terms[i]) for i in range(n)]


class ComplexityTables:
    """The analytic MACs and parameter tables of a space (:class:`AdditiveTable` s, exact)."""

    def __init__(self, space: SearchSpace):
        self.space = space
        self.macs, self.params = additive_tables(
            space,
            2,
            block_complexity,
            lambda width: head_complexity(space, width),
            lambda: stem_complexity(space),
            all_variables=False,
        )

    def lookup(self, choice_idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """MACs and params (float64) of architectures given as [n, D] choice indices, on the
        indices' device."""
        return self.macs.lookup(choice_idx), self.params.lookup(choice_idx)

    def expected_macs(self, marginal) -> torch.Tensor:
        """Exact E[MACs] under a distribution; ``marginal(decisions)`` returns their joint probs."""
        return self.macs.expected(marginal)

    def macs_range(self) -> tuple[float, float]:
        """Exact minimum and maximum MACs over the whole space."""
        return self.macs.value_range()

    def extreme_architecture(self, kind: str = "min") -> tuple[float, list[int]]:
        """``(MACs, choice indices)`` of a cheapest (``min``) or most expensive (``max``) architecture."""
        return self.macs.extreme_architecture(kind)
