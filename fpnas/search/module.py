"""The FP-NAS search as a LightningModule (manual optimization, two optimizers).

Each step samples K architectures once, updates the super-net weights omega on a batch of the
omega split with PARSEC importance weights, then the architecture logits alpha on a batch of
the alpha split with the closed-form score-function gradient and the hinge cost of each constraint
(FLOPs by default; parameters or a measured latency, several at once: ``fpnas.cost.constraint.Constraint``).
Logging of entropy, K, sample counts, FLOPs and probabilities lives in callbacks
(``fpnas.search.callbacks``); they read :attr:`SearchModule.last_step`. With a list of targets the search
trains one super-net for a family of budgets (:class:`Member`).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from pytorch_lightning.utilities import rank_zero_info
from torchmetrics.classification import MulticlassAccuracy

from fpnas.cost.constraint import Constraint, constraint_from, dual_ascent_beta, split_targets
from fpnas.errors import ConfigError, NonFiniteLossError
from fpnas.runtime.distributed import all_reduce_sum, average_gradients
from fpnas.search.distribution import ArchDistribution, Schedule
from fpnas.search.importance import penalised_importance
from fpnas.search.optim import OptimizerFactory, check_optimizer, describe_optimizer
from fpnas.search.options import check_search_arguments
from fpnas.search.selection import FinalPick
from fpnas.space.complexity import AdditiveTable, ComplexityTables
from fpnas.space.spec import SearchSpace
from fpnas.space.supernet import SuperNet


@dataclass
class StepStats:
    """What one search step did; read by the logging callbacks."""

    k: int
    entropy: float
    macs: torch.Tensor  # [K] MACs of the sampled architectures
    costs: torch.Tensor  # [K] hinge costs, summed over the constraints
    values: dict[str, torch.Tensor] = field(default_factory=dict)  # [K] per constrained metric (counted unit)


def check_constraints(constraints) -> list[Constraint]:
    """The configured constraints as a list (``cost.constraints`` is a mapping: a null entry removes one)."""
    if isinstance(constraints, Mapping):
        constraints = [c for c in constraints.values() if c is not None]
    if not isinstance(constraints, Sequence) or isinstance(constraints, str) or not constraints:
        raise ConfigError(
            f"cost.constraints must name at least one constraint (e.g. cost=flops, cost=latency, "
            f"cost=flops_latency), got {constraints!r}"
        )
    out = [constraint_from(c) for c in constraints]
    names = [c.name for c in out]
    if len(set(names)) < len(names):
        raise ConfigError(f"cost.constraints: one constraint per metric, got {names}")
    return out


def soft_cross_entropy(logits: torch.Tensor, target_probs: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of ``logits`` against soft targets (in-place distillation's loss)."""
    return -(target_probs * F.log_softmax(logits, -1)).sum(-1).mean()


MEMBER_STATE = ("distribution.alpha", "beta", "entropy_initial", "k_initial")  # per member, in the state_dict
FEASIBILITY_STATE = ("restore_epoch", "restoring", "restored_steps")  # per member: search.restore_feasibility


def upgrade_state_dict(state: dict[str, torch.Tensor], beta: torch.Tensor) -> None:
    """A checkpoint of an earlier fpnas as this one's (in place): the one target's state under ``members.0.``
    (written before families of targets), β as a vector (before several constraints) and at all (before β
    was adaptive: the configured ``beta``)."""
    for key in MEMBER_STATE:
        if key in state:
            state[f"members.0.{key}"] = state.pop(key)
    if "members.0.beta" not in state:
        state["members.0.beta"] = beta.detach().clone()
    elif state["members.0.beta"].dim() == 0:
        state["members.0.beta"] = state["members.0.beta"].reshape(1)


