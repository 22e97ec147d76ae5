"""The search LightningModule on real (tiny) data: alpha learns, the FLOPs hinge bites, FD->JD."""

import dataclasses
from functools import partial

import pytest
import pytorch_lightning as pl
import torch

from fpnas.search.module import SearchModule
from fpnas.search.sampling import AdaptiveK
from fpnas.space.complexity import ComplexityTables
from fpnas.space.spec import SearchSpace
from tests.helpers import PLAIN_SEARCH, data_module, search_module

# One decision: the width of a single block, 1 channel (a crippling bottleneck) or 16.
WIDTH_SPACE = dict(
    name="width",
    input_size=8,
    in_chans=1,
    num_classes=10,
    stem={"channels": 8, "kernel": 3, "stride": 1},
    groups=[
        {"channels": [1, 16], "repeat": 1, "stride": 2, "expansion": [1], "kernel": [3], "act": ["relu"], "se": [0]}
    ],
    head={"channels": 32},
)


def sgd(lr: float):
    """The default ω optimizer (conf/optim/default.yaml) at another learning rate."""
    return partial(torch.optim.SGD, lr=lr, momentum=0.9, nesterov=True, weight_decay=4e-5)


def plain_module(space, sampler, **arguments):
    """A SearchModule with the plainest settings (helpers.PLAIN_SEARCH, β = 1) and ``arguments`` on top."""
    return search_module(space, sampler, **({"beta": 1.0} | PLAIN_SEARCH | arguments))


def adam(lr: float):
    return partial(torch.optim.Adam, lr=lr)


def _search(space, target_mflops, beta, epochs=6, **kwargs):
    pl.seed_everything(0)
    module = plain_module(
        space,
        AdaptiveK(0.25, 2),
        target_mflops=target_mflops,
        beta=beta,
        alpha_optimizer=adam(0.1),
        omega_optimizer=sgd(0.05),
        warmup_epochs=1,
        seed=0,
        **kwargs,
    )
    trainer = pl.Trainer(
        max_epochs=epochs,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,
    )
    trainer.fit(module, datamodule=data_module("digits", batch_size=32))
    return module


