"""Top-k export: the N most probable architectures under the FLOPs target, in exact order.

P(A | alpha) is a product of independent categoricals over units (one per decision when
factorized, one per block tuple when joint), so log P(A) = sum_u log p_u(a_u). Architectures in
decreasing probability are the k best sums of per-unit sorted lists: a best-first search over
per-unit ranks (Lawler/Murty-style, three successors per node, each never more probable than
its parent) visits them exactly in order with a heap of at most 3 x enumerated entries.
Candidates over the target are skipped; so are networks equal to an earlier entry's (choices
that differ only in a skipped block's unused variables).
"""

from __future__ import annotations

import heapq
import logging
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml

from fpnas.runtime.run_dir import RunDir
from fpnas.search.distribution import ArchDistribution
from fpnas.space.arch import architecture_from_indices
from fpnas.space.complexity import AdditiveTable, ComplexityTables
from fpnas.space.spec import SearchSpace

log = logging.getLogger("fpnas")


def ranked_architectures(dist: ArchDistribution) -> Iterator[tuple[float, torch.Tensor]]:
    """Every architecture of ``dist`` as ``(log P, [D] choice indices)``, most probable first."""
    for lp, flat in ranked_unit_values(dist):
        yield lp, dist.decode(torch.tensor([flat], dtype=torch.long, device=dist.alpha.device))[0].cpu()


def ranked_unit_values(dist: ArchDistribution) -> Iterator[tuple[float, list[int]]]:
    """Every architecture as ``(log P, flat value of every unit)``, most probable first.

    Units are ordered by the log-probability gap between their best and second-best value, so
    that "move the last changed unit back to its best value and take the next unit's second
    best" never increases the probability; every rank vector then has exactly one parent.
    """
    logp = torch.log_softmax(dist.masked_logits().detach().double().cpu(), dim=1)
    sizes = dist.unit_sizes
    order_in_unit, sorted_lp = [], []
    for u, n in enumerate(sizes):
        lp, idx = torch.sort(logp[u, :n], descending=True, stable=True)
        sorted_lp.append(lp.tolist())
        order_in_unit.append(idx.tolist())
    gap = [lp[0] - lp[1] if len(lp) > 1 else math.inf for lp in sorted_lp]
    units = sorted(range(len(sizes)), key=lambda u: gap[u])  # position -> unit
    best_flat = [order_in_unit[u][0] for u in range(len(sizes))]
    base = sum(lp[0] for lp in sorted_lp)

    def decode(ranks: tuple) -> list[int]:
        flat = list(best_flat)
        for pos, r in ranks:
            flat[units[pos]] = order_in_unit[units[pos]][r]
        return flat

    def lp_of(pos: int, r: int) -> float:
        return sorted_lp[units[pos]][r]

    yield base, decode(())
    if not units:
        return
    # a node: sparse ranks ((position, rank), ...) sorted by position; its last entry is the
    # position changed last. Successors of a node whose last entry is (m, r):
    #   (a) (m, r + 1)               next value of the same unit
    #   (b) ..., (m, r), (m + 1, 1)  second-best value of the next unit
    #   (c) ..., (m + 1, 1) if r==1  move the change from unit m to unit m + 1
    heap: list = []
    counter = 0

    def push(score: float, ranks: tuple) -> None:
        nonlocal counter
        heapq.heappush(heap, (-score, counter, ranks))
        counter += 1

    if len(sorted_lp[units[0]]) > 1:
        push(base + lp_of(0, 1) - lp_of(0, 0), ((0, 1),))
    while heap:
        neg, _, ranks = heapq.heappop(heap)
        score = -neg
        yield score, decode(ranks)
        m, r = ranks[-1]
        if r + 1 < len(sorted_lp[units[m]]):
            push(score + lp_of(m, r + 1) - lp_of(m, r), ranks[:-1] + ((m, r + 1),))
        if m + 1 < len(units):
            step = lp_of(m + 1, 1) - lp_of(m + 1, 0)
            push(score + step, ranks + ((m + 1, 1),))
            if r == 1:
                push(score + step - (lp_of(m, 1) - lp_of(m, 0)), ranks[:-1] + ((m + 1, 1),))


