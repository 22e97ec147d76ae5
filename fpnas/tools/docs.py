"""The generated parts of the documentation site (``docs/``, built by MkDocs: ``mkdocs.yml``).

A generated part of a page sits between two markers that name its source::

    <!-- generated:begin SOURCE (`python -m fpnas.docs --write`; do not edit by hand) -->
    ...
    <!-- generated:end -->

SOURCE is ``conf/`` (the configuration reference, made from ``conf/`` and its one-line key comments,
on ``docs/reference/configuration.md``) or a benchmark report ``benchmarks/results/<name>.md`` (copied,
its headings moved below the page's heading before the marker, on the ``docs/results/`` pages).
``python -m fpnas.docs`` prints the configuration reference; ``python -m fpnas.docs --write`` rewrites
every generated part under ``docs/``. ``tests/test_docs.py`` fails when a page differs from what this
makes, so a key or group option added to ``conf/`` cannot go undocumented and a table on the results
pages cannot drift from the report a benchmark wrote. (The pictures in ``benchmarks/results/`` are not
copied: ``docs/_tools/hooks.py`` adds them to the site at build time, as ``results/img/<name>.png``.)

The YAML is read line by line (PyYAML only for flow mappings) because PyYAML drops the comments,
which are the documentation, and ruamel.yaml is not a dependency.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from fpnas.runtime.config import CONF_DIR
from fpnas.space.blocks import BLOCK_KINDS
from fpnas.space.blocks.base import REQUIRED

ROOT = CONF_DIR.parent
CONF = ROOT / "conf"
DOCS = ROOT / "docs"
CONFIG_PAGE = DOCS / "reference" / "configuration.md"
CONFIG_SOURCE = "conf/"
RESULTS = "benchmarks/results/"
END = "<!-- generated:end -->"
GENERATED = re.compile(
    r"<!-- generated:begin (?P<source>\S+) \(`python -m fpnas\.docs --write`; do not edit by hand\) -->\n"
    r"(?P<body>.*?)" + re.escape(END),
    re.S,
)
HEADING = re.compile(r"^(#{1,6}) ")
FENCE = re.compile(r"^\s*(```|~~~)")
KEY = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z_][\w./@-]*|'[^']*'|\"[^\"]*\"):(?:\s+(?P<rest>.*))?$")
ITEM = re.compile(r"^(?P<indent> *)-\s+(?:override\s+)?(?P<key>[\w/@.-]+):\s*(?P<rest>.*)$")
# groups that are files of another kind: list the options and their top-level keys only
SHALLOW = {"reference"}
# a group's shared base, which its other options include (not a choice by itself): the table's value column
BASES = {"experiment": "fpnas_base"}


@dataclass
class ConfFile:
    """One YAML file: its header comment, defaults entries and (dotted key -> (value, comment))."""

    header: str = ""
    defaults: dict[str, tuple[str, str]] = field(default_factory=dict)
    keys: dict[str, tuple[str, str]] = field(default_factory=dict)


def split_comment(text: str) -> tuple[str, str]:
    """``value  # comment`` -> (value, comment); a ``#`` inside quotes or ``${...}`` is kept."""
    depth, quote = 0, None
    for i, ch in enumerate(text):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "{[":
            depth += 1
        elif ch in "}]":
            depth -= 1
        elif ch == "#" and depth == 0 and (i == 0 or text[i - 1].isspace()):
            return text[:i].strip(), text[i + 1 :].strip()
    return text.strip(), ""


