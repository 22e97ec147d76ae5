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
from fpnas.runtime.run_dir import RunDir
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


def architecture_file(name_or_path: str | Path, search_dirs: Iterable[str | Path] = ()) -> tuple[Path, bool]:
    """``(file, registered)``: the architecture file a user's argument names, by one rule for ``train.py arch=``
    and every tool: a run directory's ``arch.yaml``; a path (``.yaml``, existing, or with a ``/``) as given,
    existing or not (loading it says so); else a registered reference name's file (``registered``), looked
    up in ``conf/reference/``, then in ``<dir>/reference/`` of each of ``search_dirs``."""
    text, path = str(name_or_path), Path(name_or_path)
    if path.is_dir():
        if not RunDir(path).arch.is_file():
            raise ConfigError(f"{text} is a directory without an arch.yaml; give an architecture file")
        return RunDir(path).arch, False
    if path.suffix in (".yaml", ".yml") or path.exists() or "/" in text:
        return path, False
    search_dirs = list(search_dirs)
    if text in available_references(search_dirs):
        return reference_path(text, search_dirs), True
    raise ConfigError(
        f"arch={text!r} is neither an existing architecture file nor a registered reference "
        f"architecture; {_unknown(text, search_dirs)}"
    )


def resolve_architecture(name_or_path: str | Path, search_dirs: Iterable[str | Path] = ()) -> tuple[Architecture, bool]:
    """``(architecture, is_reference)`` of what :func:`architecture_file` finds.

    ``is_reference``: a registered name, or a file holding a reference (inline space, zero decisions).
    """
    path, registered = architecture_file(name_or_path, search_dirs)
    arch = load_architecture(path)
    return arch, registered or arch.is_reference