class Member(torch.nn.Module):
    """One budget of a search: its single-target constraints with their cost tables, its architecture
    distribution, β, and what the search reports of it. A search has one member (the paper), or one per target
    of a family (``cost.target_mflops=[0.3,0.45,0.6]``), all sharing the super-net's weights; every member has
    its own cost penalty, adaptive K (from its own entropy) and FD -> JD switch."""

    def __init__(self, constraints: list[Constraint], cost_tables: list[AdditiveTable], distribution, num_classes):
        super().__init__()
        self.constraints, self.cost_tables = constraints, cost_tables
        self.distribution = distribution
        self.register_buffer("entropy_initial", torch.tensor(float("nan")))
        self.register_buffer("k_initial", torch.zeros((), dtype=torch.long))
        # β of the cost term: fixed (beta_lr = 0, the paper) or adapted by dual ascent; a buffer, so
        # that a resumed search continues with the β it had
        self.register_buffer("beta", torch.tensor([c.beta for c in constraints], dtype=torch.float64))
        # search.restore_feasibility: the epoch the flag was set for (-1: none yet), whether that epoch restores,
        # and the α steps that did; buffers, so that a resumed search goes on as it would have
        self.register_buffer("restore_epoch", torch.tensor(-1, dtype=torch.long))
        self.register_buffer("restoring", torch.zeros((), dtype=torch.long))
        self.register_buffer("restored_steps", torch.zeros((), dtype=torch.long))
        self.val_acc = MulticlassAccuracy(num_classes=num_classes, average="micro")
        self.clear_caches()
        self.last_step: StepStats | None = None  # of this member's last step
        self.candidate_scores: list[dict] | None = None  # select_by_score's table of the final candidates
        self.scored_val_acc: float | None = None  # the α-split accuracy of the scored pick

    def clear_caches(self) -> None:
        """Forget what was read from the buffers or derived from α (after a load)."""
        self.export_cache: tuple | None = None  # (α key, value), see SearchModule.exported_architecture
        self.scored_pick: tuple | None = None  # (α key, (indices, selection)) of select_by_score
        self.expected_cache: tuple | None = None
        self.host_beta: list[float] | None = None  # host mirror of beta
        self.host_feasibility: list[int] | None = None  # host mirror of FEASIBILITY_STATE
        self.host_dist: tuple | None = None  # (distribution, α key, CPU copy), see host_distribution