def parse(path: Path, max_depth: int | None = None) -> ConfFile:
    """Keys of ``path`` with their values and comments (a comment line under a key continues it)."""
    out = ConfFile()
    stack: list[tuple[int, str]] = []
    last: str | None = None
    in_defaults = False
    header_done = False
    for line in path.read_text().splitlines():
        stripped = line.strip()
        if not stripped:
            continue
        indent = len(line) - len(line.lstrip(" "))
        if stripped.startswith("#"):
            text = stripped.lstrip("#").strip()
            if not header_done:
                if not text.startswith("@package") and not out.header:
                    out.header = text  # the first line says what the file is
            elif last is not None and indent > 0 and last in out.keys:
                value, comment = out.keys[last]
                out.keys[last] = (value, (comment + " " + text).strip())
            continue
        header_done = True
        item = ITEM.match(line)
        if item and in_defaults:
            value, comment = split_comment(item.group("rest"))
            out.defaults[item.group("key").lstrip("/")] = (value, comment)
            continue
        if stripped.startswith("-"):
            continue  # list items (space groups, defaults of a group file) belong to their key
        m = KEY.match(line)
        if not m:
            continue
        while stack and stack[-1][0] >= indent:
            stack.pop()
        key = m.group("key").strip("'\"")
        dotted = ".".join([k for _, k in stack] + [key])
        value, comment = split_comment(m.group("rest") or "")
        in_defaults = indent == 0 and key == "defaults"
        stack.append((indent, key))
        if in_defaults or (max_depth is not None and len(stack) > max_depth):
            last = None
            continue
        if value.startswith("{"):  # a flow mapping, e.g. stem: {channels: 16, kernel: 3}: one key each
            try:
                mapping = yaml.safe_load(value)
            except yaml.YAMLError:
                mapping = None
            if isinstance(mapping, dict) and mapping:
                for k, v in mapping.items():
                    text = yaml.safe_dump(v, default_flow_style=True).strip()
                    out.keys[f"{dotted}.{k}"] = (text.removesuffix("...").strip(), comment)
                last = None
                continue
        out.keys[dotted] = (value, comment)
        last = dotted
    # a key with nested keys is a section, not a setting
    sections = {k.rsplit(".", 1)[0] for k in out.keys if "." in k}
    out.keys = {k: v for k, v in out.keys.items() if not (k in sections and not v[0])}
    return out


CODE_SPAN = re.compile(r"(`[^`]*`)")
TAG_START = re.compile(r"<(?=[A-Za-z/!?])")  # what Markdown could read as HTML (``<=`` stays as it is)


def escape_html(text: str) -> str:
    """``<`` that starts a word, outside code spans, as ``&lt;``: Markdown would take ``<run dir>`` for an HTML
    tag and hide it."""
    return "".join(part if part.startswith("`") else TAG_START.sub("&lt;", part) for part in CODE_SPAN.split(text))


def cell(text: str) -> str:
    return escape_html(text).replace("|", "\\|")


def code(text: str) -> str:
    return f"`{text}`" if text else ""


def groups() -> list[str]:
    """Every config group (directory of option files) under conf/, e.g. ``space``, ``hydra/launcher``."""
    return sorted(str(d.relative_to(CONF)) for d in CONF.rglob("*") if d.is_dir() and any(d.glob("*.yaml")))


def group_table(group: str, default: str | None) -> list[str]:
    """The options of ``group`` and the union of their keys (value shown from the default option)."""
    files = {p.stem: parse(p, 1 if group in SHALLOW else None) for p in sorted((CONF / group).glob("*.yaml"))}
    lines = ["| option | what |", "|---|---|"]
    for name, f in files.items():
        mark = " (default)" if name == default else ""
        lines.append(f"| `{name}`{mark} | {cell(f.header)} |")
    union: dict[str, list[str]] = {}
    for name, f in sorted(files.items(), key=lambda item: item[0] != BASES.get(group)):  # a base's keys first
        for key in f.keys:
            union.setdefault(key, []).append(name)
    for name in files:  # an option composed of others (its defaults list names them) has their keys too
        doc = yaml.safe_load((CONF / group / f"{name}.yaml").read_text()) or {}
        for base in doc.get("defaults") or [] if isinstance(doc, dict) else []:
            if isinstance(base, str) and base in files and base != name:
                for key in files[base].keys:
                    if name not in union[key]:
                        union[key].append(name)
    if not union:
        return lines
    ref = default if default in files else BASES.get(group) if BASES.get(group) in files else next(iter(files))
    prefix = (
        ""
        if group in ("experiment", "train_experiment") or group.startswith("hydra")
        else group.replace("/", ".") + "."
    )
    if group.startswith("hydra"):
        prefix = group.replace("/", ".") + "." if group != "hydra" else "hydra."
    lines += ["", f"| key | value{f' (`{ref}`)' if len(files) > 1 else ''} | meaning |", "|---|---|---|"]
    for key, owners in union.items():
        src = ref if ref in owners else owners[0]
        value, comment = files[src].keys[key]
        others = [n for n in files if n not in owners]
        only = (
            ""
            if not others
            else f" (only in: {', '.join(owners)})"
            if len(owners) <= len(others)
            else f" (not in: {', '.join(others)})"
        )
        shown = cell(code(value)) + (f" ({src})" if src != ref and value else "")
        lines.append(f"| `{prefix}{key}` | {shown} | {cell(comment + only)} |")
    return lines