def test_alpha_converges_to_the_choice_that_clearly_helps():
    space = SearchSpace(WIDTH_SPACE)
    with pytest.warns(UserWarning, match=r"cost.target_mflops=1 is at or above the largest architecture.*never acts"):
        module = _search(space, target_mflops=1.0, beta=0.0)  # no cost term: accuracy alone decides
    p_wide = float(module.distribution.marginal([0])[1])
    assert p_wide > 0.9
    assert module.space.choices_of(module.argmax_architecture().tolist()) == {"g1.channels": 16}
    # every step drew K = max(2, floor(0.25 * H)) = 2 samples
    assert int(module.samples_total) == 2 * int(module.steps_done) == 2 * 6 * (719 // 32)


def test_a_tight_flops_target_with_large_beta_makes_the_cheap_choice_win():
    space = SearchSpace(WIDTH_SPACE)
    macs, _ = ComplexityTables(space).lookup(torch.tensor([[0], [1]]))
    assert macs.tolist() == [6720.0, 16320.0]  # hand-computed: stem 4608, dw 1152, pw, head, fc
    module = _search(space, target_mflops=0.010, beta=5.0)
    assert float(module.distribution.marginal([0])[0]) > 0.9


def test_coarse_to_fine_switches_once_and_keeps_the_distribution():
    space = SearchSpace.load("micro")
    module = _search(space, target_mflops=0.08, beta=1.0, epochs=3, schedule="coarse_to_fine", switch_epoch=2)
    assert module.phase == "joint"
    assert int(module.distribution.mask.sum()) == sum(
        torch.tensor([space.sizes[d] for d in u]).prod().item() for u in space.units("joint")
    )
    # alpha moved away from uniform, and the entropy went down from H0
    assert float(module.distribution.entropy()) < float(module.entropy_initial)
    assert int(module.k_initial) == int(0.25 * float(module.entropy_initial))


@pytest.mark.parametrize("weight_importance", [True, False])
def test_omega_gradient_matches_the_importance_weighted_sum(weight_importance):
    """The one-pass online-softmax accumulation equals sum_k w_k grad CE_k computed naively."""
    space = SearchSpace.load("micro")
    torch.manual_seed(0)
    module = plain_module(space, AdaptiveK(0.25, 2), target_mflops=0.1, weight_importance=weight_importance)
    module.manual_backward = lambda loss: loss.backward()  # no trainer attached
    x, y = torch.randn(16, 1, 8, 8), torch.randint(0, 10, (16,))
    rows = module.distribution.sample(5, torch.Generator().manual_seed(1)).tolist()
    module.supernet.eval()  # fixed BN statistics: every forward is the same function
    module._omega_backward(x, y, rows)
    got = [p.grad.clone() if p.grad is not None else torch.zeros_like(p) for p in module.supernet.parameters()]
    module.supernet.zero_grad(set_to_none=True)
    losses = [torch.nn.functional.cross_entropy(module.supernet(x, r), y) for r in rows]
    ll = torch.stack([-loss.detach() * 16 for loss in losses])
    w = torch.softmax(ll, 0) if weight_importance else torch.full((5,), 0.2)
    sum(wk * loss for wk, loss in zip(w, losses)).backward()
    want = [p.grad if p.grad is not None else torch.zeros_like(p) for p in module.supernet.parameters()]
    assert all(torch.allclose(a, b, atol=1e-6, rtol=1e-4) for a, b in zip(got, want))
    assert sum(float(g.abs().sum()) for g in got) > 0


@pytest.mark.parametrize("distill", [False, True])
def test_sandwich_adds_the_largest_and_smallest_paths_to_the_weighted_sum(distill):
    """search.sandwich: the importance-weighted sum of the sampled paths' gradients plus the largest
    architecture's CE gradient and the smallest's (CE, or with distill the cross-entropy against the
    largest's predictions, as the sampled paths then use too); the weights stay the labels' likelihoods."""
    from fpnas.search.module import soft_cross_entropy

    space = SearchSpace.load("micro")
    torch.manual_seed(0)
    module = plain_module(space, AdaptiveK(0.25, 2), target_mflops=0.1, sandwich=True, distill=distill)
    module.manual_backward = lambda loss: loss.backward()
    largest, smallest = module.sandwich_rows
    tables = ComplexityTables(space)
    macs = [float(tables.lookup(torch.tensor([r]))[0][0]) for r in (largest, smallest)]
    assert macs == [tables.macs.value_range()[1], tables.macs.value_range()[0]]
    x, y = torch.randn(16, 1, 8, 8), torch.randint(0, 10, (16,))
    rows = module.distribution.sample(4, torch.Generator().manual_seed(1)).tolist()
    module.supernet.eval()
    module._omega_backward(x, y, rows)
    got = [p.grad.clone() if p.grad is not None else torch.zeros_like(p) for p in module.supernet.parameters()]
    module.supernet.zero_grad(set_to_none=True)
    f = torch.nn.functional
    teacher_logits = module.supernet(x, largest)
    teacher = teacher_logits.detach().softmax(-1)
    total = f.cross_entropy(teacher_logits, y)
    small = module.supernet(x, smallest)
    total = total + (soft_cross_entropy(small, teacher) if distill else f.cross_entropy(small, y))
    logits = [module.supernet(x, r) for r in rows]
    ll = torch.stack([-f.cross_entropy(lg, y, reduction="sum").detach() for lg in logits])
    w = torch.softmax(ll, 0)
    losses = [soft_cross_entropy(lg, teacher) if distill else f.cross_entropy(lg, y) for lg in logits]
    (total + sum(wk * loss for wk, loss in zip(w, losses))).backward()
    want = [p.grad if p.grad is not None else torch.zeros_like(p) for p in module.supernet.parameters()]
    assert all(torch.allclose(a, b, atol=1e-6, rtol=1e-4) for a, b in zip(got, want))


def test_distill_without_sandwich_is_refused():
    from fpnas.errors import ConfigError

    with pytest.raises(ConfigError, match="search.sandwich=true"):
        plain_module(SearchSpace.load("micro"), AdaptiveK(0.25, 2), target_mflops=0.1, distill=True)


def test_scored_pick_is_the_most_accurate_of_the_most_probable_candidates_within_the_target():
    """export.candidates=N: the N most probable distinct architectures within the target are scored by the
    super-net on the α split; the exported one is the most accurate of them, until α moves."""
    from fpnas.search.topk import top_architectures

    space = SearchSpace.load("micro")
    torch.manual_seed(0)
    module = plain_module(space, AdaptiveK(0.25, 2), target_mflops=0.08, export_candidates=6)
    dm = data_module("digits", batch_size=64)
    dm.setup()
    loader = dm.val_dataloader()
    probable = module.exported_architecture()
    pick = module.select_by_score(loader)
    top = top_architectures(module.host_distribution(), space, 6, 10**7, module.limits(), tables=module.tables)
    rows = [e["indices"] for e in top.entries]
    scores = module.score_architectures(rows, loader)
    assert pick.tolist() in rows and pick.tolist() == rows[max(range(6), key=lambda i: (*scores[i], -i))]
    assert torch.equal(module.exported_architecture(), pick) and module.selection().startswith("the best of the 6")
    assert module.scored_val_acc == max(s[0] for s in scores) and len(module.candidate_scores) == 6
    assert torch.equal(torch.tensor(rows[0]), probable)
    with torch.no_grad():
        module.distribution.alpha.add_(0.0)  # α moved: back to the most probable
    assert torch.equal(module.exported_architecture(), probable)


# ----------------------------------------------------------------------------- the budget as a limit
def favour_largest(module) -> None:
    """Logits that favour the largest choice of every decision, plus fixed noise."""
    alpha = torch.randn(module.distribution.alpha.shape, generator=torch.Generator().manual_seed(3)) * 0.5
    for u, n in enumerate(module.distribution.unit_sizes):
        alpha[u, n - 1] += 2.0
    module.distribution.alpha.copy_(alpha)


def test_feasible_export_is_the_brute_force_most_probable_architecture_under_the_target():
    """With a distribution whose mode is over the target, arch.yaml holds exactly the most probable
    architecture within the target (checked against every architecture of micro)."""
    import itertools

    space = SearchSpace.load("micro")
    tables = ComplexityTables(space)
    module = plain_module(space, AdaptiveK(0.25, 2), target_mflops=0.08)
    favour_largest(module)  # the mode is far over 0.08
    mode = module.argmax_architecture()
    assert float(tables.lookup(mode)[0][0]) > 0.1e6  # over the target by far

    every = torch.tensor(list(itertools.product(*[range(s) for s in space.sizes])))
    macs, _ = tables.lookup(every)
    log_p = module.distribution.log_prob(every)
    log_p[macs > module.target("flops") * 1e6] = -float("inf")
    best = every[int(log_p.argmax())]
    exported = module.exported_architecture()
    assert torch.equal(exported, best)
    assert float(tables.lookup(exported)[0][0]) <= 0.08e6
    assert "within the target" in module.selection() and "over the target" in module.selection()
    # the paper's argmax stays available
    module.final_pick = dataclasses.replace(module.final_pick, mode="argmax")
    module.member.export_cache = None
    assert torch.equal(module.exported_architecture(), mode)


def test_nothing_probable_within_the_target_exports_the_mode_shrunk_to_fit():
    """When the enumeration finds nothing within the target (export.max_candidates reached), arch.yaml holds the
    argmax of every unit shrunk, one change at a time, by the change losing the least log-probability per unit
    of excess removed, until it fits; not the cheapest architecture, which the search may never have trained."""
    space = SearchSpace.load("micro")
    tables = ComplexityTables(space)
    module = plain_module(space, AdaptiveK(0.25, 2), target_mflops=0.08)
    module.final_pick = dataclasses.replace(module.final_pick, max_candidates=1)  # only the mode is looked at
    favour_largest(module)
    mode = module.argmax_architecture()
    with pytest.warns(UserWarning, match="exporting the most probable one shrunk to fit"):
        exported = module.exported_architecture()
    macs = lambda row: float(tables.macs.lookup(torch.as_tensor(row)[None])[0])  # noqa: E731
    assert macs(exported) <= 0.08e6 < macs(mode)
    assert "shrunk to fit" in module.selection()
    cheapest = tables.extreme_architecture("min")[1]
    assert exported.tolist() != cheapest and macs(exported) > macs(cheapest)
    # the first change is the cheapest in probability per unit of excess removed
    marginal = module.host_distribution().marginals()
    log_p = [torch.log(marginal([d]).double()) for d in range(space.num_decisions)]
    start, over = mode.tolist(), macs(mode) / 0.08e6 - 1
    ratios = []
    for d, decision in enumerate(space.decisions):
        for c in range(decision.size):
            trial = [*start[:d], c, *start[d + 1 :]]
            saved = over - max(0.0, macs(trial) / 0.08e6 - 1)
            if c != start[d] and saved > 0:
                ratios.append(((float(log_p[d][start[d]] - log_p[d][c]) / saved, -saved), trial))
    first = min(ratios)[1]
    one_step = plain_module(space, AdaptiveK(0.25, 2), target_mflops=macs(first) / 1e6)
    assert one_step.final_pick.shrunk(one_step, start, log_p) == first


def test_a_search_that_lost_the_target_restores_feasibility_until_its_most_probable_architecture_fits(monkeypatch):
    """search.restore_feasibility: once an epoch starts with none of the export.max_candidates most probable
    architectures within the target, each α step whose samples are all over it uses Deb's rule, until an epoch
    starts with the most probable architecture within the target; decided once per epoch. The state is in
    buffers (a resumed search goes on as it would have) and a checkpoint written before them loads with nothing
    set."""
    space = SearchSpace.load("micro")
    over, mixed = [torch.tensor([0.5, 0.2])], [torch.tensor([0.5, 0.0])]
    epoch = [0]
    monkeypatch.setattr(SearchModule, "current_epoch", property(lambda self: epoch[0]))

    def set_mode(module, choice):
        """The most probable architecture takes every decision's first (cheapest) or last choice."""
        alpha = torch.zeros(module.distribution.alpha.shape)
        for u, n in enumerate(module.distribution.unit_sizes):
            alpha[u, 0 if choice == "first" else n - 1] = 2.0
        module.distribution.alpha.copy_(alpha)

    def lost_module(restore=True, max_candidates=1):
        module = plain_module(space, AdaptiveK(0.25, 2), target_mflops=0.05, restore_feasibility=restore)
        module.final_pick = dataclasses.replace(module.final_pick, max_candidates=max_candidates)
        set_mode(module, "last")  # far over 0.05 MFLOPs; only the mode is enumerated
        return module

    module = lost_module()
    assert not module.final_pick.reaches_target(module)
    assert [module._feasibility_step(module.member, c) for c in [over, mixed, over]] == [True, False, True]
    set_mode(module, "first")  # back within the target: the epoch keeps its decision
    assert module.final_pick.reaches_target(module) and module._feasibility_step(module.member, over)
    epoch[0] = 1  # the next epoch starts within: Eq. 7 as written
    assert not module._feasibility_step(module.member, over)
    assert module.restored_steps == 3
    assert [int(getattr(module.member, n)) for n in ("restore_epoch", "restoring", "restored_steps")] == [1, 0, 3]

    # once lost, restoring goes on into the epochs that start with the mode still over the target, even when
    # the enumeration would find an architecture within it, until one starts with the mode within
    epoch[0] = 0
    lost = lost_module()
    assert lost._feasibility_step(lost.member, over)
    lost.final_pick = dataclasses.replace(lost.final_pick, max_candidates=100_000)
    epoch[0] = 1
    assert lost.final_pick.reaches_target(lost) and lost._feasibility_step(lost.member, over)
    set_mode(lost, "first")
    epoch[0] = 2
    assert not lost._feasibility_step(lost.member, over) and lost.restored_steps == 2

    epoch[0] = 0
    # the whole space enumerated (micro has fewer architectures than the default export.max_candidates), or
    # the option off: never
    for other in (lost_module(max_candidates=100_000), lost_module(restore=False)):
        assert not any(other._feasibility_step(other.member, over) for _ in range(4)) and other.restored_steps == 0

    state = lost_module().state_dict() | {k: v for k, v in module.state_dict().items() if "restor" in k}
    fresh = lost_module()
    set_mode(fresh, "first")
    fresh.on_load_checkpoint({"state_dict": state, "fpnas": {"phase": "factorized"}})
    fresh.load_state_dict(state)
    epoch[0] = 1
    assert fresh.restored_steps == 3 and not fresh._feasibility_step(fresh.member, over)  # epoch 1: not restoring
    old = {k: v for k, v in state.items() if not k.endswith(("restore_epoch", "restoring", "restored_steps"))}
    fresh.on_load_checkpoint({"state_dict": old, "fpnas": {"phase": "factorized"}})
    fresh.load_state_dict(old)  # α over the target again; nothing decided yet: epoch 1 restores
    assert fresh.restored_steps == 0 and fresh._feasibility_step(fresh.member, over)


class _RecordBeta(pl.Callback):
    def __init__(self):
        self.rows = []  # (β after the step, E[MFLOPs] after the step's α update)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.rows.append((float(pl_module.beta), pl_module.expected_macs() / 1e6))


@pytest.mark.parametrize("target, rising", [(0.05, True), (0.15, False)])
def test_adaptive_beta_rises_while_over_the_target_and_falls_while_under(target, rising):
    space = SearchSpace.load("micro")  # uniform E[MFLOPs] ~ 0.093: 0.05 is under it, 0.15 over
    pl.seed_everything(0)
    module = plain_module(
        space, AdaptiveK(0.25, 2), target_mflops=target, beta=0.75, beta_lr=0.05, alpha_optimizer=adam(0.05)
    )
    record = _RecordBeta()
    trainer = pl.Trainer(
        max_epochs=1,
        limit_train_batches=8,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        callbacks=[record],
    )
    trainer.fit(module, datamodule=data_module("digits", batch_size=32))
    betas = [0.75] + [b for b, _ in record.rows]
    for (before, after), (_, expected) in zip(zip(betas, betas[1:]), record.rows):
        gap = expected / target - 1
        assert (after - before) == pytest.approx(max(0.0, before + 0.05 * gap) - before, abs=1e-12)
        assert (gap > 0) == rising
    assert (betas[-1] > 0.75 + 0.05) if rising else (betas[-1] < 0.75 - 0.05)


# ----------------------------------------------------------------------------- mixed precision
def _first_alpha_grad(plugins=()):
    from tests.helpers import AlphaGradTrace

    pl.seed_everything(0)
    module = plain_module(SearchSpace.load("micro"), AdaptiveK(0.25, 2), target_mflops=0.08, seed=0)
    trace = AlphaGradTrace(path="unused")
    trace.on_train_end = lambda *a: None
    trainer = pl.Trainer(
        max_steps=2,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        callbacks=[trace],
        plugins=list(plugins),
    )
    trainer.fit(module, datamodule=data_module("digits", batch_size=32))
    return trace.grads[0]


def test_fp16_loss_scaling_leaves_the_alpha_gradient_unscaled():
    """α's gradient is set in closed form, never scaled by a GradScaler; Lightning's AMP unscales every
    optimizer's gradient before its step, so the search scales α's by the loss scale first. On the
    CPU (explicit plugins: Lightning maps "16-mixed" to bf16 there), the fp16 search with a 2^16
    GradScaler, as on CUDA, must give α's optimizer the gradient of the same search without one."""
    from pytorch_lightning.plugins.precision import MixedPrecision

    fp16 = dict(precision="16-mixed", device="cpu")
    unscaled = _first_alpha_grad(plugins=[MixedPrecision(**fp16, scaler=torch.amp.GradScaler("cpu", enabled=False))])
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**16)
    scaled = _first_alpha_grad(plugins=[MixedPrecision(**fp16, scaler=scaler)])
    assert float(scaler.get_scale()) == 2.0**16  # no overflow: the ω steps were taken too
    # equal but for the ω step before it (the scaler keeps small fp16 gradients from underflowing):
    # 0.23% measured; without the scaling α's gradient arrives 2^16 times too small
    assert float((scaled - unscaled).norm() / unscaled.norm()) <= 0.01
    full = _first_alpha_grad()  # and both are the 32-bit gradient up to fp16 forward rounding
    assert float(scaled.norm() / full.norm()) == pytest.approx(1.0, abs=0.15)