def network_key(space: SearchSpace, indices) -> tuple:
    """What the built network depends on: a skipped block's other variables do not matter."""
    return tuple(("skip", c.in_chs, c.out_chs, c.stride) if c.skip else c for c in space.resolve(indices))


@dataclass
class TopK:
    """Result of :func:`top_architectures`."""

    entries: list[dict[str, Any]]  # rank, log_prob, prob, macs, params, indices
    enumerated: int  # candidates visited in probability order
    over_target: int  # of those, skipped for exceeding the target
    duplicates: int  # skipped: same network as an earlier entry
    cap_hit: bool  # stopped at max_candidates before finding k
    exhausted: bool = False  # every architecture of the space was visited


def top_architectures(
    dist: ArchDistribution,
    space: SearchSpace,
    k: int,
    max_candidates: int,
    limits: Sequence[tuple[AdditiveTable, float]] = (),
    distinct_networks: bool = True,
    tables: ComplexityTables | None = None,
    batch: int = 512,
) -> TopK:
    """The ``k`` most probable architectures with every ``(table, limit)`` of ``limits`` respected (the
    search's constraints: FLOPs, params, latency, any additive metric), after at most ``max_candidates``."""
    if k < 1:
        raise ValueError("k must be >= 1")
    tables = tables or ComplexityTables(space)
    entries: list[dict[str, Any]] = []
    seen: set = set()
    examined = over = dups = 0
    pending: list[tuple[float, list[int]]] = []

    def flush() -> bool:
        """Score the pending candidates in one table look-up, in order; True once k are found."""
        nonlocal examined, over, dups
        flat = torch.tensor([f for _, f in pending], dtype=torch.long, device=dist.alpha.device)
        indices = dist.decode(flat).cpu()
        macs, params = tables.lookup(indices)
        over_limits = torch.zeros(len(indices), dtype=torch.bool)
        for table, limit in limits:
            over_limits |= table.lookup(indices) > limit
        batch_items = list(
            zip(
                [(lp, idx) for (lp, _), idx in zip(pending, indices)],
                macs.tolist(),
                params.tolist(),
                over_limits.tolist(),
            )
        )
        pending.clear()
        for (lp, idx), m, p, over_limit in batch_items:
            examined += 1
            if over_limit:
                over += 1
                continue
            if distinct_networks:
                key = network_key(space, idx.tolist())
                if key in seen:
                    dups += 1
                    continue
                seen.add(key)
            entries.append(
                {
                    "rank": len(entries) + 1,
                    "log_prob": lp,
                    "prob": math.exp(lp),
                    "macs": m,
                    "params": p,
                    "indices": idx.tolist(),
                }
            )
            if len(entries) == k:
                return True
        return False

    done = exhausted = False
    visited = 0
    for lp, flat in ranked_unit_values(dist):
        visited += 1
        pending.append((lp, flat))
        # growing batches: the first candidates are usually enough, later ones come in bulk
        if (len(pending) >= min(batch, max(1, visited // 2)) or visited >= max_candidates) and flush():
            done = True
            break
        if visited >= max_candidates:
            break
    else:
        exhausted = True  # every architecture of the space was visited
    if not done and pending:
        done = flush()
    return TopK(entries, examined, over, dups, cap_hit=not done and not exhausted, exhausted=exhausted and not done)


def write_top_architectures(
    out_dir: str | Path,
    dist: ArchDistribution,
    space: SearchSpace,
    k: int,
    max_candidates: int,
    constraints: Sequence,
    distinct_networks: bool = True,
    tables: ComplexityTables | None = None,
    **meta,
) -> Path:
    """``<out_dir>/top_archs.yaml`` (the list) and ``<out_dir>/top_archs/rank_<i>.yaml`` (one
    ordinary architecture file per entry, for ``train.py arch=...`` and ``python -m fpnas.show``).
    The file gives MFLOPs and M params (millions, as every file and message); the code counts MACs.
    ``constraints``: ``(Constraint, table)`` pairs every entry respects; the entries give their
    metrics' values too."""
    out_dir = Path(out_dir)
    limits = [(table, c.limit) for c, table in constraints]
    res = top_architectures(dist, space, k, max_candidates, limits, distinct_networks, tables)
    extra = [(c, table) for c, table in constraints if c.name not in ("flops", "params")]
    run = RunDir(out_dir)
    arch_dir = run.top_archs_dir
    for old in arch_dir.glob("rank_*.yaml"):  # a re-export (resume) must not leave stale ranks
        old.unlink()
    entries = []
    for e in res.entries:
        name = f"rank_{e['rank']}.yaml"
        arch = architecture_from_indices(
            space, e["indices"], source="top_archs", rank=e["rank"], log_prob=round(e["log_prob"], 6), **meta
        )
        arch.save(arch_dir / name)
        entries.append(
            {
                "rank": e["rank"],
                "log_prob": round(e["log_prob"], 6),
                "prob": float(f"{e['prob']:.6g}"),
                "mflops": round(e["macs"] / 1e6, 4),
                "params_m": round(e["params"] / 1e6, 4),
                **{
                    f"{c.name}_{c.metric.unit}": round(
                        float(t.lookup(torch.tensor([e["indices"]]))[0]) / c.metric.scale, 4
                    )
                    for c, t in extra
                },
                "file": str((arch_dir / name).relative_to(run.root)),
                "choices": {
                    n: (float(v) if isinstance(v, float) else v) for n, v in space.choices_of(e["indices"]).items()
                },
            }
        )
    if res.cap_hit:
        note = (
            f"stopped after {res.enumerated} candidates (export.max_candidates) with {len(entries)} of {k} "
            "found: raise export.max_candidates for more"
        )
    elif len(entries) < k:
        note = f"the space has only {len(entries)} distinct architectures under the target"
    else:
        note = "complete: these are the most probable architectures under the target, in order"
    doc = {
        "space": architecture_from_indices(space, [0] * space.num_decisions).space_entry(),
        "input_size": space.input_size,
        "in_chans": space.in_chans,
        "num_classes": space.num_classes,
        "target_mflops": next((c.target for c, _ in constraints if c.name == "flops"), None),
        "targets": {c.name: f"{c.target:g} {c.metric.unit}" for c, _ in constraints} or None,
        **meta,
        "requested": int(k),
        "found": len(entries),
        "enumerated": res.enumerated,
        "skipped_over_target": res.over_target,
        "skipped_same_network": res.duplicates,
        "max_candidates": int(max_candidates),
        "cap_hit": res.cap_hit,
        "note": note,
        "entries": entries,
    }
    path = run.top_archs
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        f.write(
            "# The most probable distinct architectures within the targets under the final\n"
            "# distribution, most probable first (fpnas.search.topk). log_prob = log P(choices | alpha).\n"
            "# Entry i is also an ordinary architecture file: train it with\n"
            "#   python train.py arch=<run dir>/top_archs/rank_<i>.yaml\n"
            "# and print it with  python -m fpnas.show <run dir>/top_archs/rank_<i>.yaml\n"
        )
        yaml.safe_dump(doc, f, sort_keys=False)
    return path


def export_from_search(module, output_dir: str | Path) -> Path | None:
    """``top_archs.yaml`` of a finished search when ``export.top_k`` > 0 (called on rank zero)."""
    k = module.final_pick.top_k
    if k <= 0:
        return None
    # the CPU copy of the distribution: the enumeration decodes many small batches
    path = write_top_architectures(
        output_dir,
        module.host_distribution(),
        module.space,
        k,
        module.final_pick.max_candidates,
        list(zip(module.constraints, module.cost_tables)),
        tables=module.tables,
        phase=module.phase,
        steps=module.steps_completed,
    )
    doc = yaml.safe_load(path.read_text())
    log.info(
        "top-k: %d of %d architectures within %s after %d candidates%s -> %s",
        doc["found"],
        k,
        ", ".join(f"{c.target:g} {c.metric.unit}" for c in module.constraints),
        doc["enumerated"],
        " (max_candidates reached)" if doc["cap_hit"] else "",
        path,
    )
    return path