def top_level(name: str) -> tuple[list[str], dict[str, str]]:
    """The table of ``conf/<name>.yaml``: its groups (with defaults) and its own keys."""
    f = parse(CONF / f"{name}.yaml")
    lines = [f"**`{name}.yaml`** — {cell(f.header)}", "", "| key | default | meaning |", "|---|---|---|"]
    defaults = {}
    for group, (value, comment) in f.defaults.items():
        defaults[group] = value
        if group != "_self_":
            lines.append(f"| `{group}=` | {cell(code(value))} | {cell(comment)} (group below) |")
    for key, (value, comment) in f.keys.items():
        lines.append(f"| `{key}` | {cell(code(value))} | {cell(comment)} |")
    return lines, defaults


def block_kinds_table() -> list[str]:
    """The registered block kinds (``fpnas.space.blocks``): what a space group's ``op`` can name."""

    lines = [
        "Block kinds: a group's `op` (generated from `fpnas/space/blocks/`). Per-block keys take a "
        "value or a list of choices; group options take one value.",
        "",
        "| `op` | timm block | per-block keys (default) | group options (default) | what |",
        "|---|---|---|---|---|",
    ]
    for name, kind in BLOCK_KINDS.items():
        if not kind.group_op:
            continue
        keys = ", ".join(
            f"`{v.name}`"
            + ("" if v.default is REQUIRED else " (space's)" if callable(v.default) else f" ({v.default})")
            for v in kind.variables
        )
        options = ", ".join(f"`{o.name}` ({str(o.default).lower()})" for o in kind.options)
        lines.append(
            f"| `{name}`{' (default)' if name == 'mbconv' else ''} | {kind.timm_type} | {keys} | "
            f"{options} | {cell(kind.summary)} |"
        )
    skip = BLOCK_KINDS["skip"]
    lines += ["", f"`kernel: 0` in a group of any kind is the skip: {skip.summary}."]
    return lines


def reference() -> str:
    """The generated Markdown (without the markers)."""
    out = [
        "Every key below can be set on the command line (`key=value`; `+key=value` adds a key that a "
        "file does not have, `group=option` picks a file). Generated from the comments in `conf/`.",
        "",
    ]
    defaults: dict[str, str] = {}
    for name in ("search", "train"):
        lines, found = top_level(name)
        for group, value in found.items():
            defaults.setdefault(group, value)
        out += lines + [""]
    for group in groups():
        out += [f"#### `{group}`", ""] + group_table(group, defaults.get(group)) + [""]
        if group == "space":
            out += block_kinds_table() + [""]
    return "\n".join(out).rstrip() + "\n"


def heading_levels(text: str) -> list[int]:
    """The levels of the Markdown headings of ``text``, in order (lines in code blocks are not headings)."""
    levels, fenced = [], False
    for line in text.splitlines():
        fenced ^= bool(FENCE.match(line))
        if not fenced and (m := HEADING.match(line)):
            levels.append(len(m.group(1)))
    return levels