def test_finetuned_candidate_scores_train_each_candidate_alone_from_its_shared_weights():
    """export.finetune_steps: each candidate becomes a standalone network with its super-net weights and
    trains that many steps on the ω split before it is scored on α; the same candidates score the same
    twice (the same batches, in the same order), and training raises an untrained super-net's accuracy."""
    space = SearchSpace.load("micro")
    torch.manual_seed(0)
    module = plain_module(
        space,
        AdaptiveK(0.25, 2),
        target_mflops=0.08,
        export_candidates=3,
        export_finetune_steps=30,
        export_finetune_lr=0.05,
    )
    dm = data_module("digits", batch_size=32)
    dm.setup()
    rows = module.distribution.sample(2, torch.Generator().manual_seed(0)).tolist()
    shared = module.score_architectures(rows, dm.val_dataloader())
    tuned, _ = module.final_pick.finetuned_scores(module, rows, dm.val_dataloader(), dm.train_dataloader()["train"])
    again, _ = module.final_pick.finetuned_scores(module, rows, dm.val_dataloader(), dm.train_dataloader()["train"])
    assert tuned == again
    assert all(t[0] > s[0] + 0.2 for t, s in zip(tuned, shared)), (tuned, shared)  # from ~chance to well above
    pick = module.select_by_score(dm.val_dataloader(), dm.train_dataloader()["train"])
    assert "after 30 fine-tuning steps each" in module.selection() and len(module.candidate_scores) == 3
    assert torch.equal(pick, module.exported_architecture())


