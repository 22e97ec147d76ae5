"""``python -m fpnas.show``: per-block table whose rows add up to the total, PNG, errors; the
end-of-run summary of train.py."""

import subprocess
import sys
from pathlib import Path

import matplotlib.image
import pytest

from fpnas.space.arch import architecture_from_indices
from fpnas.space.reference import available_references, load_reference
from fpnas.space.rows import block_rows
from fpnas.space.spec import SearchSpace
from fpnas.tools.show import main

from .conftest import random_indices

ROOT = Path(__file__).resolve().parents[1]


def test_rows_add_up_to_the_architecture_total(any_space):
    for idx in random_indices(any_space, 3, seed=5).tolist():
        arch = architecture_from_indices(any_space, idx)
        rows = block_rows(arch.space, arch.indices)
        assert [r["name"] for r in rows] == ["stem", *[f"g{s.group}.b{s.position}" for s in any_space.blocks], "head"]
        assert (sum(r["macs"] for r in rows), sum(r["params"] for r in rows)) == arch.complexity()
    # small spaces: the rows' params total is the built model's parameter count
    arch = architecture_from_indices(any_space, random_indices(any_space, 1, seed=1)[0].tolist())
    if len(any_space.blocks) <= 5:
        assert sum(r["params"] for r in block_rows(arch.space, arch.indices)) == sum(
            p.numel() for p in arch.build().parameters()
        )


@pytest.mark.parametrize("name", available_references())
def test_references_add_up(name):
    arch = load_reference(name)
    assert (
        sum(r["macs"] for r in block_rows(arch.space, arch.indices)),
        sum(r["params"] for r in block_rows(arch.space, arch.indices)),
    ) == arch.complexity()


def _micro_file(tmp_path, indices=None):
    space = SearchSpace.load("micro")
    arch = architecture_from_indices(space, indices or [1] * space.num_decisions)
    return arch, arch.save(tmp_path / "arch.yaml")


def test_table_and_png(tmp_path, capsys):
    arch, path = _micro_file(tmp_path)
    png = tmp_path / "pics" / "arch.png"
    assert main([str(path), "--png", str(png)]) == 0
    out = capsys.readouterr().out
    macs, params = arch.complexity()
    for name in ("stem", "g1.b0", "g1.b1", "g2.b0", "g2.b1", "head", "total"):
        assert name in out
    assert f"{macs / 1e6:.4f}" in out and f"{params:,}" in out  # the footer's totals
    row = next(line for line in out.splitlines() if "g1.b1" in line)  # kernel 3, expansion 3, hswish, SE
    assert [c.strip() for c in row.split("│")[1:9]] == ["g1.b1", "ir", "3", "3", "16→16", "1", "hswish", "SE 12"]
    image = matplotlib.image.imread(png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and image.shape[0] > 100 and image.shape[1] > 300


def test_input_size_changes_the_numbers(tmp_path, capsys):
    arch, path = _micro_file(tmp_path)
    assert main([str(path), "--input-size", "16"]) == 0
    out = capsys.readouterr().out
    macs16, _ = arch.with_data(10, 1, 16).complexity()
    assert macs16 > arch.complexity()[0] and f"{macs16 / 1e6:.4f} MFLOPs" in out and "1x16x16 input" in out


def test_a_skipped_block_shows_as_skip(tmp_path, capsys):
    space = SearchSpace.load("micro")
    idx = [1] * space.num_decisions
    idx[space.decision_index["g2.b1.kernel"]] = 0
    _, path = _micro_file(tmp_path, idx)
    assert main([str(path)]) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if "g2.b1" in line)
    assert "skip" in row and "0.0000" in row and "1 of 4 blocks skipped" in out


