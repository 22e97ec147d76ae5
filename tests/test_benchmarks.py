"""Benchmarks: the analytic activation estimate by hand, and every script's --quick mode end to end.

Timings are never asserted (shared, noisy machines); the reports' structure and sanity are.
"""
from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"
sys.path.insert(0, str(BENCH))

from fpnas.space.spec import BlockConfig, SearchSpace  # noqa: E402


def test_block_activation_elements_by_hand():
    from memory import block_activation_elements

    # 8 -> 8 channels, expansion 3 (24), 3x3, stride 1, 4x4 map: expansion conv/BN/act 3*24*16,
    # depthwise conv/BN/act 3*24*16, projection conv/BN 2*8*16, residual sum 8*16
    cfg = BlockConfig(in_chs=8, out_chs=8, mid_chs=24, kernel=3, expansion=3.0, act="relu", se_chs=0, stride=1,
                      in_size=4)
    assert block_activation_elements(cfg) == 1152 + 1152 + 256 + 128
    # stride 2: 4x4 -> 2x2 after the depthwise conv, no residual
    cfg = BlockConfig(in_chs=8, out_chs=8, mid_chs=24, kernel=3, expansion=3.0, act="relu", se_chs=0, stride=2,
                      in_size=4)
    assert block_activation_elements(cfg) == 1152 + 3 * 24 * 4 + 2 * 8 * 4
    skip = BlockConfig(in_chs=8, out_chs=8, mid_chs=8, kernel=0, expansion=1.0, act="relu", se_chs=0, stride=1,
                       in_size=4)
    assert block_activation_elements(skip) == 0


def test_mixed_op_estimate_exceeds_every_single_path():
    from memory import mixed_op_activation_elements, path_activation_elements

    space = SearchSpace.load("tiny")
    g = torch.Generator().manual_seed(0)
    paths = [path_activation_elements(space, [int(torch.randint(s, (1,), generator=g)) for s in space.sizes])
             for _ in range(50)]
    mixed = mixed_op_activation_elements(space)
    assert mixed > 5 * max(paths)  # every block computes 3 x 2 x 2 x 2 = 24 candidates or more


def run_quick(script: str, timeout: int = 600) -> dict:
    subprocess.run([sys.executable, str(BENCH / f"{script}.py"), "--quick"], check=True, cwd=ROOT,
                   capture_output=True, timeout=timeout)
    report = json.loads((BENCH / "results" / f"{script}_quick.json").read_text())
    assert (BENCH / "results" / f"{script}_quick.md").read_text().startswith("| ")
    assert report["quick"] is True
    return report


def test_space_stats_quick():
    rows = {r["space"]: r for r in run_quick("space_stats")["rows"]}
    assert set(rows) == {"micro", "tiny"}
    tiny = rows["tiny"]
    assert tiny["fd_logits"] == sum(SearchSpace.load("tiny").sizes)
    assert tiny["jd_logits"] > tiny["fd_logits"]
    assert tiny["k0"] == math.floor(tiny["entropy_h0_nats"] / 4)


def test_step_overhead_quick():
    report = run_quick("step_overhead")
    row, profile = report["rows"][0], report["profiles"][0]
    assert row["steps"] == 3 and row["k_median"] >= 2
    assert row["search_step_ms"] > 0 and row["standalone_ms"] > 0
    assert 0.2 < row["ratio_median"] < 20  # a broken harness (e.g. timing nothing) lands far outside
    # the profile saw the convolutions of both the search and the plain steps
    assert 0 < profile["conv_search_ms"] < profile["search_total_ms"]
    assert 0 < profile["conv_plain_ms"] < profile["plain_total_ms"]
    assert profile["top_extra"][0]["extra_ms"] >= profile["top_extra"][-1]["extra_ms"]


@pytest.mark.slow
def test_memory_quick():
    rows = run_quick("memory")["rows"]
    assert [r["allocator"] for r in rows] == ["glibc default", "glibc mmap >= 64 KiB"]
    row = rows[0]
    assert row["samples"] >= 2 and row["search_mib"] > 0 and row["alone_mib"] > 0
    assert row["analytic_mixed_op_act_mib"] > row["analytic_path_act_mib"] > 0
    # the super-net holds the largest weights of every choice: at least any one architecture's
    assert row["supernet_state_mib"] >= row["alone_state_mib"] > 0
    assert row["lightning_loop_mib"] >= 0


@pytest.mark.slow
def test_throughput_quick():
    rows = run_quick("throughput")["rows"]
    assert [r["mode"] for r in rows] == ["search", "search + channels_last", "plain argmax",
                                         "plain argmax + channels_last"]
    assert all(r["images_per_s"] > 0 for r in rows)


@pytest.mark.slow
def test_fpnas_vs_parsec_quick():
    report = run_quick("fpnas_vs_parsec", timeout=1200)
    by = {r["setting"]: r for r in report["rows"]}
    assert set(by) == {"parsec", "adaptive_joint", "fpnas", "factorized", "uniform"}
    steps_per_epoch = by["parsec"]["samples"] / 14 / 2
    assert steps_per_epoch == int(steps_per_epoch)  # fixed K = 14 every step of 2 epochs
    assert by["fpnas"]["samples"] < by["parsec"]["samples"]
    assert by["uniform"]["mflops"] <= by["uniform"]["target_mflops"]
    assert all(0 <= r["test_acc"] <= 1 for r in report["rows"])
    assert 0 < report["ratios"]["samples_fpnas_over_parsec"] < 1
