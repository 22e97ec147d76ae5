"""Architecture files (``arch.yaml``): save, load and validate against their search space."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from fpnas.errors import ConfigError
from fpnas.space.builder import build_model
from fpnas.space.complexity import architecture_complexity
from fpnas.space.spec import SearchSpace


@dataclass
class Architecture:
    """One architecture of a space: choice indices plus the space they index."""

    space: SearchSpace
    indices: list[int]
    meta: dict[str, Any] = field(default_factory=dict)
    inline_space: bool = False  # the file holds the space itself (reference architectures)

    @property
    def choices(self) -> dict[str, Any]:
        return self.space.choices_of(self.indices)

    @property
    def is_reference(self) -> bool:
        """A reference architecture: its space is written inline with every variable fixed (zero decisions)."""
        return self.inline_space and self.space.num_decisions == 0

    def complexity(self) -> tuple[int, int]:
        return architecture_complexity(self.space, self.indices)

    def to_dict(self) -> dict[str, Any]:
        macs, params = self.complexity()
        blocks = {
            f"g{s.group}.b{s.position}": c.kind.describe(c)
            for s, c in zip(self.space.blocks, self.space.resolve(self.indices))
        }
        return {
            "space": self.space_entry(),
            "input_size": self.space.input_size,
            "in_chans": self.space.in_chans,
            "num_classes": self.space.num_classes,
            "mflops": round(macs / 1e6, 4),
            "params_m": round(params / 1e6, 4),
            "choices": {k: (float(v) if isinstance(v, float) else v) for k, v in self.choices.items()},
            "blocks": blocks,  # informational, ignored on load
            **({"meta": self.meta} if self.meta else {}),
        }

    def space_entry(self):
        """The ``space`` entry of the file: a shipped space's name, else the space spec inline."""
        if not self.inline_space and self.space.name in SearchSpace.available():
            return self.space.name
        spec = dict(self.space.spec)
        spec["name"] = self.space.name
        return spec

    def with_data(self, num_classes: int, in_chans: int, input_size: int | None = None) -> Architecture:
        """The same architecture for other data: classifier size, input channels and input size."""
        spec = dict(self.space.spec, num_classes=int(num_classes), in_chans=int(in_chans))
        if input_size is not None:
            spec["input_size"] = int(input_size)
        return Architecture(
            SearchSpace(spec, name=self.space.name),
            list(self.indices),
            dict(self.meta),
            self.inline_space or input_size is not None,
        )

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w") as f:
            f.write(
                f"# architecture of search space '{self.space.name}' (fpnas); "
                "rebuild with fpnas.space.arch.load_architecture(path).build()\n"
            )
            yaml.safe_dump(self.to_dict(), f, sort_keys=False)
        return path

    def build(self, **kwargs):
        """The plain ``nn.Module`` of this architecture."""

        return build_model(self.space, self.indices, **kwargs)


def load_architecture(path: str | Path, space: SearchSpace | None = None) -> Architecture:
    """Read an ``arch.yaml``; every decision is checked against the space it names."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(
            f"architecture file {path} does not exist; give the arch.yaml of a search run "
            "(outputs/search/<date>/<time>/arch.yaml) or a reference name (e.g. arch=mobilenetv2_100)"
        )
    try:
        data = yaml.safe_load(path.read_text())
    except UnicodeDecodeError:
        raise ConfigError(
            f"architecture file {path} is not a text file (not UTF-8); give the arch.yaml that "
            "search.py wrote, or a reference name (e.g. arch=mobilenetv2_100)"
        ) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or exc
        raise ConfigError(
            f"architecture file {path} is not valid YAML ({where}{problem}); "
            "fix it, or use the arch.yaml that search.py wrote"
        ) from None
    return architecture_from_dict(data, space, where=path)


def architecture_from_dict(data, space: SearchSpace | None = None, where: str | Path = "<dict>") -> Architecture:
    """An architecture from the mapping an ``arch.yaml`` holds (e.g. kept in a checkpoint)."""
    path = where
    if not isinstance(data, dict) or "choices" not in data or "space" not in data:
        raise ConfigError(f"architecture file {path} needs the keys 'space' and 'choices'")
    if not isinstance(data["choices"], dict):
        raise ConfigError(f"architecture file {path}: 'choices' must map decision names to values")
    inline = isinstance(data["space"], dict)
    if space is None:
        if inline:
            try:
                space = SearchSpace(data["space"], name=data["space"].get("name") or Path(str(path)).stem)
            except ConfigError as exc:
                raise ConfigError(f"architecture file {path}: inline space: {exc}") from None
        else:
            space = _named_space(data["space"], path)
    space = space.with_num_classes(data.get("num_classes", space.num_classes), data.get("in_chans", space.in_chans))
    if data.get("input_size", space.input_size) != space.input_size:
        raise ConfigError(
            f"architecture file {path}: input_size {data['input_size']} differs from "
            f"space '{space.name}' ({space.input_size})"
        )
    try:
        indices = space.indices_of(data["choices"])
    except ConfigError as exc:
        raise ConfigError(f"architecture file {path}: {exc}") from None
    blocks = data.get("blocks")
    if blocks is not None:  # informational, but a different block list means another space
        if not isinstance(blocks, dict):
            raise ConfigError(f"architecture file {path}: 'blocks' must map block names to descriptions")
        expected = [f"g{s.group}.b{s.position}" for s in space.blocks]
        extra = [b for b in blocks if b not in expected]
        missing = [b for b in expected if b not in blocks]
        if extra or missing:
            raise ConfigError(
                f"architecture file {path}: {len(blocks)} blocks but space '{space.name}' has "
                f"{len(expected)}"
                + (f"; block(s) not in the space: {extra[:5]}" if extra else "")
                + (f"; missing block(s): {missing[:5]}" if missing else "")
            )
    return Architecture(space, indices, data.get("meta") or {}, inline)


def _named_space(entry, where: str | Path) -> SearchSpace:
    """The space an architecture file names: a shipped space's name, or a space file's path, which is
    relative to the architecture file's directory (as an include is), not to the current directory."""
    if not isinstance(entry, str):
        raise ConfigError(
            f"architecture file {where}: space must be a space name (e.g. space: tiny), a space file "
            f"path or the space written inline, got {entry!r}"
        )
    if Path(entry).suffix in (".yaml", ".yml") and not Path(entry).is_absolute() and Path(str(where)).is_file():
        resolved = Path(str(where)).parent / entry
        if not resolved.is_file():
            raise ConfigError(
                f"architecture file {where}: space file {resolved} does not exist (space: {entry} is "
                "relative to the architecture file's directory); fix the path or give an absolute one"
            )
        entry = str(resolved)
    try:
        return SearchSpace.load(entry)
    except ConfigError as exc:
        raise ConfigError(f"architecture file {where}: space: {exc}") from None


def architecture_from_indices(space: SearchSpace, indices: Sequence[int], **meta) -> Architecture:
    return Architecture(space, [int(i) for i in indices], dict(meta))
