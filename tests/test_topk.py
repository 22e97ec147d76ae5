"""Top-k export: exact probability order (checked against brute force), the target, the files."""

import itertools
import math

import pytest
import torch
import yaml

from fpnas.cost.constraint import Constraint
from fpnas.cost.metrics import Flops
from fpnas.errors import ConfigError
from fpnas.search.distribution import ArchDistribution
from fpnas.search.topk import (
    network_key,
    ranked_architectures,
    top_architectures,
    write_top_architectures,
)
from fpnas.space.arch import load_architecture
from fpnas.space.complexity import ComplexityTables, architecture_complexity
from fpnas.space.spec import SearchSpace


def _hand_set(space: SearchSpace, kind: str, seed: int = 0) -> ArchDistribution:
    """A peaked, tie-free distribution: random logits, scale 2 (factorized, or its exact joint)."""
    fd = ArchDistribution(space.sizes, space.units("factorized"), "factorized")
    fd.alpha.copy_(2 * torch.randn(fd.alpha.shape, generator=torch.Generator().manual_seed(seed)))
    return fd if kind == "factorized" else fd.to_joint(space.units("joint"))


def _brute_force(space: SearchSpace, dist: ArchDistribution):
    """Every architecture, its float64 log-probability and MACs, most probable first."""
    every = torch.cartesian_prod(*[torch.arange(n) for n in space.sizes]).reshape(-1, len(space.sizes))
    logp = torch.log_softmax(dist.masked_logits().double(), dim=1)
    lp = logp.gather(1, dist.encode(every).T).sum(0)
    order = torch.argsort(lp, descending=True, stable=True)
    macs, _ = ComplexityTables(space).lookup(every)
    return every[order], lp[order], macs[order]


@pytest.fixture(scope="module")
def micro():
    return SearchSpace.load("micro")


@pytest.mark.parametrize("kind", ["factorized", "joint"])
def test_enumeration_order_and_log_probs_equal_brute_force(micro, kind):
    dist = _hand_set(micro, kind)
    every, lp, _ = _brute_force(micro, dist)
    assert len(every) == math.prod(micro.sizes) == 294912
    n = 3000
    got = list(itertools.islice(ranked_architectures(dist), n))
    got_lp = torch.tensor([g[0] for g in got], dtype=torch.float64)
    got_idx = torch.stack([g[1] for g in got])
    assert torch.allclose(got_lp, lp[:n], rtol=0, atol=1e-9)
    assert torch.equal(got_idx, every[:n])  # the same architectures in the same order
    assert bool((got_lp[1:] <= got_lp[:-1]).all())
    # the reported log-probability is the distribution's own
    assert torch.allclose(dist.log_prob(got_idx).double(), got_lp, atol=1e-5)


ENOUGH = 10**7  # candidates: more than these tests need


def _flops(space, mflops: float) -> list:
    """One FLOPs constraint of ``mflops`` with its table: what a search passes as its constraints."""
    constraint = Constraint(Flops(), mflops, 0.75, 0.0, "cost")
    return [(constraint, constraint.table_for(space))]


@pytest.mark.parametrize("kind, target_mflops", [("factorized", 0.05), ("joint", 0.03), ("joint", 0.2)])
def test_top_k_under_the_target_equals_brute_force(micro, kind, target_mflops):
    dist = _hand_set(micro, kind, seed=1)
    every, lp, macs = _brute_force(micro, dist)
    k, target = 12, target_mflops * 1e6
    expected, seen = [], set()
    prefix = 20000  # enough for k entries here (asserted below)
    for idx, logp, m in zip(every[:prefix].tolist(), lp[:prefix].tolist(), macs[:prefix].tolist()):
        if m > target:
            continue
        key = network_key(micro, idx)  # the same network (a skipped block's choices differ): listed once
        if key in seen:
            continue
        seen.add(key)
        expected.append((idx, logp))
        if len(expected) == k:
            break
    assert len(expected) == k
    res = top_architectures(dist, micro, k, ENOUGH, [(ComplexityTables(micro).macs, target)])
    assert [e["indices"] for e in res.entries] == [i for i, _ in expected]
    assert [e["log_prob"] for e in res.entries] == pytest.approx([logp for _, logp in expected], abs=1e-9)
    assert [e["rank"] for e in res.entries] == list(range(1, k + 1))
    for e in res.entries:
        macs_e, params_e = architecture_complexity(micro, e["indices"])  # formulas, not the tables
        assert macs_e <= target and e["macs"] == macs_e
        assert e["params"] == params_e and e["prob"] == pytest.approx(math.exp(e["log_prob"]))
    assert len({tuple(network_key(micro, e["indices"])) for e in res.entries}) == k
    assert not res.cap_hit and res.enumerated == res.over_target + res.duplicates + k
    if target_mflops == 0.2:  # the whole space is under 0.206 MFLOPs, nearly all under 0.2
        assert res.over_target < res.enumerated