def test_filled_candidates_grow_to_the_budget_by_the_most_probable_changes():
    """export.fill: a candidate is grown, one decision at a time, by the most probable change that costs more
    MACs and stays within the target, until no such change fits."""
    space = SearchSpace.load("micro")
    module = plain_module(space, AdaptiveK(0.25, 2), target_mflops=0.08, export_candidates=4, export_fill=True)
    g = torch.Generator().manual_seed(1)
    module.distribution.alpha.copy_(torch.randn(module.distribution.alpha.shape, generator=g))
    marginal = module.host_distribution().marginals()
    log_p = [torch.log(marginal([d]).double()) for d in range(space.num_decisions)]
    start = module.tables.extreme_architecture("min")[1]
    grown = module.final_pick.filled(module, start, log_p)
    macs = lambda row: float(module.tables.macs.lookup(torch.tensor([row]))[0])  # noqa: E731
    assert macs(start) < macs(grown) <= 0.08e6
    for d, decision in enumerate(space.decisions):  # nothing costlier fits any more
        for c in range(decision.size):
            trial = [*grown[:d], c, *grown[d + 1 :]]
            assert macs(trial) <= macs(grown) or macs(trial) > 0.08e6
    # the first change is the most probable of the costlier ones that fit
    first = [
        (float(log_p[d][c]), d, c)
        for d, decision in enumerate(space.decisions)
        for c in range(decision.size)
        if c != start[d] and macs(start) < macs([*start[:d], c, *start[d + 1 :]]) <= 0.08e6
    ]
    _, d, c = max(first)
    one_step = plain_module(space, AdaptiveK(0.25, 2), target_mflops=macs([*start[:d], c, *start[d + 1 :]]) / 1e6)
    assert one_step.final_pick.filled(one_step, start, log_p) == [*start[:d], c, *start[d + 1 :]]


