"""K schedules, hinge cost and importance weights."""

import math

import pytest
import torch

from fpnas.cost.constraint import hinge_cost
from fpnas.errors import ConfigError
from fpnas.search.distribution import ArchDistribution
from fpnas.search.importance import arch_importance, penalised_importance, weight_importance
from fpnas.search.sampling import AdaptiveK, FixedK


def test_adaptive_k_starts_at_floor_lambda_h0(tiny):
    h0 = float(ArchDistribution(tiny.sizes, tiny.units("factorized"), "factorized").entropy())
    assert h0 == pytest.approx(math.log(16 * 24 * 36 * 2 * 16 * 24 * 3), abs=1e-4)  # 17.30 nats
    assert AdaptiveK(0.25, 2)(h0) == math.floor(0.25 * h0) == 4
    assert AdaptiveK(1.0, 2)(h0) == 17
    # the paper's FBNetV2-F start: H0 = 59.36 nats -> 14 samples
    assert AdaptiveK(0.25, 2)(59.36) == 14


def test_adaptive_k_respects_k_min_and_fixed_k_is_constant():
    assert AdaptiveK(0.25, 2)(0.5) == 2
    assert AdaptiveK(0.25, 5)(12.0) == 5
    assert [FixedK(14)(h) for h in (0.0, 3.0, 100.0)] == [14, 14, 14]


@pytest.mark.parametrize(
    "make", [lambda: AdaptiveK(0.0, 2), lambda: AdaptiveK(-1, 2), lambda: AdaptiveK(0.25, 0), lambda: FixedK(0)]
)
def test_bad_sampler_settings_are_rejected(make):
    with pytest.raises(ConfigError, match="sampler"):
        make()


def test_hinge_cost():
    macs = torch.tensor([50e6, 100e6, 150e6])
    assert hinge_cost(macs, 100e6).tolist() == pytest.approx([0.0, 0.0, 0.5])


def test_importance_under_budget_is_the_softmax():
    v = torch.tensor([-10.0, -12.0, -11.0])
    m = arch_importance(v, torch.zeros(3), beta=5.0)
    assert torch.allclose(m, torch.softmax(v, 0))
    assert torch.allclose(weight_importance(v), torch.softmax(v, 0))


def test_over_budget_sample_gets_less_weight_than_an_equally_likely_cheaper_one():
    v = torch.tensor([-10.0, -10.0, -14.0])
    costs = hinge_cost(torch.tensor([90e6, 130e6, 80e6]), 100e6)
    m = arch_importance(v, costs, beta=0.5)
    assert float(m[1]) < float(m[0])
    # exact value: softmax - beta * C_k / sum C  (only sample 1 is over budget)
    assert float(m[1]) == pytest.approx(float(torch.softmax(v, 0)[1]) - 0.5, abs=1e-6)
    assert float(m[0]) == pytest.approx(float(torch.softmax(v, 0)[0]), abs=1e-6)


def test_feasibility_first_gives_the_accuracy_mass_to_the_least_over_sample_when_all_are_over():
    v = torch.tensor([-5.0, -9.0, -7.0])  # the largest (most over) is the most accurate
    macs = torch.tensor([300e6, 140e6, 200e6])
    costs = hinge_cost(macs, 100e6)  # 2.0, 0.4, 1.0: every sample over
    m = penalised_importance(v, [costs], [0.5], feasibility_first=True)
    # one-hot on sample 1 (least over) minus beta * C_k / sum C
    assert m.tolist() == pytest.approx([-0.5 * 2.0 / 3.4, 1.0 - 0.5 * 0.4 / 3.4, -0.5 * 1.0 / 3.4], abs=1e-6)
    # Eq. 7 as written still favours the most accurate, over-target sample
    plain = penalised_importance(v, [costs], [0.5])
    assert int(plain.argmax()) == 0 and int(m.argmax()) == 1
    # two constraints: the violation is the sum of both hinges
    second = torch.tensor([0.1, 5.0, 0.1])
    both = penalised_importance(v, [costs, second], [0.5, 0.5], feasibility_first=True)
    assert int(both.argmax()) == 2


def test_feasibility_first_is_eq7_once_one_sample_is_within_the_target():
    v = torch.tensor([-5.0, -9.0, -7.0])
    costs = hinge_cost(torch.tensor([300e6, 90e6, 200e6]), 100e6)
    m = penalised_importance(v, [costs], [0.5], feasibility_first=True)
    assert torch.equal(m, penalised_importance(v, [costs], [0.5]))
    assert torch.equal(m, arch_importance(v, costs, beta=0.5))
