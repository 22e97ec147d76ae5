"""The paper's spaces (docs/method.md) and the space report command."""

import math

import pytest

from fpnas.space.spec import SearchSpace
from fpnas.tools.space import main, space_statistics

PAPER_SPACES = ("fbnetv2_f", "fbnetv2_f_fine", "fbnetv2_f_pp", "fpnas_l0", "fpnas_l1", "fpnas_l2")


def test_every_paper_space_ships():
    assert set(PAPER_SPACES) <= set(SearchSpace.available())


def test_fbnetv2_f_follows_table_1():
    space = SearchSpace.load("fbnetv2_f")
    assert [len(slot.out_channels) for slot in space.blocks] == [2, 3, 3, 3, 4, 4, 4, 5, 5, 5, 6, 6, 6, 10, 10, 10, 10]
    assert [g[-1] for g in space.group_channels] == [16, 24, 24, 40, 40, 80, 80, 112, 184, 184]
    # one width decision per block, chained: a block's input width is the previous block's
    assert space.channels_per == "block"
    assert [s.out_decision for s in space.blocks] == [f"g{s.group}.b{s.position}.channels" for s in space.blocks]
    assert [s.in_decision for s in space.blocks] == [None] + [s.out_decision for s in space.blocks[:-1]]
    assert [slot.stride for slot in space.blocks].count(2) == 4 and space.final_size == 7
    assert space.head_channels == 1984 and space.stem_channels == 16
    kinds = {d.kind for d in space.decisions}
    assert kinds == {"channels", "kernel", "expansion", "act", "se"}
    assert {d.choices for d in space.decisions if d.kind == "expansion"} == {(0.75, 1.5, 2.25, 3.0, 3.75, 4.5)}


def test_fbnetv2_f_pp_searches_the_number_of_splits():
    space = SearchSpace.load("fbnetv2_f_pp")
    splits = [d for d in space.decisions if d.kind == "splits"]
    assert len(splits) == 17 and all(d.choices == (0, 1, 2, 4) for d in splits)
    assert not [d for d in space.decisions if d.kind == "se"]


def test_joint_distribution_has_an_order_of_magnitude_more_logits():
    # FD vs JD logits (the paper: "over an order of magnitude", 720 vs 23 for one block; FBNetV2-F ~6.8K vs ~311)
    stats = {name: space_statistics(SearchSpace.load(name), samples=10) for name in PAPER_SPACES}
    assert all(s["jd_fd_ratio"] >= 20 for s in stats.values()), {n: s["jd_fd_ratio"] for n, s in stats.items()}
    # by hand, per block (channels * kernel * expansion * act * SE): groups 1..10 of Table 1 with
    # kernel {0,3,5} on every stride-1 block, {3,5} at stride 2 and in group 1
    jd = (
        2 * 2 * 1 * 2 * 2
        + 3 * 2 * 6 * 2 * 2
        + 2 * 3 * 3 * 6 * 2 * 2
        + 4 * 2 * 6 * 2 * 2
        + 2 * 4 * 3 * 6 * 2 * 2
        + 5 * 2 * 6 * 2 * 2
        + 2 * 5 * 3 * 6 * 2 * 2
        + 3 * 6 * 3 * 6 * 2 * 2
        + 10 * 2 * 6 * 2 * 2
        + 3 * 10 * 3 * 6 * 2 * 2
    )
    fd = (
        (2 + 2 + 2 + 2)
        + (3 + 2 + 6 + 2 + 2)
        + 2 * (3 + 3 + 6 + 2 + 2)
        + (4 + 2 + 6 + 2 + 2)
        + 2 * (4 + 3 + 6 + 2 + 2)
        + (5 + 2 + 6 + 2 + 2)
        + 2 * (5 + 3 + 6 + 2 + 2)
        + 3 * (6 + 3 + 6 + 2 + 2)
        + (10 + 2 + 6 + 2 + 2)
        + 3 * (10 + 3 + 6 + 2 + 2)
    )
    assert (stats["fbnetv2_f"]["jd_logits"], stats["fbnetv2_f"]["fd_logits"]) == (jd, fd) == (6256, 306)


@pytest.mark.parametrize(
    "name, blocks, size, median", [("fpnas_l0", 27, 224, 390), ("fpnas_l1", 32, 240, 900), ("fpnas_l2", 32, 256, 1100)]
)
def test_reconstructed_large_spaces_match_the_paper_medians(name, blocks, size, median):
    stats = space_statistics(SearchSpace.load(name), samples=1000)
    assert (stats["blocks"], stats["input_size"]) == (blocks, size)
    assert abs(stats["mflops_uniform_median"] / median - 1) <= 0.10


def test_initial_entropy_and_k0():
    stats = space_statistics(SearchSpace.load("fbnetv2_f"), samples=10)
    assert stats["entropy_h0_nats"] == pytest.approx(stats["log10_architectures"] * math.log(10), abs=0.02)
    assert stats["k0"] == math.floor(0.25 * stats["entropy_h0_nats"]) == 24


def test_report_command(capsys):
    assert main(["tiny"]) == 0
    out = capsys.readouterr().out
    assert "logits FD / JD       49 / 172" in out and "K0 = 4 at lambda = 0.25" in out
    assert "(channels per group)" in out
    assert main(["--all", "--samples", "20"]) == 0
    table = capsys.readouterr().out
    assert all(f"| {name} |" in table for name in SearchSpace.available())
    assert "| fbnetv2_f | 224 | 17 | block | 41.89 | 306 | 6256 | 20.44 |" in table
    assert main(["nope"]) == 2
    assert "unknown search space 'nope'" in capsys.readouterr().err


def test_report_of_an_architecture_files_space(tmp_path, capsys):
    from fpnas.space.arch import architecture_from_indices
    from fpnas.space.reference import REFERENCE_DIR

    assert main(["micro", "--samples", "20"]) == 0
    micro_report = capsys.readouterr().out
    space = SearchSpace.load("micro")
    path = architecture_from_indices(space, [1] * space.num_decisions).save(tmp_path / "arch.yaml")
    for given in (path, tmp_path):  # the file, or its run directory
        assert main([str(given), "--samples", "20"]) == 0
        first, rest = capsys.readouterr().out.split("\n", 1)
        assert first == f"space 'micro' of architecture file {path} (space: micro)" and rest == micro_report
    # a reference name: its inline space, one architecture
    assert main(["fbnetv2_f1", "--samples", "5"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert (
        out[0]
        == f"space 'fbnetv2_f1' of architecture file {REFERENCE_DIR / 'fbnetv2_f1.yaml'} (written inline in the file)"
    )
    assert "0 decisions" in out[1] and "logits FD / JD       0 / 0  (no decisions: every variable is fixed)" in out
    assert "MFLOPs (exact)       min 55.57  max 55.57" in out
    (tmp_path / "empty").mkdir()
    assert main([str(tmp_path / "empty")]) == 2
    assert "is a directory without an arch.yaml" in capsys.readouterr().err
