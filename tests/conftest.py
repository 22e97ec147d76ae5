"""Shared fixtures: short-run configs, search spaces and small deterministic helpers; one data cache for the
whole session."""

import os
import tempfile
from pathlib import Path

import pytest
import torch

from fpnas.space.spec import SearchSpace

# The bundled data sets are parsed once and kept as .npz (fpnas.data.cache). Set here, at import, before
# any test module copies os.environ for its search.py subprocesses: every process of every session on
# this machine shares one directory (files are keyed by versions and written atomically), and the
# user's own cache is left alone. An FPNAS_CACHE_DIR already set is kept.
_USER = getattr(os, "getuid", lambda: "user")()
SESSION_CACHE_DIR = os.environ.setdefault(
    "FPNAS_CACHE_DIR", str(Path(tempfile.gettempdir()) / f"fpnas-test-cache-{_USER}")
)


def pytest_configure(config):
    """The third-party warnings that search.py / train.py filter (fpnas.report.console.NOISE_WARNINGS) are
    filtered in tests too: tests call the entry points' functions, not the scripts."""
    from fpnas.report.console import NOISE_WARNINGS

    for pattern, _why in NOISE_WARNINGS:
        assert ":" not in pattern, pattern  # a colon would end the message field of a filterwarnings line
        config.addinivalue_line("filterwarnings", f"ignore:{pattern}")


@pytest.fixture
def cfg_search(tmp_path):
    """A short search's config (lightning-hydra-template's ``cfg_train``): ``cfg_search(*overrides, out=None)``
    composes search.yaml with the run directory ``out`` (default: the test's ``tmp_path``), ``QUICK_SEARCH``
    (tests/helpers.py), then ``overrides``."""
    from tests.helpers import QUICK_SEARCH, compose_config  # Lightning: imported by the tests that need it

    return lambda *overrides, out=None: compose_config("search", out or tmp_path, *QUICK_SEARCH, *overrides)


@pytest.fixture
def cfg_train(tmp_path):
    """A short retraining's config: ``cfg_train(*overrides, out=None)`` composes train.yaml with the run
    directory ``out`` (default: the test's ``tmp_path``), ``QUICK_TRAIN`` (tests/helpers.py), then ``overrides``."""
    from tests.helpers import QUICK_TRAIN, compose_config

    return lambda *overrides, out=None: compose_config("train", out or tmp_path, *QUICK_TRAIN, *overrides)


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
