"""Shared fixtures: search spaces and small deterministic helpers."""
import pytest
import torch

from fpnas.space.spec import SearchSpace


@pytest.fixture(params=SearchSpace.available())
def any_space(request) -> SearchSpace:
    """Every shipped space."""
    return SearchSpace.load(request.param)


@pytest.fixture
def tiny() -> SearchSpace:
    return SearchSpace.load("tiny")


def random_indices(space: SearchSpace, n: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.stack([torch.randint(s, (n,), generator=g) for s in space.sizes], 1)
