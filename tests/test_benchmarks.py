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
    cfg = BlockConfig(
        in_chs=8, out_chs=8, mid_chs=24, kernel=3, expansion=3.0, act="relu", se_chs=0, stride=1, in_size=4
    )
    assert block_activation_elements(cfg) == 1152 + 1152 + 256 + 128
    # stride 2: 4x4 -> 2x2 after the depthwise conv, no residual
    cfg = BlockConfig(
        in_chs=8, out_chs=8, mid_chs=24, kernel=3, expansion=3.0, act="relu", se_chs=0, stride=2, in_size=4
    )
    assert block_activation_elements(cfg) == 1152 + 3 * 24 * 4 + 2 * 8 * 4
    skip = BlockConfig(
        in_chs=8, out_chs=8, mid_chs=8, kernel=0, expansion=1.0, act="relu", se_chs=0, stride=1, in_size=4
    )
    assert block_activation_elements(skip) == 0


def test_mixed_op_estimate_exceeds_every_single_path():
    from memory import mixed_op_activation_elements, path_activation_elements

    space = SearchSpace.load("tiny")
    g = torch.Generator().manual_seed(0)
    paths = [
        path_activation_elements(space, [int(torch.randint(s, (1,), generator=g)) for s in space.sizes])
        for _ in range(50)
    ]
    mixed = mixed_op_activation_elements(space)
    assert mixed > 5 * max(paths)  # every block computes 3 x 2 x 2 x 2 = 24 candidates or more


def run_quick(script: str, timeout: int = 600) -> dict:
    subprocess.run(
        [sys.executable, str(BENCH / f"{script}.py"), "--quick"],
        check=True,
        cwd=ROOT,
        capture_output=True,
        timeout=timeout,
    )
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
def test_startup_quick():
    """One cold and one warm search.py start on the digits: the phases add up to launch -> first step, the
    probe and search.log's timestamp were found, the cold run wrote the cache and the warm one used it."""
    report = run_quick("startup")
    cold, warm = report["rows"]
    assert (cold["cache"], warm["cache"]) == ("cold", "warm")
    for row in (cold, warm):
        phases = [row[k] for k in ("imports", "config_model", "trainer", "data", "fit_start")]
        assert all(v is not None and v >= 0 for v in phases)
        assert sum(phases) == pytest.approx(row["to_first_step"], abs=1e-3)
        assert 0 < row["to_first_step"] < row["total"] and row["first_step"] > 0
        assert "pytorch_lightning" in row["notable_imports"]
        assert [f.split("-")[0] for f in row["cache_files"]] == ["digits"]
    assert "sklearn.datasets" in cold["notable_imports"] and "sklearn.datasets" not in warm["notable_imports"]


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
    assert [r["mode"] for r in rows] == [
        "search",
        "search + channels_last",
        "plain argmax",
        "plain argmax + channels_last",
    ]
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


# ----------------------------------------------------------------------------- ground truth
FOUR_ARCHS = """
name: four
input_size: 8
in_chans: 1
num_classes: 10
stem: {channels: 4, kernel: 3, stride: 1}
groups:
  - {channels: [4, 8], repeat: 1, stride: 2, expansion: [1], kernel: [3, 5]}
head: {channels: 16}
"""


