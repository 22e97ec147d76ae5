"""Reference architectures registered by name (``conf/reference/<name>.yaml``).

Each is an ordinary architecture file whose space is written inline with single-choice variables
(zero decisions), so ``train.py arch=<name>``, the standalone builder, the super-net and the analytic
FLOPs tables treat it like any searched architecture.
"""
from __future__ import annotations

from pathlib import Path

from fpnas.arch import Architecture, load_architecture
from fpnas.errors import ConfigError

REFERENCE_DIR = Path(__file__).resolve().parents[1] / "conf" / "reference"


def available_references() -> list[str]:
    """Registered reference architecture names."""
    return sorted(p.stem for p in REFERENCE_DIR.glob("*.yaml"))


def reference_path(name: str) -> Path:
    path = REFERENCE_DIR / f"{name}.yaml"
    if not path.is_file():
        raise ConfigError(f"unknown reference architecture '{name}'; available: {available_references()}")
    return path


def load_reference(name: str) -> Architecture:
    """A registered reference architecture (ImageNet head: 1000 classes, 3 channels)."""
    return load_architecture(reference_path(name))


def resolve_architecture(name_or_path: str | Path) -> tuple[Architecture, bool]:
    """``(architecture, is_reference)`` for an ``arch.yaml`` path or a registered name."""
    text = str(name_or_path)
    path = Path(text)
    if path.suffix in (".yaml", ".yml") or path.exists() or "/" in text:
        return load_architecture(path), False
    if text in available_references():
        return load_reference(text), True
    raise ConfigError(f"arch={text!r} is neither an existing architecture file nor a registered reference "
                      f"architecture; registered: {available_references()}")
