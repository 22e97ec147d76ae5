"""Reference architectures registered by name (``conf/reference/<name>.yaml``).

Each is an ordinary architecture file whose space is written inline with single-choice variables
(zero decisions), so ``train.py arch=<name>``, the standalone builder, the super-net and the analytic
FLOPs tables treat it like any searched architecture. Your own references live outside ``conf/`` as
``<dir>/reference/<name>.yaml``, found through Hydra's search path (``hydra.searchpath=[file://<dir>]``),
as custom spaces are.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from fpnas.errors import ConfigError
from fpnas.runtime.config import CONF_DIR
from fpnas.space.arch import Architecture, load_architecture

REFERENCE_DIR = CONF_DIR / "reference"


def searchpath_dirs(searchpath: Iterable[str] | None) -> list[Path]:
    """The directories of the ``file://<dir>`` entries of Hydra's ``hydra.searchpath`` (``pkg://`` ones
    are Python packages: no reference of ours lives there)."""
    return [Path(str(e)[len("file://") :]) for e in searchpath or () if str(e).startswith("file://")]


def reference_dirs(search_dirs: Iterable[str | Path] = ()) -> list[Path]:
    """Where names are looked up: ``conf/reference/``, then ``<dir>/reference/`` of every search-path
    directory; as in Hydra's search path, the first match wins."""
    return [REFERENCE_DIR, *(Path(d) / "reference" for d in search_dirs)]


def available_references(search_dirs: Iterable[str | Path] = ()) -> list[str]:
    """Registered reference architecture names (``conf/reference/`` and the search path's ``reference/``)."""
    return sorted({p.stem for d in reference_dirs(search_dirs) for p in d.glob("*.yaml")})


def _unknown(name: str, search_dirs: list[Path]) -> str:
    """What an unknown name is told: the registered names and how to add one."""
    where = ", ".join(f"{d}/" for d in reference_dirs(search_dirs)[1:])
    return (
        f"registered: {available_references(search_dirs)}{f' (also searched {where})' if where else ''}; to add "
        f"your own, save it as <dir>/reference/{name}.yaml and pass hydra.searchpath=[file://<dir>]"
    )


def reference_path(name: str, search_dirs: Iterable[str | Path] = ()) -> Path:
    search_dirs = list(search_dirs)
    for directory in reference_dirs(search_dirs):
        if (directory / f"{name}.yaml").is_file():
            return directory / f"{name}.yaml"
    raise ConfigError(f"unknown reference architecture '{name}'; {_unknown(name, search_dirs)}")


def load_reference(name: str, search_dirs: Iterable[str | Path] = ()) -> Architecture:
    """A registered reference architecture (the shipped ones: ImageNet head, 1000 classes, 3 channels)."""
    return load_architecture(reference_path(name, search_dirs))


def resolve_architecture(name_or_path: str | Path, search_dirs: Iterable[str | Path] = ()) -> tuple[Architecture, bool]:
    """``(architecture, is_reference)`` for an ``arch.yaml`` path or a registered name (looked up in
    ``conf/reference/``, then in ``<dir>/reference/`` of each of ``search_dirs``).

    ``is_reference``: a registered name, or a file holding a reference (inline space, zero decisions).
    """
    text, search_dirs = str(name_or_path), list(search_dirs)
    path = Path(text)
    if path.suffix in (".yaml", ".yml") or path.exists() or "/" in text:
        arch = load_architecture(path)
        return arch, arch.is_reference
    if text in available_references(search_dirs):
        return load_reference(text, search_dirs), True
    raise ConfigError(
        f"arch={text!r} is neither an existing architecture file nor a registered reference "
        f"architecture; {_unknown(text, search_dirs)}"
    )