@pytest.mark.parametrize(
    "content, message",
    [
        (None, "does not exist"),
        ("space: micro\nchoices: [1, 2\n", "is not valid YAML"),
        ("space: micro\nchoices: {g1.channels: 12}\n", "missing decision(s) ['g1.b0.kernel'"),
        ("VALID g1.channels: 16 -> g1.channels: 12", "g1.channels=12 is not a choice; choices: [8, 16]"),
        ("- 1\n- 2\n", "needs the keys 'space' and 'choices'"),
        ("entries:\n- rank: 1\n", "lists several architectures"),
    ],
)
def test_errors_are_one_line_and_exit_2(tmp_path, capsys, content, message):
    path = tmp_path / "a.yaml"
    if content and content.startswith("VALID "):  # a valid file with one edit
        old, new = content[6:].split(" -> ")
        _, valid = _micro_file(tmp_path)
        content = valid.read_text().replace(old, new)
    if content is not None:
        path.write_text(content)
    assert main([str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0]


def test_a_space_file_points_to_the_space_report(capsys):
    path = ROOT / "conf" / "space" / "micro.yaml"
    assert main([str(path)]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"error: {path} is a search space, not an architecture: print its report with python -m fpnas.space {path}"
    ]


def test_module_entry_point(tmp_path):
    _, path = _micro_file(tmp_path)
    proc = subprocess.run(
        [sys.executable, "-m", "fpnas.show", str(path)], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert proc.returncode == 0 and "total" in proc.stdout and "g2.b1" in proc.stdout
    (tmp_path / "empty").mkdir()
    proc = subprocess.run(
        [sys.executable, "-m", "fpnas.show", str(tmp_path / "empty")],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert (
        proc.stderr.strip() == f"error: {tmp_path / 'empty'} is a directory without an arch.yaml; give an "
        "architecture file"
    )


def test_a_run_directory_shows_its_arch_yaml(tmp_path, capsys):
    arch, _ = _micro_file(tmp_path)
    assert main([str(tmp_path)]) == 0
    assert f"{arch.complexity()[0] / 1e6:.4f} MFLOPs" in capsys.readouterr().out


def test_train_ends_with_a_summary_table(tmp_path, capsys, cfg_train):
    from fpnas.train.run import run_train

    arch, path = _micro_file(tmp_path)
    cfg = cfg_train(
        f"arch={path}",
        "data=digits",
        "trainer.max_epochs=1",
        "+trainer.limit_train_batches=2",
        "+trainer.limit_test_batches=2",
        out=tmp_path / "run",
    )
    summary = run_train(cfg)
    out = capsys.readouterr().out
    assert "trained architecture" in out and "training result" in out and "outputs" in out
    assert f"{summary['test_acc']:.4f}" in out and f"{summary['mflops']:.4g}" in out
    assert str(tmp_path / "run" / "train_summary.json") in out
    assert out.count("training result") == 1


def _render(renderable, width: int) -> str:
    from rich.console import Console

    console = Console(width=width, force_terminal=False, color_system=None)
    with console.capture() as captured:
        console.print(renderable)
    return captured.get()


@pytest.mark.parametrize("name", ["mobilenetv2_100", "efficientnet_b0"])
def test_the_block_table_fits_an_80_column_terminal_without_eliding_a_number(name):
    from fpnas.report.tables import architecture_table

    arch = load_reference(name)
    rows = block_rows(arch.space, arch.indices)
    wide, narrow = _render(architecture_table(arch, title=name), 200), _render(architecture_table(arch, title=name), 80)
    assert "kernel" in wide and "kernel" not in narrow  # the full table where it fits, the compact one in 80
    assert max(len(line) for line in narrow.splitlines()) <= 80 and "…" not in narrow
    for r in rows:  # every block's numbers, whole
        assert f"{r['macs'] / 1e6:.4f}" in narrow and f"{r['params']:,}" in narrow
    assert f"{sum(r['params'] for r in rows):,}" in narrow
    assert "ir k5 e6" in narrow or "ir k3 e6" in narrow  # kernel and expansion, timm's notation


def test_summary_paths_are_whole_in_an_80_column_terminal(tmp_path):
    from fpnas.report.summary import _outputs

    run = tmp_path / ("a_long_directory_name_" * 3) / "2026-12-02" / "14-16-26"
    (run / "checkpoints").mkdir(parents=True)
    for name in ("arch.yaml", "search_summary.json", "checkpoints/last.ckpt"):
        (run / name).write_text("x")
    wide = _render(_outputs(run, "search"), 300)
    assert f"{run / 'checkpoints' / 'last.ckpt'}" in wide
    narrow = _render(_outputs(run, "search"), 80)
    assert "…" not in narrow and max(len(line) for line in narrow.splitlines()) <= 80
    assert str(run) in "".join(line.strip() for line in narrow.splitlines())  # folded, not cut
    assert "arch.yaml  search_summary.json  checkpoints/last.ckpt" in narrow
