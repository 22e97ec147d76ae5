"""The README cannot drift from conf/: its configuration reference is the generated one, and every
group option and key of conf/ (read independently, with PyYAML) appears in it."""

import subprocess
from pathlib import Path

import yaml

from fpnas.tools import docs

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
HOW_TO_FIX = "run `python -m fpnas.docs --write` and commit README.md"


def test_configuration_reference_is_the_generated_one():
    section = docs.readme_section(README)
    assert section is not None, "README.md lost its config-reference markers"
    assert section == docs.reference(), f"README.md's configuration reference is out of date: {HOW_TO_FIX}"


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
    section = docs.readme_section(README)
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
        if f"#### `{group}`" not in section or f"`{path.stem}`" not in section:
            missing.append(f"option {group}/{path.stem}")
        if group == "reference":  # architecture files: their top-level keys only
            keys = [k for k in yaml.safe_load(path.read_text())]
        else:
            keys = list(_leaf_keys(yaml.safe_load(path.read_text()) or {}))
        missing += [
            f"{group}/{path.stem}: {_prefix(group)}{k}" for k in keys if f"`{_prefix(group)}{k}`" not in section
        ]
    assert not missing, f"not in README.md's configuration reference ({HOW_TO_FIX}): {missing}"


def test_every_documented_key_has_a_comment():
    section = docs.readme_section(README)
    rows = [line for line in section.splitlines() if line.startswith("| `") and "=`" not in line.split("|")[1]]
    blank = [row.split("|")[1].strip() for row in rows if not row.rstrip(" |").split("|")[-1].strip()]
    assert not blank, f"keys without a comment in conf/ (every key gets a one-line comment): {blank}"


def test_readme_sections_and_the_two_setup_commands_at_the_top():
    head = README.split("\n---\n", 1)[0]
    assert "```bash\npython3 -m venv .venv && .venv/bin/pip install -e . && .venv/bin/python search.py\n```" in head
    assert (
        '<!-- test-command -->\n```bash\npython3 -m venv .venv && .venv/bin/pip install -e ".[dev,export,mlflow]" && '
        ".venv/bin/python -m pytest\n```"
    ) in head
    headings = [line[3:] for line in README.splitlines() if line.startswith("## ")]
    assert headings == [
        "Quickstart",
        "How FP-NAS works",
        "Configuration reference",
        "Recipes",
        "Search spaces",
        "Data",
        "Paper experiments",
        "Results",
        "Architecture",
        "Implementation notes",
    ]
    recipes = README.split("\n## Recipes\n", 1)[1].split("\n## ", 1)[0]
    assert [line[4:] for line in recipes.splitlines() if line.startswith("### ")] == [
        "Sweep",
        "Latency and parameter budgets",
        "DDP: GPUs and nodes",
        "GPUs: precision, data loading, the one-command check",
        "CPU: threads and start-up",
        "SLURM",
        "Resume",
        "Retrain",
        "Distill",
        "Export",
        "Custom search space",
        "Custom data set",
    ]
    results = README.split("\n## Results\n", 1)[1].split("\n## ", 1)[0]
    for script in (
        "fpnas_vs_parsec",
        "step_overhead",
        "memory",
        "throughput",
        "space_stats",
        "ddp_step",
        "threads",
        "startup",
        "ground_truth",
        "search_quality",
    ):
        assert f"benchmarks/{script}.py" in results  # every benchmark's numbers, with its command
    assert "benchmarks/run_all.py" in results
    quickstart = README.split("\n## Quickstart\n", 1)[1].split("\n## ", 1)[0]
    assert "\n### Pictures and summaries\n" in quickstart


def test_ci_extracts_the_test_command_from_the_readme():
    script = (ROOT / ".ci" / "run").read_text()
    awk = script.split("cmd=$(awk '", 1)[1].split("' README.md)", 1)[0]
    cmd = subprocess.run(["awk", awk, str(ROOT / "README.md")], capture_output=True, text=True, check=True).stdout
    want = 'python3 -m venv .venv && .venv/bin/pip install -e ".[dev,export,mlflow]" && .venv/bin/python -m pytest'
    assert cmd.strip() == want
