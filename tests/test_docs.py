"""The documentation cannot drift: the site's generated parts (the configuration reference from conf/, the
results tables from benchmarks/results/) are what fpnas.tools.docs makes, every page is in the nav, the
README stays short, keeps the two setup commands CI extracts and links only to pages that exist."""

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from fpnas.tools import docs

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
DOCS = ROOT / "docs"
HOW_TO_FIX = "run `python -m fpnas.docs --write` and commit docs/"
LINK = re.compile(r"\]\(([^)\s]+)\)")


def _config_reference() -> str:
    section = docs.generated_part(docs.CONFIG_PAGE.read_text(), docs.CONFIG_SOURCE)
    assert section is not None, f"{docs.CONFIG_PAGE} lost its generated configuration reference ({HOW_TO_FIX})"
    return section


# ----------------------------------------------------------------------------- generated parts
def test_generated_parts_are_current():
    stale = [str(p.relative_to(ROOT)) for p in docs.stale_pages()]
    assert not stale, f"generated parts out of date in {stale}: {HOW_TO_FIX}"


def test_configuration_reference_is_the_generated_one():
    section = _config_reference()
    body = docs.shift_headings(docs.reference(), 3)  # the page's "## Every group and key" precedes it
    assert section == body, f"{docs.CONFIG_PAGE.relative_to(ROOT)} is out of date: {HOW_TO_FIX}"


def _leaf_keys(node, prefix=""):
    """Dotted keys of the mappings in ``node``; lists (defaults, space groups) are one value."""
    if not isinstance(node, dict):
        return
    for key, value in node.items():
        if key == "defaults":
            continue
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            yield from _leaf_keys(value, f"{dotted}.")
        else:
            yield dotted


def _prefix(group: str) -> str:
    if group in ("experiment", "train_experiment"):
        return ""  # @package _global_
    return group.replace("/", ".") + "."


def test_every_group_option_and_key_of_conf_is_documented():
    """conf/ read independently, with PyYAML: every group, option and key appears in the reference."""
    section = _config_reference()
    headings = set(re.findall(r"^#+ `([^`]+)`$", section, re.M))
    missing = []
    for name in ("search", "train"):
        data = yaml.safe_load((ROOT / "conf" / f"{name}.yaml").read_text())
        for entry in data["defaults"]:
            if isinstance(entry, dict):
                group = next(iter(entry)).removeprefix("override ")  # the group a user sets: `hydra/job_logging=`
                if f"`{group}=`" not in section:
                    missing.append(f"{name}.yaml group {group}")
        missing += [f"{name}.yaml {k}" for k in _leaf_keys(data) if f"`{k}`" not in section]
    for path in sorted((ROOT / "conf").rglob("*.yaml")):
        group = str(path.parent.relative_to(ROOT / "conf"))
        if group == ".":
            continue
        if group not in headings or f"`{path.stem}`" not in section:
            missing.append(f"option {group}/{path.stem}")
        if group == "reference":  # architecture files: their top-level keys only
            keys = [k for k in yaml.safe_load(path.read_text())]
        else:
            keys = list(_leaf_keys(yaml.safe_load(path.read_text()) or {}))
        missing += [
            f"{group}/{path.stem}: {_prefix(group)}{k}" for k in keys if f"`{_prefix(group)}{k}`" not in section
        ]
    assert not missing, f"not in the configuration reference ({HOW_TO_FIX}): {missing}"


def test_every_documented_key_has_a_comment():
    section = _config_reference()
    rows = [line for line in section.splitlines() if line.startswith("| `") and "=`" not in line.split("|")[1]]
    blank = [row.split("|")[1].strip() for row in rows if not row.rstrip(" |").split("|")[-1].strip()]
    assert not blank, f"keys without a comment in conf/ (every key gets a one-line comment): {blank}"


def test_every_benchmark_report_picture_and_script_is_on_a_results_page():
    """The results pages show every report a benchmark writes (its table, generated) and every picture;
    each benchmark script is named with its numbers."""
    results = sorted((DOCS / "results").glob("*.md"))
    text = "\n".join(p.read_text() for p in results)
    included = {s for p in results for s in docs.sources(p.read_text())}
    reports = {
        f"benchmarks/results/{p.name}"
        for p in (ROOT / "benchmarks" / "results").glob("*.md")
        if not p.stem.endswith("_quick")  # --quick smoke tests, git-ignored
    }
    assert reports <= included, f"reports on no results page: {sorted(reports - included)}"
    pictures = {p.name for p in (ROOT / "benchmarks" / "results").glob("*.png")}
    shown = set(re.findall(r"\]\(img/([^)]+\.png)\)", text))
    assert pictures <= shown, f"pictures on no results page: {sorted(pictures - shown)}"
    scripts = {p.name for p in (ROOT / "benchmarks").glob("*.py")} - {"common.py", "startup_probe.py"}
    unnamed = sorted(s for s in scripts if s not in text)
    assert not unnamed, f"benchmark scripts named on no results page: {unnamed}"