def _small_space() -> SearchSpace:
    return SearchSpace(
        {
            "name": "small",
            "input_size": 8,
            "in_chans": 1,
            "num_classes": 3,
            "act": "relu",
            "stem": {"channels": 8, "kernel": 3, "stride": 1},
            "groups": [
                {"channels": [8, 16], "repeat": 2, "stride": 2, "expansion": [1, 3], "kernel": [0, 3, 5], "act": "relu"}
            ],
            "head": {"channels": 16},
        }
    )


@pytest.mark.parametrize("kind", ["factorized", "joint"])
def test_enumeration_visits_every_architecture_exactly_once(kind):
    space = _small_space()
    dist = _hand_set(space, kind, seed=2)
    total = math.prod(space.sizes)
    got = list(ranked_architectures(dist))
    assert len(got) == total >= 48
    assert len({tuple(i.tolist()) for _, i in got}) == total
    assert math.fsum(math.exp(logp) for logp, _ in got) == pytest.approx(1.0, abs=1e-12)
    every, lp, _ = _brute_force(space, dist)
    assert [logp for logp, _ in got] == pytest.approx(lp.tolist(), abs=1e-12)
    # no target, k larger than the space: every distinct network, then "exhausted"
    res = top_architectures(dist, space, 1000, ENOUGH)
    networks = {network_key(space, i.tolist()) for _, i in got}
    assert len(res.entries) == len(networks) < total and res.exhausted and not res.cap_hit


def test_the_file_lists_entries_that_train_py_accepts(micro, tmp_path):
    dist = _hand_set(micro, "joint", seed=3)
    path = write_top_architectures(tmp_path, dist, micro, 4, ENOUGH, _flops(micro, 0.05), phase="joint")
    doc = yaml.safe_load(path.read_text())
    assert doc["found"] == 4 and doc["requested"] == 4 and doc["cap_hit"] is False and doc["space"] == "micro"
    assert doc["target_mflops"] == 0.05 and doc["phase"] == "joint"
    lps = [e["log_prob"] for e in doc["entries"]]
    assert lps == sorted(lps, reverse=True)
    for e in doc["entries"]:
        arch = load_architecture(tmp_path / e["file"])  # what train.py arch=<file> loads
        assert arch.choices == e["choices"] and arch.meta["rank"] == e["rank"]
        macs, _ = arch.complexity()
        assert macs <= 0.05e6 and e["mflops"] == pytest.approx(macs / 1e6, abs=1e-4)
        assert float(dist.log_prob(torch.tensor([arch.indices]))[0]) == pytest.approx(e["log_prob"], abs=1e-5)
    # a re-export with fewer entries removes the stale files
    write_top_architectures(tmp_path, dist, micro, 2, ENOUGH, _flops(micro, 0.05))
    assert sorted(p.name for p in (tmp_path / "top_archs").iterdir()) == ["rank_1.yaml", "rank_2.yaml"]


def test_the_candidate_cap_is_reported(micro, tmp_path):
    dist = _hand_set(micro, "factorized")
    lo, _ = ComplexityTables(micro).macs_range()
    path = write_top_architectures(tmp_path, dist, micro, 3, 50, _flops(micro, (lo + 1e-3) / 1e6))
    doc = yaml.safe_load(path.read_text())
    assert doc["cap_hit"] is True and doc["enumerated"] == 50 and doc["found"] < 3
    assert "export.max_candidates" in doc["note"]


@pytest.mark.parametrize(
    "export, message",
    [
        ({"top_k": -1}, "export.top_k=-1 is invalid: it must be an integer >= 0"),
        ({"top_k": "3"}, "export.top_k='3' is invalid: it must be an integer >= 0"),
        ({"max_candidates": 0}, "export.max_candidates=0 is invalid: it must be an integer >= 1"),
        ({"mode": "best"}, "export.mode='best' is invalid: it must be one of"),
    ],
)
def test_bad_export_config(export, message):
    from fpnas.search.selection import FinalPick

    good = dict(
        mode="feasible", top_k=0, max_candidates=10, candidates=1, fill=False, significance=0.0, finetune_steps=0
    )
    with pytest.raises(ConfigError, match=message):
        FinalPick(**(good | export), finetune_lr=0.01)
    assert FinalPick(**good, finetune_lr=0.01).scored is False