def test_significance_pick_keeps_the_largest_candidate_unless_a_smaller_one_is_clearly_better():
    """export.significance=z: the candidate with the most MACs wins unless the most accurate one beats it by
    more than z standard errors of a difference of two accuracies on n images; z=0: the most accurate wins."""
    space = SearchSpace.load("micro")
    scores = [(0.90, -0.3), (0.915, -0.28), (0.89, -0.31)]
    macs = [5e4, 6e4, 8e4]  # the last uses the budget
    plain = plain_module(space, AdaptiveK(0.25, 2), target_mflops=0.08, export_candidates=3)
    assert plain.final_pick.pick(scores, macs, 1000) == 1
    strict = plain_module(space, AdaptiveK(0.25, 2), target_mflops=0.08, export_candidates=3, export_significance=2.0)
    # s.e. of the difference at p = 0.9025 on 1000 images: sqrt(2 p (1-p) / 1000) = 0.0133; 0.025 < 2 s.e.
    assert strict.final_pick.pick(scores, macs, 1000) == 2
    # on 10,000 images the s.e. is 0.0042: a 0.025 gap is 6 s.e., the smaller, better one wins
    assert strict.final_pick.pick(scores, macs, 10_000) == 1
    assert strict.final_pick.pick(scores, macs, 0) == 1  # nothing counted: the scores decide