def shift_headings(text: str, level: int) -> str:
    """``text`` with its headings moved so that its shallowest one has ``level`` (code blocks untouched)."""
    levels = heading_levels(text)
    if not levels:
        return text
    shift, out, fenced = level - min(levels), [], False
    for line in text.splitlines():
        fenced ^= bool(FENCE.match(line))
        m = None if fenced else HEADING.match(line)
        out.append("#" * min(6, len(m.group(1)) + shift) + line[len(m.group(1)) :] if m else line)
    return "\n".join(out) + "\n"


def report(source: str) -> str:
    """A benchmark report ``benchmarks/results/<name>.md`` as a docs page shows it (``<`` escaped outside
    code, trailing spaces dropped)."""
    path = ROOT / source
    if not path.is_file():
        raise SystemExit(f"error: a docs page includes {source}, which does not exist")
    lines, fenced = [], False
    for line in path.read_text().splitlines():
        fenced ^= bool(FENCE.match(line))
        lines.append(line.rstrip() if fenced else escape_html(line.rstrip()))
    return "\n".join(lines).strip("\n") + "\n"


def generate(source: str) -> str:
    """The Markdown of a generated part (its headings not yet moved to the page's level)."""
    if source == CONFIG_SOURCE:
        return reference()
    if source.startswith(RESULTS) and source.endswith(".md") and "/" not in source[len(RESULTS) :]:
        return report(source)
    raise SystemExit(f"error: unknown generated source {source!r}: {CONFIG_SOURCE} or {RESULTS}<name>.md")


def begin_marker(source: str) -> str:
    return f"<!-- generated:begin {source} (`python -m fpnas.docs --write`; do not edit by hand) -->"


def fill(text: str) -> str:
    """``text`` (a docs page) with every generated part made anew. A part's headings go one level below the
    page's own last heading (not one of an earlier generated part) before its marker."""
    out, pos = [], 0
    for m in GENERATED.finditer(text):
        levels = heading_levels(GENERATED.sub("", text[: m.start()]))  # the page's own headings
        body = shift_headings(generate(m.group("source")), min(6, (levels[-1] if levels else 1) + 1))
        out += [text[pos : m.start()], begin_marker(m.group("source")), "\n", body, END]
        pos = m.end()
    return "".join(out) + text[pos:]


def pages() -> list[Path]:
    """Every Markdown page of the site (``docs/_tools`` holds scripts, no pages)."""
    return sorted(p for p in DOCS.rglob("*.md") if "_tools" not in p.relative_to(DOCS).parts)


def sources(text: str) -> list[str]:
    """The sources of the generated parts of a page."""
    return [m.group("source") for m in GENERATED.finditer(text)]


def generated_part(text: str, source: str) -> str | None:
    """The body of the generated part of ``source`` in ``text`` (None when the page has none)."""
    return next((m.group("body") for m in GENERATED.finditer(text) if m.group("source") == source), None)


def stale_pages() -> list[Path]:
    """The pages whose generated parts differ from what :func:`fill` makes."""
    return [p for p in pages() if fill(p.read_text()) != p.read_text()]


def write_docs() -> list[Path]:
    """Rewrite the generated parts of every page; the pages that changed."""
    changed = []
    for path in pages():
        text = path.read_text()
        new = fill(text)
        if new != text:
            path.write_text(new)
            changed.append(path)
    if CONFIG_SOURCE not in sources(CONFIG_PAGE.read_text()):
        raise SystemExit(f"error: {CONFIG_PAGE} has no {begin_marker(CONFIG_SOURCE)} ... {END} part")
    return changed


def run() -> None:
    """The ``fpnas-docs`` command (``python -m fpnas.docs``): print the configuration reference (``--write``:
    rewrite every generated part of docs/)."""
    if sys.argv[1:] == ["--write"]:
        changed = write_docs()
        for path in changed:
            print(f"{path.relative_to(ROOT)} updated")
        if not changed:
            print("docs/ already up to date")
    else:
        sys.stdout.write(reference())


if __name__ == "__main__":
    run()