def test_shift_headings_leaves_code_blocks_alone():
    text = "### a\n\n```bash\n# a comment, not a heading\n```\n\n#### b\n"
    assert docs.shift_headings(text, 2) == "## a\n\n```bash\n# a comment, not a heading\n```\n\n### b\n"
    assert docs.escape_html("<run dir> and `<run dir>`") == "&lt;run dir> and `<run dir>`"


# ----------------------------------------------------------------------------- the site
def _nav_pages(node) -> list[str]:
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [p for value in node.values() for p in _nav_pages(value)]
    return [p for item in node or [] for p in _nav_pages(item)]


def test_every_nav_page_exists_and_every_page_is_in_the_nav():
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    nav = _nav_pages(config["nav"])
    assert len(nav) == len(set(nav)), "a page is in the nav twice"
    missing = [p for p in nav if not (DOCS / p).is_file()]
    assert not missing, f"mkdocs.yml's nav names pages that do not exist: {missing}"
    pages = {str(p.relative_to(DOCS)) for p in docs.pages()}
    assert pages == set(nav), f"pages not in mkdocs.yml's nav: {sorted(pages - set(nav))}"


def test_the_site_works_offline():
    """No web fonts, no plugin that downloads (privacy, social, ...), no remote script or stylesheet."""
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    assert config["theme"]["font"] is False
    plugins = {next(iter(p)) if isinstance(p, dict) else p for p in config["plugins"]}
    assert plugins <= {"search", "mkdocstrings"}, plugins
    assert not {"extra_javascript", "extra_css"} & set(config)


def test_nothing_depends_on_files_users_do_not_have():
    for path in [ROOT / "README.md", ROOT / "mkdocs.yml", *docs.pages()]:
        assert "../shared" not in path.read_text(), f"{path.relative_to(ROOT)} refers to ../shared"


@pytest.mark.skipif(importlib.util.find_spec("mkdocs") is None, reason="mkdocs not installed (.[docs]); CI builds it")
def test_mkdocs_build_strict(tmp_path):
    """The whole site, as CI builds it: a broken link or anchor, a missing page or picture fails."""
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    html = "\n".join(p.read_text() for p in (tmp_path / "site").rglob("*.html"))
    remote = re.findall(r'<(?:script|link|img)[^>]*(?:src|href)="(https?://[^"]+)"', html)
    assert not remote, f"the site loads files from the network: {sorted(set(remote))[:5]}"


# ----------------------------------------------------------------------------- README
def test_readme_is_short():
    size = len(README.encode())
    assert size <= 10240, f"README.md is {size} bytes: keep it under 10 KB and move the rest to docs/"


def test_readme_holds_the_two_setup_commands():
    assert "```bash\npython3 -m venv .venv && .venv/bin/pip install -e . && .venv/bin/python search.py\n```" in README
    assert (
        '<!-- test-command -->\n```bash\npython3 -m venv .venv && .venv/bin/pip install -e ".[dev,export,mlflow]" && '
        ".venv/bin/python -m pytest\n```"
    ) in README


def test_readme_links_only_to_docs_pages_that_exist():
    links = LINK.findall(README)
    assert links, "README.md links to no docs page"
    bad = [
        link
        for link in links
        if not link.startswith("docs/") or not (ROOT / link.split("#", 1)[0]).is_file() or "/_tools/" in link
    ]
    assert not bad, f"README.md links to what is not a docs page: {bad}"


def test_ci_extracts_the_test_command_from_the_readme():
    script = (ROOT / ".ci" / "run").read_text()
    awk = script.split("cmd=$(awk '", 1)[1].split("' README.md)", 1)[0]
    cmd = subprocess.run(["awk", awk, str(ROOT / "README.md")], capture_output=True, text=True, check=True).stdout
    want = 'python3 -m venv .venv && .venv/bin/pip install -e ".[dev,export,mlflow]" && .venv/bin/python -m pytest'
    assert cmd.strip() == want


def test_ci_builds_the_docs_before_the_slow_tests():
    script = (ROOT / ".ci" / "run").read_text()
    assert '.venv/bin/pip install -e ".[docs]" && ' in script
    build = script.index('.venv/bin/mkdocs build --strict --site-dir "$site_dir"')
    assert script.index('bash -c "$cmd"') < build < script.index(".venv/bin/python -m pytest -m slow")
