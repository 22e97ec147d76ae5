"""The final pick: which architecture a search returns (``arch.yaml``), from the ``export`` group of
``conf/search.yaml``.

"Export" names three things in fpnas; this module is the first: (1) the ``export`` config group, how the
search turns its distribution into one architecture; (2) the arch.yaml / top_archs.yaml files the search
writes (:mod:`fpnas.search.callbacks`, :mod:`fpnas.search.topk`); (3) ``fpnas-export``, a trained network as
ONNX or safetensors (:mod:`fpnas.tools.export`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from pytorch_lightning.utilities import rank_zero_warn

from fpnas.runtime.distributed import all_reduce_sum
from fpnas.search.options import check_final_pick
from fpnas.search.topk import top_architectures
from fpnas.space.builder import build_model
from fpnas.space.complexity import AdditiveTable


@dataclass(frozen=True)
class FinalPick:
    """The ``export`` group: how the search picks the architecture it returns. ``mode``: "feasible" (the most
    probable architecture within every target, exact) or "argmax" (every unit's argmax, the paper's);
    ``top_k``: also write the ``top_k`` most probable (0 = off); ``max_candidates``: architectures either
    enumeration may visit; ``candidates`` > 1: the most probable within the target are scored on the α split
    (``fill``: also each one grown to fill the budget; ``significance``: the largest wins unless a smaller one
    is better by that many standard errors; ``finetune_steps`` at ``finetune_lr``: each trained alone first)."""

    mode: str
    top_k: int
    max_candidates: int
    candidates: int
    fill: bool
    significance: float
    finetune_steps: int
    finetune_lr: float

    def __post_init__(self):
        check_final_pick(**self.__dict__)

    @property
    def scored(self) -> bool:
        """Whether the pick is made by scoring candidates at the end of the search (not by probability)."""
        return self.candidates > 1 and self.mode == "feasible"

    def most_probable(self, module) -> tuple[torch.Tensor, str]:
        """``(choice indices, how it was chosen)`` from the module's distribution and limits, without scoring."""
        mode = module.argmax_architecture()
        if self.mode == "argmax":
            return mode, "argmax of every unit (export.mode=argmax; not checked against the target)"
        within = "the most probable architecture within the target (exact)"
        if module.within_limits(mode):
            return mode, within + "; it is the argmax of every unit"
        best = self._most_probable_within(module)
        if best.entries:
            return (
                torch.tensor(best.entries[0]["indices"], dtype=torch.long),
                within + f"; the argmax of every unit is over the target (candidate {best.enumerated})",
            )
        # nothing under the targets among the most probable candidates: the most probable architecture
        # shrunk to fit, else the cheapest one, by the sum of metric / target (exact; one constraint: its
        # minimum, which the target check proved feasible before the search)
        targets = ", ".join(f"{c.target:g} {c.metric.unit}" for c in module.constraints)
        none = f"none of the {best.enumerated} most probable architectures is within the target {targets}"
        shrunk = self.shrunk(module, mode.tolist(), _marginal_log_probs(module))
        if shrunk is not None:
            rank_zero_warn(
                f"[fpnas] {none} (export.max_candidates): exporting the most probable one shrunk to fit; "
                "the search did not reach the target (docs/troubleshooting.md)"
            )
            return torch.tensor(shrunk, dtype=torch.long), (
                f"the argmax of every unit shrunk to fit the target (one change at a time, the least "
                f"probability lost per unit of excess removed): {none}"
            )
        cheapest = AdditiveTable.weighted_sum([(t, 1.0 / limit) for t, limit in module.limits()])
        idx = torch.tensor(cheapest.extreme_architecture("min")[1], dtype=torch.long)
        feasible = module.within_limits(idx)
        rank_zero_warn(
            f"[fpnas] {none} (export.max_candidates): exporting the cheapest one"
            + ("" if feasible else " (it is not within every target: no architecture may be)")
        )
        return idx, f"the cheapest architecture: {none}"

    def _most_probable_within(self, module):
        """The enumeration behind the pick: the most probable architecture within every target, among the
        ``max_candidates`` most probable (:class:`~fpnas.search.topk.TopK`, no entry when none is)."""
        return top_architectures(
            module.host_distribution(),
            module.space,
            1,
            self.max_candidates,
            module.limits(),
            distinct_networks=False,
            tables=module.tables,
        )

    def reaches_target(self, module) -> bool:
        """Whether the pick would find an architecture within every target among the ``max_candidates`` most
        probable (else the distribution has lost the target: ``search.restore_feasibility``)."""
        return module.within_limits(module.argmax_architecture()) or bool(self._most_probable_within(module).entries)

    @staticmethod
    def shrunk(module, indices: Sequence[int], log_p: Sequence[torch.Tensor]) -> list[int] | None:
        """``indices`` shrunk to fit every target, or None when no sequence of such changes gets there: while
        over, make the single change of a decision that loses the least log-probability per unit of excess
        it removes (the excess: the sum over constraints of max(0, metric / limit - 1)). The greedy rule of
        a knapsack, the mirror of :meth:`filled`; ``log_p``: each decision's marginal log-probabilities."""
        limits = module.limits()

        def excess(row: list[int]) -> float:
            t = torch.tensor([row])
            return sum(max(0.0, float(table.lookup(t)[0]) / limit - 1.0) for table, limit in limits)

        row = list(indices)
        over = excess(row)
        while over > 0:
            best = None
            for d, c, trial in _single_changes(module.space, row):
                saved = over - excess(trial)
                if saved <= 0:
                    continue
                key = (float(log_p[d][row[d]] - log_p[d][c]) / saved, -saved)
                if best is None or key < best[0]:
                    best = (key, trial, over - saved)
            if best is None:
                return None
            row, over = best[1], best[2]
        return row

    def filled(self, module, indices: Sequence[int], log_p: Sequence[torch.Tensor]) -> list[int]:
        """``indices`` grown to fill the budget: while some single change of a decision to a costlier
        choice stays within every target, make the most probable such change (``log_p``: each decision's
        marginal log-probabilities). What a user does by hand with a network under the budget, in the
        order the search's distribution prefers."""
        macs_of = module.tables.macs.lookup
        row = list(indices)
        while True:
            macs = float(macs_of(torch.tensor([row]))[0])
            best = None
            for d, c, trial in _single_changes(module.space, row):
                t = torch.tensor([trial])
                if float(macs_of(t)[0]) <= macs or not module.within_limits(t):
                    continue
                if best is None or float(log_p[d][c]) > best[0]:
                    best = (float(log_p[d][c]), trial)
            if best is None:
                return row
            row = best[1]

    def finetuned_scores(self, module, rows, loader, train_loader) -> tuple[list[tuple[float, float]], int]:
        """``(accuracy, mean log-likelihood)`` on ``loader`` of each architecture as a standalone network
        that starts from its super-net weights and trains ``finetune_steps`` steps on ``train_loader`` (SGD,
        cosine from ``finetune_lr``): what the shared weights would become for that network alone, a ranking
        less biased by weight sharing; and the images scored. Each rank fine-tunes on the same batches in
        the same order (a loader of its own, seeded by the run's seed), so the scores agree."""
        device, steps, out, images = module.device, self.finetune_steps, [], 0
        for row in rows:
            model = build_model(module.space, row).to(device)
            model.load_state_dict(module.supernet.standalone_state_dict(row))
            opt = torch.optim.SGD(model.parameters(), lr=self.finetune_lr, momentum=0.9, nesterov=True)
            sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
            torch.manual_seed(int(module.hparams.seed))  # the loader's shuffle: the same batches for every candidate
            model.train()
            done = 0
            while done < steps:
                for x, y in train_loader:
                    x, y = x.to(device), y.to(device)
                    opt.zero_grad(set_to_none=True)
                    F.cross_entropy(model(x), y).backward()
                    opt.step()
                    sched.step()
                    done += 1
                    if done == steps:
                        break
            model.eval()
            correct = ll = n = 0.0
            with torch.no_grad():
                for x, y in loader:
                    x, y = x.to(device), y.to(device)
                    logits = model(x)
                    correct += float((logits.argmax(-1) == y).sum())
                    ll -= float(F.cross_entropy(logits, y, reduction="sum"))
                    n += y.numel()
            sums = all_reduce_sum(torch.tensor([correct, ll, n], dtype=torch.float64, device=device)).tolist()
            out.append((sums[0] / sums[2], sums[1] / sums[2]))
            images = int(sums[2])
        return out, images

    def pick(self, scores: Sequence[tuple[float, float]], macs: Sequence[float], n: int) -> int:
        """The index of the final pick among scored candidates: the best (accuracy, then likelihood, then
        probability rank); with ``significance`` z > 0, the largest candidate (the most MACs: the one that
        uses the budget) unless the best one's accuracy is higher by more than z standard errors of the
        difference of two accuracies measured on ``n`` images (a smaller network must be predicted better,
        not just score a little higher on a noisy estimate)."""
        best = max(range(len(scores)), key=lambda i: (*scores[i], -i))
        z = self.significance
        if z <= 0 or n <= 0:
            return best
        big = max(range(len(macs)), key=lambda i: (macs[i], -i))
        p = (scores[best][0] + scores[big][0]) / 2
        se = math.sqrt(max(2 * p * (1 - p) / n, 0.0))
        return best if scores[best][0] - scores[big][0] > z * se else big

    def score_candidates(self, module, loader, train_loader=None) -> dict | None:
        """The scored pick: the ``candidates`` most probable distinct architectures within the targets (and,
        with ``fill``, their budget-filling versions), scored on ``loader`` (the α split) by the super-net or,
        with ``finetune_steps``, after training each alone on ``train_loader``; :meth:`pick` chooses. Returns
        ``{"pick": indices, "selection": how, "acc": its score, "table": every candidate's row}``, or None
        when fewer than two candidates exist. Run on every rank (it all-reduces)."""
        top = top_architectures(
            module.host_distribution(),
            module.space,
            self.candidates,
            self.max_candidates,
            module.limits(),
            distinct_networks=True,
            tables=module.tables,
        )
        if len(top.entries) < 2:
            return None
        rows = [e["indices"] for e in top.entries]
        entries = list(top.entries)
        if self.fill:  # each candidate also grown to fill the budget, as the distribution prefers
            keys = {tuple(r) for r in rows}
            log_p = _marginal_log_probs(module)
            for e in top.entries:
                grown = self.filled(module, e["indices"], log_p)
                if tuple(grown) not in keys:
                    keys.add(tuple(grown))
                    rows.append(grown)
                    macs = float(module.tables.macs.lookup(torch.tensor([grown]))[0])
                    lp = float(sum(log_p[d][c] for d, c in enumerate(grown)))
                    entry = {"rank": len(entries) + 1, "prob": math.exp(lp), "macs": macs, "indices": grown}
                    entries.append(entry | {"of": e["rank"]})  # the candidate it grew from
        tuned = train_loader is not None and self.finetune_steps > 0
        if tuned:
            scores, n_scored = self.finetuned_scores(module, rows, loader, train_loader)
        else:
            scores, n_scored = module.score_architectures(rows, loader), module.scored_images
        best = self.pick(scores, [e["macs"] for e in entries], n_scored)
        table = [
            {"rank": e["rank"], "prob": e["prob"], "macs": e["macs"], "acc": a, "log_lik": ll}
            | ({"of": e["of"]} if "of" in e else {})
            for e, (a, ll) in zip(entries, scores)
        ]
        how = f"after {self.finetune_steps} fine-tuning steps each" if tuned else "the super-net's"
        grown = (
            f" and their {len(rows) - len(top.entries)} budget-filling versions" if len(rows) > len(top.entries) else ""
        )
        pool = f"the {len(top.entries)} most probable architectures within the target{grown}"
        rule = f"the best of {pool}"
        if self.significance > 0:
            rule = f"the largest of {pool} unless a smaller one is better by > {self.significance:g} s.e."
        which = f"probability rank {best + 1}" if best < len(top.entries) else f"rank {entries[best]['of']} filled"
        selection = f"{rule} (α-split accuracy, {how}): {which}, {scores[best][0]:.4f}"
        pick = torch.tensor(rows[best], dtype=torch.long)
        return {"pick": pick, "selection": selection, "acc": scores[best][0], "table": table}


def _single_changes(space, row: list[int]):
    """``(decision, choice, row with that decision changed to that choice)`` for every other choice of every
    decision: the neighbours :meth:`FinalPick.filled` and :meth:`FinalPick.shrunk` walk through."""
    for d, decision in enumerate(space.decisions):
        for c in range(decision.size):
            if c != row[d]:
                yield d, c, [*row[:d], c, *row[d + 1 :]]


def _marginal_log_probs(module) -> list[torch.Tensor]:
    """Each decision's marginal log-probabilities under the module's distribution (float64, CPU)."""
    marginal = module.host_distribution().marginals()
    return [torch.log(marginal([d]).double().clamp_min(1e-30)) for d in range(module.space.num_decisions)]