class SearchModule(pl.LightningModule):
    """FP-NAS search over one :class:`SearchSpace`, for one budget or a family of budgets (:class:`Member`).

    The members share the super-net; each step trains it with the architectures one member samples, in
    turn, and updates that member's distribution. The methods that report on the search (the exported
    architecture, the distribution, E[FLOPs], β, the constraints...) answer for the member in view: the
    one that made the last step, or the one a caller selects with :meth:`viewing`.
    """

    def __init__(
        self,
        space: SearchSpace,
        sampler,
        *,
        constraints: Sequence | Mapping,
        schedule: Schedule | Mapping,
        final_pick: FinalPick | Mapping,
        omega_optimizer: OptimizerFactory,
        alpha_optimizer: OptimizerFactory,
        seed: int,
        warmup_epochs: int,
        weight_importance: bool,
        importance_temperature: float,
        eval_batch_stats: bool,
        sync_bn: bool,
        sandwich: bool,
        distill: bool,
        restore_feasibility: bool,
        tables: ComplexityTables | None = None,
    ):
        """The keyword arguments ``warmup_epochs`` to ``restore_feasibility`` are the ``search`` group of
        ``conf/search.yaml`` (``search._target_`` names this class: a subclass goes there); the others come from the
        other groups:
        ``constraints`` the budgets (``cost.constraints``: :class:`~fpnas.cost.constraint.Constraint` objects or
        their ``to_dict`` data, as a list or mapping), ``schedule`` (``distribution``), ``final_pick``
        (``export``), ``omega_optimizer`` / ``alpha_optimizer`` (the ``_partial_`` nodes ``optim.omega`` /
        ``optim.alpha``: an optimizer from parameters) and ``seed``. Every argument is checked, with the config
        key it comes from, before any data is loaded; none has a default here, so the shipped config is the
        one home of every default. ``tables``: the space's cost tables, if the caller has them already."""
        super().__init__()
        constraints = check_constraints(constraints)
        self.schedule = schedule if isinstance(schedule, Schedule) else Schedule(**schedule)
        self.final_pick = final_pick if isinstance(final_pick, FinalPick) else FinalPick(**final_pick)
        check_search_arguments(
            warmup_epochs=warmup_epochs,
            weight_importance=weight_importance,
            eval_batch_stats=eval_batch_stats,
            sync_bn=sync_bn,
            sandwich=sandwich,
            distill=distill,
            restore_feasibility=restore_feasibility,
            importance_temperature=importance_temperature,
            seed=seed,
        )
        self.omega_optimizer = check_optimizer("optim.omega", omega_optimizer)
        self.alpha_optimizer = check_optimizer("optim.alpha", alpha_optimizer)
        self.tables = tables if tables is not None else ComplexityTables(space)
        # the sandwich rule's paths (BigNAS): the space's largest and smallest architectures by MACs
        self.sandwich_rows = [self.tables.extreme_architecture(kind)[1] for kind in ("max", "min")]
        per_member = split_targets(constraints)
        # the constraints as plain data (load_from_checkpoint passes them back)
        self.save_hyperparameters(
            ignore=["space", "sampler", "omega_optimizer", "alpha_optimizer", "tables", "constraints", "schedule"]
            + ["final_pick"]
        )
        self.save_hyperparameters(
            dict(
                self.hparams,
                constraints=[c.to_dict() for c in constraints],
                schedule=asdict(self.schedule),
                final_pick=asdict(self.final_pick),
            )
        )
        # the optimizers as text, for hparams.yaml; under other names than the arguments, which
        # load_from_checkpoint passes back (it drops names __init__ does not take)
        self.save_hyperparameters(
            dict(
                self.hparams,
                optim_omega=describe_optimizer(self.omega_optimizer),
                optim_alpha=describe_optimizer(self.alpha_optimizer),
            )
        )
        self.space = space
        self.sampler = sampler
        self.supernet = SuperNet(space, eval_batch_stats=eval_batch_stats)
        kind = self.schedule.first_phase
        self.members = torch.nn.ModuleList(
            Member(
                member_constraints,
                [c.table_for(space, self.tables) for c in member_constraints],
                ArchDistribution(space.sizes, space.units(kind), kind),
                space.num_classes,
            )
            for member_constraints in per_member
        )
        self.viewed = 0  # the member the reporting methods answer for (see viewing)
        # counters live in buffers so that checkpoints restore them exactly
        self.register_buffer("steps_done", torch.zeros((), dtype=torch.long))
        self.register_buffer("samples_total", torch.zeros((), dtype=torch.long))
        self._host_counters: dict | None = None  # host mirrors of the buffers above, see _counters
        self.scored_images = 0  # α-split images the last scoring counted (all processes)
        self.automatic_optimization = False

    # ------------------------------------------------------------------ members
    @property
    def member(self) -> Member:
        """The member in view (see :meth:`viewing`)."""
        return self.members[self.viewed]

    @contextmanager
    def viewing(self, index: int) -> Iterator[Member]:
        """Let the reporting methods answer for member ``index`` inside the ``with`` block."""
        before, self.viewed = self.viewed, index
        try:
            yield self.members[index]
        finally:
            self.viewed = before

    @property
    def distribution(self) -> ArchDistribution:
        """The architecture distribution of the member in view (replace it through the member:
        ``torch.nn.Module`` would register an assigned module here instead of calling a setter)."""
        return self.member.distribution

    @property
    def constraints(self) -> list[Constraint]:
        """The member in view's constraints, one target each."""
        return self.member.constraints

    @property
    def cost_tables(self) -> list[AdditiveTable]:
        return self.member.cost_tables

    @property
    def beta(self) -> torch.Tensor:
        return self.member.beta

    @property
    def entropy_initial(self) -> torch.Tensor:
        return self.member.entropy_initial

    @property
    def k_initial(self) -> torch.Tensor:
        return self.member.k_initial

    @property
    def last_step(self) -> StepStats | None:
        """What the member in view did at its last step; read by the logging callbacks."""
        return self.member.last_step

    @property
    def candidate_scores(self) -> list[dict] | None:
        return self.member.candidate_scores

    @property
    def scored_val_acc(self) -> float | None:
        return self.member.scored_val_acc

    def member_to_step(self, step: int) -> int:
        """The member whose architectures train the super-net at ``step`` (they take turns)."""
        return step % len(self.members)

    # ------------------------------------------------------------------ optimizers
    def configure_optimizers(self):
        """ω's optimizer with its cosine schedule, then one α optimizer per member."""
        omega = self.omega_optimizer(self.supernet.parameters())
        epochs = max(1, self.trainer.max_epochs or 1) if self._trainer is not None else 1
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(omega, T_max=epochs)
        alphas = [self.alpha_optimizer([m.distribution.alpha]) for m in self.members]
        return [omega, *alphas], [schedule]

    # ------------------------------------------------------------------ host-side state
    # The step is driven from the host: K and the sampled paths must be Python values before the
    # first forward. So what the host needs is read from the device once, not per query: the
    # counters and β are mirrored on the host, and α is copied to the CPU once per update (a few
    # thousand floats). On a GPU, a statistic or a sample then never waits for the device.
    def _counters(self) -> dict:
        """Host mirrors of ``steps_done`` and ``samples_total`` (read once after a load)."""
        if self._host_counters is None:
            steps, samples = torch.stack([self.steps_done, self.samples_total]).tolist()
            self._host_counters = {"steps": int(steps), "samples": int(samples)}
        return self._host_counters

    def _beta_host(self, member: Member | None = None) -> list[float]:
        """Host mirror of a member's ``beta`` (the member in view by default; read once after a load)."""
        member = self.member if member is None else member
        if member.host_beta is None:
            member.host_beta = member.beta.tolist()
        return member.host_beta

    @property
    def steps_completed(self) -> int:
        """Search steps done (``steps_done`` without a device read)."""
        return self._counters()["steps"]

    @property
    def samples_completed(self) -> int:
        """Architectures sampled so far (``samples_total`` without a device read)."""
        return self._counters()["samples"]

    @property
    def beta_value(self) -> float:
        """β of the first constraint now (``beta`` without a device read)."""
        return self._beta_host()[0]

    @property
    def beta_values(self) -> dict[str, float]:
        """β of every constraint now, by metric name."""
        return dict(zip((c.name for c in self.constraints), self._beta_host()))

    def _alpha_key(self) -> tuple:
        """Identifies the current α: the distribution object, α's storage and its in-place version
        counter (every optimizer step, load or broadcast bumps it), all host-side metadata."""
        alpha = self.distribution.alpha
        return id(self.distribution), alpha.data_ptr(), alpha._version

    def host_distribution(self) -> ArchDistribution:
        """The distribution at the current α on the CPU (the distribution itself on a CPU run;
        else a copy refreshed when α changes). Sampling, entropy, the argmax, E[FLOPs] and top-k
        use it: the sampler's generator is a CPU one (the same samples on every device and
        rank), and the architectures are needed as Python ints anyway."""
        dist, key = self.distribution, self._alpha_key()
        if dist.alpha.device.type == "cpu":
            return dist
        cached = self.member.host_dist
        if cached is not None and cached[0] is dist and cached[1] == key:
            return cached[2]
        host = (
            cached[2]
            if cached is not None and cached[0] is dist
            else ArchDistribution(dist.sizes, dist.units, dist.kind)
        )
        host.alpha.copy_(dist.alpha.detach())
        self.member.host_dist = (dist, key, host)
        return host

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        self._host_counters = None  # the buffers changed under the mirrors
        for member in self.members:
            member.clear_caches()
        return super().load_state_dict(state_dict, strict=strict, assign=assign)

    # ------------------------------------------------------------------ phase
    @property
    def phase(self) -> str:
        """``factorized`` or ``joint``: the members switch at the same epoch (``distribution.switch_epoch``)."""
        return self.members[0].distribution.kind

    def switch_to_joint(self) -> None:
        """FD -> JD for every member, exactly (same distribution and entropy); its α optimizer starts afresh."""
        units = self.space.units("joint")
        for i, member in enumerate(self.members):
            member.distribution = member.distribution.to_joint(units)
            if self._trainer is not None:
                opt_alpha = self.optimizers()[1 + i].optimizer
                opt_alpha.param_groups[0]["params"] = [member.distribution.alpha]
                opt_alpha.state.clear()
            dist = member.distribution
            rank_zero_info(
                f"[fpnas] epoch {self.current_epoch}: factorized -> joint distribution"
                + (f" ({self.describe_member(i)})" if len(self.members) > 1 else "")
                + f" ({int(dist.mask.sum())} logits, entropy {float(dist.entropy()):.3f} nats)"
            )

    def describe_member(self, index: int) -> str:
        """``target 1: 0.45 MFLOPs``: a member of a family, in messages."""
        targets = ", ".join(f"{c.target:g} {c.metric.unit}" for c in self.members[index].constraints)
        return f"target {index}: {targets}"

    def on_train_epoch_start(self) -> None:
        # cosine schedule of omega, per epoch; stepped here, to the epoch about to run, so that a
        # checkpoint written before or after an epoch's end resumes with the same learning rate
        scheduler = self.lr_schedulers()
        with warnings.catch_warnings():
            # after a resume, this catch-up runs before the epoch's first optimizer step on purpose; torch's
            # order warning is about a loop that would skip the schedule's first value, which this one does not
            warnings.filterwarnings("ignore", message=r"Detected call of `lr_scheduler\.step\(\)` before")
            while scheduler.last_epoch < self.current_epoch:
                scheduler.step()
        if self.schedule.switches_at(self.current_epoch, self.phase):
            self.switch_to_joint()

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # once per checkpoint (cheap): never overwrite the last good checkpoint with diverged weights;
        # the same on every rank (weights and α are identical there)
        alphas = [m.distribution.alpha.detach()[m.distribution.mask] for m in self.members]
        tensors = [*alphas, *(p.detach() for p in self.supernet.parameters())]
        if not bool(torch.stack([t.isfinite().all() for t in tensors]).all()):
            raise NonFiniteLossError(
                f"the search diverged by step {int(self.steps_done)} (epoch "
                f"{self.current_epoch}): a weight or architecture logit is NaN or infinite "
                "(not written to a checkpoint)"
            )
        checkpoint["fpnas"] = {"phase": self.phase, "space": self.space.spec}

    def _check_finite(self, what: str, value: float) -> None:
        """Stop the search at the first NaN / inf: a diverged search only gets worse."""
        if not math.isfinite(value):
            raise NonFiniteLossError(
                f"the search diverged at step {int(self.steps_done) + 1} (epoch "
                f"{self.current_epoch}): {what} is {value}"
            )

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        for member in self.members:
            member.clear_caches()
        state = checkpoint.get("state_dict", {})
        upgrade_state_dict(state, self.members[0].beta)
        for i in range(len(self.members)):  # written before search.restore_feasibility: nothing set yet
            for name, value in zip(FEASIBILITY_STATE, (-1, 0, 0)):
                state.setdefault(f"members.{i}.{name}", torch.tensor(value, dtype=torch.long))
        phase = checkpoint.get("fpnas", {}).get("phase")
        if phase is None:
            raise ConfigError("checkpoint was not written by an fpnas search (no 'fpnas' entry)")
        if phase == "joint" and self.phase == "factorized":
            units = self.space.units("joint")
            for member in self.members:
                member.distribution = member.distribution.to_joint(units)

    # ------------------------------------------------------------------ sampling
    def step_generator(self) -> torch.Generator:
        """Sampler RNG derived from (seed, step): the same on every rank and after a resume."""
        seed = (int(self.hparams.seed) * 1_000_003 + self.steps_completed) % (2**63)
        return torch.Generator().manual_seed(seed)

    def sample_architectures(self, k: int, generator: torch.Generator, uniform: bool) -> torch.Tensor:
        """[k, D] choice indices, on the CPU on purpose: the super-net picks its path from Python
        ints, the cost tables are CPU lookups, and the CPU generator gives the same samples on
        every device (moved to α's device only for the α gradient)."""
        if uniform:
            cols = [torch.randint(s, (k,), generator=generator) for s in self.space.sizes]
            return torch.stack(cols, 1) if cols else torch.zeros((k, 0), dtype=torch.long)
        return self.host_distribution().sample(k, generator)

    # ------------------------------------------------------------------ the step
    def on_fit_start(self) -> None:
        # sync_bn: batch statistics over all processes, so that W processes with batches of B / W
        # compute what one process computes with batches of B (one process then uses the same
        # float64 formula). Off by default: like any DDP training, each process normalises with
        # its own batch; the many small all-reduces cost 2.4x per step on 2 CPU processes.
        self.supernet.sync_bn = bool(self.hparams.sync_bn)

    def _omega_backward(
        self, x: torch.Tensor, y: torch.Tensor, rows: list[list[int]]
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Accumulate sum_k w_k grad(CE_k) with w = softmax(l / T) in one pass (online softmax).

        l_k is the log-likelihood of the whole (global) batch: each process all-reduces its
        part, a scalar, before weighting; the gradients are averaged once, after all K samples.
        The running maximum, the rescaling and the weights stay on the device (no host read per
        sample). Returns the mean CE over the samples and the l_k ([K] float64, or None without
        importance weighting), unread: the step checks them once (:meth:`_check_step`).
        """
        importance, temp = self.hparams.weight_importance, self.hparams.importance_temperature
        params = list(self.supernet.parameters())
        stashed, teacher = self._sandwich_backward(x, y, params) if self.hparams.sandwich else (None, None)
        losses, log_liks = [], []
        run_max = denom = None
        for row in rows:
            logits = self.supernet(x, row)
            per_image = F.cross_entropy(logits, y, reduction="none")
            # the ω loss: the labels, or the largest architecture's predictions (in-place distillation);
            # the importance weights are the likelihood of the labels either way
            ce = per_image.mean() if teacher is None else soft_cross_entropy(logits, teacher)
            losses.append(per_image.detach().mean())
            if not importance:
                self.manual_backward(ce / len(rows))
                continue
            # float64 sum: the weights exp(l_k - max) magnify absolute errors of l_k
            log_lik = all_reduce_sum(-per_image.detach().sum(dtype=torch.float64))
            log_liks.append(log_lik)
            score = log_lik / temp  # summed log-likelihood of the global batch / T
            if run_max is None:
                run_max, denom = score, torch.ones_like(score)
                self.manual_backward(ce)
                continue
            new_max = torch.maximum(run_max, score)
            scale = torch.exp(run_max - new_max)  # 1 unless this sample is the most likely so far
            grads = [p.grad for p in params if p.grad is not None]
            torch._foreach_mul_(grads, scale.to(grads[0].dtype))
            weight = torch.exp(score - new_max)
            denom, run_max = denom * scale + weight, new_max
            self.manual_backward(ce * weight.to(ce.dtype))
        if importance:
            grads = [p.grad for p in params if p.grad is not None]
            torch._foreach_div_(grads, denom.to(grads[0].dtype))
        if stashed is not None:
            for p, g in zip(params, stashed):
                if g is not None:
                    p.grad = g if p.grad is None else p.grad.add_(g)
        average_gradients(params)
        return torch.stack(losses).mean(), (torch.stack(log_liks) if log_liks else None)

    def _sandwich_backward(self, x: torch.Tensor, y: torch.Tensor, params) -> tuple[list, torch.Tensor | None]:
        """The sandwich rule (BigNAS): the largest architecture learns from the labels, the smallest from
        the labels or, with ``distill``, from the largest's predictions. Their gradients are taken aside
        (returned per parameter) so that the importance weighting of the sampled paths leaves them as
        they are; also returns the largest's class probabilities, the sampled paths' soft targets under
        ``distill`` (else None)."""
        largest, smallest = self.sandwich_rows
        logits = self.supernet(x, largest)
        self.manual_backward(F.cross_entropy(logits, y))
        teacher = logits.detach().softmax(-1) if self.hparams.distill else None
        small = self.supernet(x, smallest)
        self.manual_backward(F.cross_entropy(small, y) if teacher is None else soft_cross_entropy(small, teacher))
        stashed = [p.grad for p in params]
        for p in params:
            p.grad = None
        return stashed, teacher

    def _check_step(self, train_ll: torch.Tensor | None, val_ll: torch.Tensor | None) -> None:
        """The step's one read of the device: the finite checks of the likelihoods (all-reduced, so
        every rank stops at the same step)."""
        parts = [t.reshape(-1) for t in (train_ll, val_ll) if t is not None]
        if not parts:
            return
        values = torch.cat(parts).tolist()
        temp, n_train = self.hparams.importance_temperature, 0 if train_ll is None else train_ll.numel()
        for value in values[:n_train]:
            self._check_finite("the training log-likelihood (ω update)", value)
            self._check_finite("the training log-likelihood / search.importance_temperature", value / temp)
        if val_ll is not None:
            val = values[n_train:]
            self._check_finite("the validation log-likelihood (α update)", math.fsum(val))
            self._check_finite("the validation log-likelihood / search.importance_temperature", max(val) / temp)

    def _scaled_for_amp(self, grad: torch.Tensor) -> torch.Tensor:
        """α's gradient times the fp16 loss scale, when there is one (``16-mixed``): the α step goes
        through Lightning's precision plugin like every optimizer step, and its GradScaler divides
        every gradient by the scale before stepping, but α's closed-form gradient was never scaled.
        The scale is a power of two: scaling and unscaling are exact."""
        scaler = getattr(self.trainer.precision_plugin, "scaler", None) if self._trainer is not None else None
        if scaler is None or not scaler.is_enabled():
            return grad
        scale = scaler._get_scale_async() if hasattr(scaler, "_get_scale_async") else scaler.get_scale()
        return grad * torch.as_tensor(scale, device=grad.device).to(grad.dtype)

    def training_step(self, batch, batch_idx):
        opt_omega, *opt_alphas = self.optimizers()
        (xt, yt), (xv, yv) = batch["train"], batch["val"]
        warm = self.current_epoch < self.hparams.warmup_epochs
        counters = self._counters()
        self.viewed = self.member_to_step(counters["steps"])  # this step's member; in view until the next
        member, opt_alpha = self.member, opt_alphas[self.viewed]
        entropy = float(self.host_distribution().entropy())
        k = self.sampler(entropy)
        archs = self.sample_architectures(k, self.step_generator(), uniform=warm)
        rows = archs.tolist()
        if counters["steps"] < len(self.members):  # the member's first step
            member.entropy_initial.fill_(entropy)
            member.k_initial.fill_(k)

        opt_omega.zero_grad(set_to_none=True)
        train_loss, train_ll = self._omega_backward(xt, yt, rows)
        opt_omega.step()

        # CPU indices, CPU tables
        values = {c.name: t.lookup(archs) for c, t in zip(self.constraints, self.cost_tables)}
        costs = [c.hinge(values[c.name]) for c in self.constraints]
        macs = values["flops"] if "flops" in values else self.tables.macs.lookup(archs)
        val_ll = None
        if not warm:
            with torch.no_grad():
                val_ll = all_reduce_sum(
                    torch.stack(
                        [  # v_k of the global batch
                            -F.cross_entropy(self.supernet(xv, row), yv, reduction="none").sum(dtype=torch.float64)
                            for row in rows
                        ]
                    )
                )
        self._check_step(train_ll, val_ll)
        beta = self._beta_host(member)
        if not warm:
            restore = self._feasibility_step(member, costs)
            m = penalised_importance(val_ll, costs, beta, self.hparams.importance_temperature, restore)
            alpha = member.distribution.alpha
            # non_blocking: a blocking host-to-device copy would wait for the device's queue
            archs_on_device = archs.to(alpha.device, non_blocking=True)
            alpha.grad = self._scaled_for_amp(member.distribution.grad_weighted_nll(archs_on_device, m))
            opt_alpha.step()
            opt_alpha.zero_grad(set_to_none=True)

        self.steps_done += 1
        self.samples_total += k
        counters["steps"] += 1
        counters["samples"] += k
        for i, c in enumerate(self.constraints):
            if not warm and c.beta_lr > 0:  # after the α step: E[metric] of the new distribution
                updated = dual_ascent_beta(
                    torch.tensor(beta[i], dtype=torch.float64), self.expected(c.name), c.limit, c.beta_lr
                )
                beta[i] = float(updated)
                member.beta[i].fill_(beta[i])
        member.last_step = StepStats(k, entropy, macs, costs[0] if len(costs) == 1 else sum(costs), values)
        # the device tensor: Lightning would copy a float to the device (a blocking copy)
        self.log("train/loss", train_loss, prog_bar=True, on_step=True, on_epoch=True, batch_size=yt.numel())

    @staticmethod
    def _feasibility_host(member: Member) -> list[int]:
        """Host mirror of a member's FEASIBILITY_STATE buffers (read once after a load)."""
        if member.host_feasibility is None:
            member.host_feasibility = torch.stack([getattr(member, n) for n in FEASIBILITY_STATE]).tolist()
        return member.host_feasibility

    def _feasibility_step(self, member: Member, costs: list[torch.Tensor]) -> bool:
        """Whether this α step restores feasibility (``search.restore_feasibility``): the search lost the target
        (an epoch began with none of the ``export.max_candidates`` most probable architectures within every
        target: the final pick would find none) and has not found it again (no epoch since began with the most
        probable architecture within every target), and every sample of the step is over a target. Decided
        at each epoch's first α step; counts the steps that restored (host mirror and buffers)."""
        if not self.hparams.restore_feasibility:  # off (the default): nothing to decide or count
            return False
        epoch, restoring, restored = self._feasibility_host(member)
        if epoch != self.current_epoch:
            epoch = self.current_epoch
            if restoring:  # until the most probable architecture is within every target
                restoring = int(not self.within_limits(self.argmax_architecture()))
            else:
                restoring = int(not self.final_pick.reaches_target(self))
        all_over = bool((sum(costs) > 0).all()) if costs else False  # CPU tables: no device read
        restore = bool(restoring) and all_over
        state = [epoch, restoring, restored + int(restore)]
        if state != member.host_feasibility:
            for name, value in zip(FEASIBILITY_STATE, state):
                getattr(member, name).fill_(value)
            member.host_feasibility = state
        return restore

    @property
    def restored_steps(self) -> int:
        """α steps of the member in view that restored feasibility (``search.restore_feasibility``)."""
        return self._feasibility_host(self.member)[2]

    # ------------------------------------------------------------------ the result
    def argmax_architecture(self) -> torch.Tensor:
        """The most likely architecture ([D] choice indices, CPU): the argmax of every unit."""
        return self.host_distribution().mode()

    def exported_architecture(self) -> torch.Tensor:
        """The architecture the search returns ([D] choice indices, CPU), as ``final_pick`` (the ``export``
        group, :class:`~fpnas.search.selection.FinalPick`) chooses it: the most probable within every target
        (exact), the argmax of every unit, or the scored pick of :meth:`select_by_score` once it ran. The same
        on every rank (α is identical there); cached per α."""
        return self._export()[0].clone()

    def selection(self) -> str:
        """How :meth:`exported_architecture` was chosen, for arch.yaml and the summary."""
        return self._export()[1]

    def pick_was_scored(self) -> bool:
        """Whether :meth:`exported_architecture` is :meth:`select_by_score`'s pick for the current α (then
        ``scored_val_acc`` is its accuracy on the whole α split)."""
        pick = self.member.scored_pick
        return pick is not None and pick[0] == self._alpha_key()

    def _export(self) -> tuple[torch.Tensor, str]:
        key, member = self._alpha_key(), self.member
        if member.scored_pick is not None and member.scored_pick[0] == key:
            return member.scored_pick[1]
        if member.export_cache is None or member.export_cache[0] != key:
            member.export_cache = (key, self.final_pick.most_probable(self))
        return member.export_cache[1]

    def limits(self) -> list[tuple[AdditiveTable, float]]:
        """(table, limit) of every constraint: what an exported architecture must respect."""
        return [(t, c.limit) for c, t in zip(self.constraints, self.cost_tables)]

    def target(self, metric: str) -> float | None:
        """The target of the ``metric`` constraint in its unit (e.g. MFLOPs), or None when it is not constrained."""
        return next((c.target for c in self.constraints if c.name == metric), None)

    def within_limits(self, choice_idx: torch.Tensor) -> bool:
        return all(float(t.lookup(choice_idx)[0]) <= limit for t, limit in self.limits())

    def on_train_end(self) -> None:
        if self.final_pick.scored:
            loaders = self.trainer.val_dataloaders
            if loaders is not None:
                train = None
                datamodule = getattr(self.trainer, "datamodule", None)
                if self.final_pick.finetune_steps > 0 and datamodule is not None:
                    train = datamodule.train_dataloader()["train"]
                for i in range(len(self.members)):
                    with self.viewing(i):
                        self.select_by_score(loaders[0] if isinstance(loaders, (list, tuple)) else loaders, train)

    @torch.no_grad()
    def score_architectures(self, rows: Sequence[Sequence[int]], loader) -> list[tuple[float, float]]:
        """``(accuracy, mean log-likelihood)`` of each architecture on every batch of ``loader`` (the α
        split), scored as validation scores the exported one (eval mode; batch statistics with
        ``eval_batch_stats``). Summed over all processes, so every rank gets the same numbers."""
        was_training = self.supernet.training
        self.supernet.eval()
        sums = torch.zeros(len(rows), 3, dtype=torch.float64, device=self.device)  # correct, log-lik, count
        for x, y in loader:
            x, y = x.to(self.device), y.to(self.device)
            for i, row in enumerate(rows):
                logits = self.supernet(x, row)
                sums[i, 0] += (logits.argmax(-1) == y).sum()
                sums[i, 1] -= F.cross_entropy(logits, y, reduction="sum").double()
                sums[i, 2] += y.numel()
        self.supernet.train(was_training)
        sums = all_reduce_sum(sums).cpu()
        self.scored_images = int(sums[0, 2]) if len(rows) else 0
        return [(float(c / n), float(ll / n)) for c, ll, n in sums.tolist()]

    def select_by_score(self, loader, train_loader=None) -> torch.Tensor:
        """The final pick by score (``final_pick.score_candidates``, :class:`~fpnas.search.selection.FinalPick`):
        what :meth:`exported_architecture` returns until α changes. Run on every rank (it all-reduces)."""
        scored = self.final_pick.score_candidates(self, loader, train_loader)
        if scored is None:  # fewer than two candidates within the target: the most probable one
            return self.exported_architecture()
        member = self.member
        member.candidate_scores = scored["table"]
        member.scored_val_acc = scored["acc"]
        member.scored_pick = (self._alpha_key(), (scored["pick"], scored["selection"]))
        return scored["pick"].clone()

    def validation_step(self, batch, batch_idx):
        x, y = batch
        for i, member in enumerate(self.members):  # val/acc: the exported architecture of each member
            with self.viewing(i):
                logits = self.supernet(x, self.exported_architecture().tolist())
            member.val_acc(logits, y)
            self.log(self.val_acc_key(i), member.val_acc, prog_bar=True, on_step=False, on_epoch=True)

    def val_acc_key(self, index: int | None = None) -> str:
        """The logged name of a member's validation accuracy (the member in view by default): ``val/acc`` for
        a single target, ``val/acc/target_<i>`` in a family."""
        index = self.viewed if index is None else index
        return "val/acc" if len(self.members) == 1 else f"val/acc/target_{index}"

    # ------------------------------------------------------------------ reporting helpers
    def architecture_cost(self, choice_idx: torch.Tensor) -> tuple[float, float]:
        """(MACs, params) of an architecture from the analytic tables."""
        macs, params = self.tables.lookup(choice_idx)
        return float(macs[0]), float(params[0])

    def expected_macs(self) -> float:
        """E[MACs] under the current distribution (exact; computed once per α, on the CPU)."""
        return self.expected("flops")

    def expected(self, metric: str) -> float:
        """E[metric] (counted unit) under the current distribution: ``flops``, ``params`` or a
        constrained metric (exact; computed once per α, on the CPU)."""
        key = self._alpha_key()
        member = self.member
        if member.expected_cache is None or member.expected_cache[0] != key:
            member.expected_cache = (key, {})
        cache = member.expected_cache[1]
        if metric not in cache:
            tables = {"flops": self.tables.macs, "params": self.tables.params}
            tables |= {c.name: t for c, t in zip(self.constraints, self.cost_tables)}
            if "marginals" not in cache:
                cache["marginals"] = self.host_distribution().marginals()
            cache[metric] = float(tables[metric].expected(cache["marginals"]))
        return cache[metric]
