"""Factorized / joint categoricals: conversion, sampling, log-probabilities, entropy, gradients."""

import math

import pytest
import torch

from fpnas.search.distribution import ArchDistribution
from tests.conftest import random_indices


def _random_fd(space, seed=0):
    fd = ArchDistribution(space.sizes, space.units("factorized"), "factorized")
    g = torch.Generator().manual_seed(seed)
    fd.alpha.copy_(torch.randn(fd.alpha.shape, generator=g) * 2)
    return fd


def test_uniform_entropy_is_log_of_space_size(any_space):
    fd = ArchDistribution(any_space.sizes, any_space.units("factorized"), "factorized")
    expected = any_space.log10_num_architectures * math.log(10)
    assert float(fd.entropy()) == pytest.approx(expected, abs=1e-4)


def test_fd_to_jd_keeps_every_probability_and_the_entropy(any_space):
    fd = _random_fd(any_space)
    jd = fd.to_joint(any_space.units("joint"))
    assert jd.kind == "joint"
    assert abs(float(fd.entropy()) - float(jd.entropy())) <= 1e-6 * max(1.0, float(fd.entropy()))
    archs = random_indices(any_space, 200, seed=1)
    assert torch.allclose(fd.log_prob(archs), jd.log_prob(archs), atol=1e-5)
    # the joint units hold exactly the product of the factorized marginals
    unit = any_space.units("joint")[1]
    expected = fd.marginal(unit)
    assert torch.allclose(jd.marginal(unit), expected, atol=1e-6)
    assert torch.equal(fd.mode(), jd.mode())


def test_joint_has_more_logits_than_factorized(tiny):
    fd = ArchDistribution(tiny.sizes, tiny.units("factorized"), "factorized")
    jd = fd.to_joint(tiny.units("joint"))
    assert int(fd.mask.sum()) == sum(tiny.sizes) == 8 + 21 + 20
    assert int(jd.mask.sum()) == 16 + 48 + 36 + 48 + 24


def test_sampling_follows_the_probabilities_and_the_generator(tiny):
    fd = _random_fd(tiny, seed=3)
    a = fd.sample(4000, torch.Generator().manual_seed(7))
    b = fd.sample(4000, torch.Generator().manual_seed(7))
    assert torch.equal(a, b)
    d = tiny.decision_index["g3.channels"]
    empirical = torch.bincount(a[:, d], minlength=3).double() / 4000
    assert torch.allclose(empirical, fd.marginal([d]).double(), atol=0.03)
    jd = fd.to_joint(tiny.units("joint"))
    c = jd.sample(4000, torch.Generator().manual_seed(7))
    empirical = torch.bincount(c[:, d], minlength=3).double() / 4000
    assert torch.allclose(empirical, jd.marginal([d]).double(), atol=0.03)


def test_mode_is_the_most_likely_architecture(tiny):
    jd = _random_fd(tiny, seed=4).to_joint(tiny.units("joint"))
    jd.alpha.add_(torch.randn(jd.alpha.shape, generator=torch.Generator().manual_seed(5)))
    best = jd.log_prob(jd.mode()[None])
    others = jd.log_prob(jd.sample(500, torch.Generator().manual_seed(6)))
    assert float(best) >= float(others.max()) - 1e-6


@pytest.mark.parametrize("kind", ["factorized", "joint"])
def test_closed_form_gradient_equals_autograd(tiny, kind):
    dist = _random_fd(tiny, seed=8)
    if kind == "joint":
        dist = dist.to_joint(tiny.units("joint"))
    archs = dist.sample(9, torch.Generator().manual_seed(9))
    m = torch.randn(9, generator=torch.Generator().manual_seed(10))
    alpha = dist.alpha.clone().requires_grad_(True)
    logp = torch.log_softmax(alpha.masked_fill(~dist.mask, float("-inf")), dim=1)
    log_prob = logp.gather(1, dist.encode(archs).T).sum(0)
    (-(m * log_prob).sum()).backward()
    closed = dist.grad_weighted_nll(archs, m)
    assert torch.allclose(closed, alpha.grad, atol=1e-5)
    assert float(closed.abs().sum()) > 0.1  # a real gradient