def _ground_truth(tmp_path, *args):
    cmd = [
        sys.executable,
        str(BENCH / "ground_truth.py"),
        "--space",
        str(tmp_path / "four.yaml"),
        "--data",
        "digits",
        "--seeds",
        "0",
        "1",
        "--budgets",
        "0.02",
        "--out",
        str(tmp_path / "gt.csv"),
        *args,
        "--",
        "train_experiment=ground_truth",
        "trainer.max_epochs=3",
        "recipe.warmup_epochs=0",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


@pytest.mark.slow  # a longer end-to-end run: CI runs it (`pytest -m slow`); the default run stays short
def test_ground_truth_trains_every_architecture_and_restarts_where_it_stopped(tmp_path):
    """A 4-architecture space, real 1-epoch trainings: a first piece of 2 rows, then a restart that
    keeps them as they are and trains only the other 2."""
    from ground_truth import read_rows

    from fpnas.space.complexity import architecture_complexity

    (tmp_path / "four.yaml").write_text(FOUR_ARCHS)
    out = _ground_truth(tmp_path, "--limit", "2")
    assert "4 distinct architectures, 0 done, 2 to train" in out
    first = (tmp_path / "gt.csv").read_text().splitlines()
    assert len(first) == 3  # header + 2 rows
    out = _ground_truth(tmp_path, "--workers", "2")
    assert "4 distinct architectures, 2 done, 2 to train" in out
    lines = (tmp_path / "gt.csv").read_text().splitlines()
    assert lines[:3] == first  # the finished rows are kept byte for byte
    rows = read_rows(tmp_path / "gt.csv")
    space = SearchSpace.load(tmp_path / "four.yaml")
    assert [r["arch_id"] for r in rows] == [0, 1, 2, 3]
    assert {r["arch"] for r in rows} == {f"g1.channels={c} g1.b0.kernel={k}" for c in (4, 8) for k in (3, 5)}
    for r in rows:
        from ground_truth import parse_readable

        macs, params = architecture_complexity(space, parse_readable(space, r["arch"]))
        assert r["mflops"] == pytest.approx(macs / 1e6) and r["params_m"] == pytest.approx(params / 1e6)
        for s in (0, 1):
            assert 0.0 <= r[f"test_acc_s{s}"] <= 1.0 and 0.0 <= r[f"alpha_acc_s{s}"] <= 1.0
        assert r["test_acc_mean"] == pytest.approx((r["test_acc_s0"] + r["test_acc_s1"]) / 2, abs=1e-6)
        assert r["train_s"] > 0
    # three epochs already beat chance (0.1) on the digits
    assert max(r["test_acc_mean"] for r in rows) > 0.2
    report = json.loads((tmp_path / "gt.json").read_text())
    assert (
        report["complete"] and report["architectures"] == 4 and report["train_overrides"][-2] == "trainer.max_epochs=3"
    )
    (budget,) = report["budgets"]
    feasible = [r for r in rows if r["mflops"] <= 0.02]
    assert budget["feasible"] == len(feasible) >= 2
    assert budget["mean_seed_std"] == pytest.approx(sum(r["test_acc_std"] for r in feasible) / len(feasible))


def test_ground_truth_report_measures_whether_the_seeds_agree():
    """Per budget: seed τ is the mean Kendall τ over every pair of seeds, the largest network's percentile
    is the share better than it; a benchmark can rank methods only with τ >= 0.7 and ratio >= 5 everywhere."""
    from ground_truth import budget_report, can_rank_methods, seed_tau

    # 6 architectures: seeds 0 and 1 agree on the order, seed 2 swaps the first two
    accs = [0.90, 0.91, 0.92, 0.93, 0.94, 0.95]
    rows = []
    for i, a in enumerate(accs):
        s = {0: a, 1: a + 0.001, 2: a if i > 1 else accs[1 - i]}
        mean = sum(s.values()) / 3
        std = (sum((v - mean) ** 2 for v in s.values()) / 2) ** 0.5
        rows.append(
            {"arch_id": i, "mflops": 0.1 * (6 - i), "params_m": 0.01, "test_acc_mean": mean, "test_acc_std": std}
            | {f"test_acc_s{k}": v for k, v in s.items()}
        )
    # τ(0,1) = 1; τ(0,2) = τ(1,2) = 1 - 2 * 1 / 15 (one discordant pair of 15)
    assert seed_tau(rows) == pytest.approx((1 + 2 * (1 - 2 / 15)) / 3)
    (b,) = budget_report(rows, [0.45])  # ids 2..5 fit: 0.4, 0.3, 0.2, 0.1 MFLOPs
    assert b["feasible"] == 4 and b["seed_tau"] == pytest.approx(1.0)
    assert b["max_mflops_percentile"] == pytest.approx(75.0)  # the largest (id 2, 0.92) has 3 better
    (everything,) = budget_report(rows, [0.65])  # all 6 fit; seed 2's swap is in the worse half
    assert everything["seed_tau"] == pytest.approx(seed_tau(rows)) and everything["seed_tau"] < 1
    assert everything["seed_tau_top_half"] == pytest.approx(1.0)  # ids 3, 4, 5: every seed agrees
    assert can_rank_methods([b | {"ratio": 6.0}]) and not can_rank_methods([b | {"ratio": 4.0}])
    assert not can_rank_methods([b | {"seed_tau": 0.69, "ratio": 6.0}]) and not can_rank_methods([])


@pytest.mark.slow  # a longer end-to-end run: CI runs it (`pytest -m slow`); the default run stays short
def test_ground_truth_refuses_a_table_made_with_other_settings(tmp_path):
    (tmp_path / "four.yaml").write_text(FOUR_ARCHS)
    _ground_truth(tmp_path, "--limit", "1")
    cmd = [
        sys.executable,
        str(BENCH / "ground_truth.py"),
        "--space",
        str(tmp_path / "four.yaml"),
        "--data",
        "digits",
        "--seeds",
        "0",
        "1",
        "--out",
        str(tmp_path / "gt.csv"),
        "--",
        "train_experiment=ground_truth",
        "trainer.max_epochs=2",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode != 0 and "was made with other settings" in proc.stderr
    assert len((tmp_path / "gt.csv").read_text().splitlines()) == 2  # untouched


def test_search_quality_scores_against_the_table_and_random_search_matches_compute():
    """Percentile, regret and over-target from the ground-truth table; random search draws as many
    architectures as one FP-NAS search's fit time buys, and picks the best by its own α accuracy."""
    from search_quality import baseline_rows, lookup

    space = SearchSpace.load("bench_mnist")
    from ground_truth import distinct_architectures, readable

    archs = distinct_architectures(space)[:10]
    gt = [
        {
            "arch_id": i,
            "arch": readable(space, a),
            "mflops": 0.05 + 0.01 * i,
            "params_m": 0.01 + 0.001 * ((3 * i) % 10),
            "test_acc_mean": 0.90 + 0.005 * i,
            "alpha_acc_s0": 0.80 + 0.01 * ((7 * i) % 10),
            "alpha_acc_s1": 0.5,
            "alpha_acc_s2": 0.5,
        }
        for i, a in enumerate(archs)
    ]
    found = lookup(gt, space, archs[5], budget=0.125)  # 8 archs under 0.125: ids 0..7
    assert found["arch_id"] == 5 and not found["over_target"]
    assert found["percentile"] == pytest.approx(100 * 2 / 8)  # ids 6 and 7 are better
    assert found["regret"] == pytest.approx(0.935 - 0.925)
    over = lookup(gt, space, archs[9], budget=0.125)
    assert over["over_target"] and over["percentile"] == 0.0
    rows = [
        {"setting": "fpnas", "budget_mflops": 0.125, "seed": 0, "fit_time_s": 50.0},
        *({"setting": "calibration", "budget_mflops": 0.125, "train_s": t} for t in (9.0, 10.0, 11.0)),
    ]
    out = baseline_rows({"data": "mnist5k", "space": "bench_mnist"}, gt, 0.125, [0], rows, [0, 1, 2])
    search = next(r for r in out if r["setting"] == "random_search")
    assert search["samples"] == 5 and search["wall_time_s"] == pytest.approx(50.0)  # 5 trainings of 10 s
    assert not search["over_target"] and search["arch_mflops"] <= 0.125
    import random

    drawn = random.Random("mnist5k-0.125-0").sample([g for g in gt if g["mflops"] <= 0.125], 5)
    assert search["arch_id"] == max(drawn, key=lambda g: g["alpha_acc_s0"])["arch_id"]  # seed 0 -> its training 0
    random_arch = next(r for r in out if r["setting"] == "random_arch")
    assert random_arch["samples"] == 1 and random_arch["arch_mflops"] <= 0.125


def test_zero_compute_picks_are_the_largest_that_fit():
    """max_mflops, max_params and scaled_uniform pick from the table alone: the largest MFLOPs under the
    budget, the largest params under it, and the largest same-relative-choice architecture under it."""
    from ground_truth import distinct_architectures, readable
    from search_quality import baseline_rows, uniform_scaling, zero_compute_picks

    from fpnas.space.arch import architecture_from_indices

    space = SearchSpace.load("bench_mnist")
    gt = []
    for i, idx in enumerate(distinct_architectures(space)):
        macs, params = architecture_from_indices(space, idx).complexity()
        gt.append({"arch_id": i, "arch": readable(space, idx), "mflops": macs / 1e6, "params_m": params / 1e6})
        gt[-1] |= {"test_acc_mean": 0.9 + 0.0001 * i, "alpha_acc_s0": 0.5}
    assert uniform_scaling(space, 0.0) == [0] * space.num_decisions  # the smallest choice of every decision
    largest = uniform_scaling(space, 1.0)
    assert [space.decisions[d].choices[i] for d, i in enumerate(largest)] == [max(d.choices) for d in space.decisions]
    budget = 0.17
    picks = zero_compute_picks(space, gt, budget)
    feasible = [r for r in gt if r["mflops"] <= budget]
    assert picks["max_mflops"]["mflops"] == max(r["mflops"] for r in feasible)
    assert picks["max_params"]["params_m"] == max(r["params_m"] for r in feasible)
    su = picks["scaled_uniform"]
    assert su["mflops"] <= budget < max(r["mflops"] for r in gt)
    # it is on the uniform path, and the next step up that path leaves the budget
    path = [readable(space, uniform_scaling(space, r / 100)) for r in range(101)]
    assert su["arch"] in path
    rows = [
        {"setting": "fpnas", "budget_mflops": budget, "seed": 0, "fit_time_s": 50.0},
        {"setting": "calibration", "budget_mflops": budget, "train_s": 10.0},
    ]
    out = baseline_rows({"data": "mnist5k", "space": "bench_mnist"}, gt, budget, [0], rows, [0, 1, 2])
    zero = {r["setting"]: r for r in out if r["samples"] == 0}
    assert set(zero) == {"max_mflops", "max_params", "scaled_uniform"}
    assert all(r["fit_time_s"] == 0 and not r["over_target"] for r in zero.values())
    assert zero["max_mflops"]["arch_id"] == picks["max_mflops"]["arch_id"]


@pytest.mark.slow
def test_latency_lut_quick():
    """The table of micro, 8 random architectures measured end to end: the report's rows and their
    numbers are sane (the accuracy targets are for the full run on an idle machine, not asserted)."""
    (row,) = run_quick("latency_lut")["rows"]
    assert (row["space"], row["device"], row["n_archs"], row["block_entries"]) == ("micro", "cpu", 8, 136)
    assert -1 <= row["pearson_r"] <= 1 and row["mape_pct"] >= 0 and row["measured_ms_min"] > 0
    table = json.loads((ROOT / row["table"]).read_text())
    assert table["complete"] and table["key"]["statistic"] == "minimum over calls" and table["rounds"] == 2


def test_family_search_compares_each_target_with_its_separate_search_and_times_both():
    import family_search

    def row(kind, targets, seed, pcts, seconds):
        picks = [{"percentile": p, "arch_mflops": t * 0.9, "over_target": False} for p, t in zip(pcts, targets)]
        return {"kind": kind, "targets": list(targets), "seed": seed, "picks": picks, "process_s": seconds}

    family = family_search.FAMILIES["mnist5k"][3]
    rows = []
    for seed, (f_pcts, s_pcts) in enumerate(
        [([10.0, 0.0, 4.0], [20.0, 2.0, 4.0]), ([30.0, 2.0, 6.0], [20.0, 0.0, 2.0])]
    ):
        rows.append(row("family", family, seed, f_pcts, 90.0 + seed * 30))
        rows += [row("single", (t,), seed, [p], 60.0) for t, p in zip(family, s_pcts)]
    (summary,) = family_search.summarize(rows, "mnist5k")  # no 5-target rows: that size is left out
    assert summary["size"] == 3 and summary["seeds"] == [0, 1]
    assert summary["family_per_search"] == pytest.approx((1.5 + 2.0) / 2)  # 90 / 60 and 120 / 60
    assert summary["speedup_vs_separate"] == pytest.approx((2.0 + 1.5) / 2)  # 180 / 90 and 180 / 120
    first = summary["per_target"][0]
    assert first["family_pct"] == 20.0 and first["separate_pct"] == 20.0 and first["diff"] == 0.0
    assert first["diff_se"] == pytest.approx(20.0 / 2**0.5 / 2**0.5)  # diffs -10, +10: stdev 14.14 / sqrt 2
    assert summary["per_target"][2]["diff"] == 2.0 and summary["over_target"] == 0


def test_seed_tau_pilot_measures_agreement_spread_and_noise_on_the_same_architectures():
    import seed_tau_pilot

    # four architectures, two seeds: seed 1 swaps the two middle ones (one discordant pair of six)
    rows = [
        {"test_acc_s0": 0.80, "test_acc_s1": 0.80},
        {"test_acc_s0": 0.85, "test_acc_s1": 0.87},
        {"test_acc_s0": 0.86, "test_acc_s1": 0.84},
        {"test_acc_s0": 0.90, "test_acc_s1": 0.90},
    ]
    got = seed_tau_pilot.agreement(rows, [0, 1])
    assert got["seed_tau"] == pytest.approx((5 - 1) / 6)
    assert got["seed_std"] == pytest.approx((0 + 0.02**0.5 * 0.1 + 0.02**0.5 * 0.1 + 0) / 4, rel=1e-6)
    assert got["spread"] == pytest.approx(0.90 - 0.80)  # P90 and P10 of four means: the last and the first
    assert got["ratio"] == pytest.approx(got["spread"] / got["seed_std"])
    assert seed_tau_pilot.seed_columns({"test_acc_s0": 1, "test_acc_std": 0, "test_acc_s12": 1}) == [0, 12]


def test_tight_targets_summary_pairs_the_settings_per_target():
    import tight_targets

    def row(setting, target, seed, test_acc, restored, lost=False):
        selection = "the cheapest architecture: none of the 100000 most probable" if lost else "the largest of ..."
        return {
            "setting": setting,
            "target_mflops": target,
            "seed": seed,
            "arch_mflops": target * 0.9,
            "argmax_mflops": target * 1.1,
            "alpha_acc": test_acc - 0.01,
            "test_acc": test_acc,
            "restored_steps": restored,
            "selection": selection,
        }

    rows = [row("restore", 0.3, 0, 0.95, 300), row("restore", 0.3, 1, 0.93, 200)]
    rows += [row("eq7", 0.3, 0, 0.40, 0, lost=True), row("eq7", 0.3, 1, 0.90, 0)]
    rows += [{"setting": "cheapest", "seed": s, "arch_mflops": 0.2, "test_acc": a} for s, a in ((0, 0.9), (1, 0.92))]
    cheapest, eq7, restore = tight_targets.summarize(rows)
    assert (cheapest["setting"], eq7["setting"], restore["setting"]) == ("cheapest", "eq7", "restore")
    assert cheapest["test_acc"] == pytest.approx(0.91) and cheapest["test_acc_min"] == 0.9 and cheapest["seeds"] == 2
    assert restore["test_acc"] == pytest.approx(0.94) and restore["test_acc_min"] == 0.93
    assert restore["restored_steps"] == 250 and restore["target_lost"] == 0
    assert eq7["test_acc"] == pytest.approx(0.65) and eq7["target_lost"] == 1 and eq7["seeds"] == 2
