"""One search for a family of budgets: ``cost.target_mflops=[a,b]`` trains one super-net with one
distribution per target (fpnas.search.module.Member), writes each member's results into ``target_<i>/``
and the family's table and picture at the top, and resumes like a single search."""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from fpnas.cost.checks import budget_targets
from fpnas.cost.constraint import Constraint, split_targets
from fpnas.cost.metrics import Flops, Params
from fpnas.errors import ConfigError
from tests.helpers import clean_env
from tests.test_resume import assert_same_search, kill_at, logged_steps, state

ROOT = Path(__file__).resolve().parents[1]
# 4 epochs of 11 steps on the digits; the joint distribution from epoch 2 (step 22) on
RUN = [
    "data=digits",
    "space=micro",
    "cost.target_mflops=[0.05,0.1]",
    "trainer.max_epochs=4",
    "search.warmup_epochs=1",
    "distribution.switch_epoch=2",
    "trainer.enable_progress_bar=false",
    "callbacks.search_plots.every_n_epochs=0",
    "callbacks.checkpoint.every_n_steps=5",
]
CLEAN_ENV = clean_env(OMP_NUM_THREADS="1")


def run(program: str, run_dir: Path, *overrides: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / program), f"hydra.run.dir={run_dir}", *overrides],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=CLEAN_ENV,
        timeout=600,
    )


@pytest.fixture(scope="module")
def straight(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("family")
    proc = run("search.py", run_dir, *RUN)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return run_dir


# ----------------------------------------------------------------------------- the targets
def test_a_list_of_targets_gives_one_single_target_constraint_per_member():
    flops = Constraint(Flops(), [0.3, 0.6], 0.75, 0.0, "cost")
    params = Constraint(Params(), 0.5, 0.2, 0.0, "cost.params")
    members = split_targets([flops, params])
    assert [[c.target for c in m] for m in members] == [[0.3, 0.5], [0.6, 0.5]]  # one cap serves every member
    assert [m[0].limit for m in members] == [0.3e6, 0.6e6]
    assert flops.to_dict()["target"] == [0.3, 0.6] and members[1][0].to_dict()["target"] == 0.6
    with pytest.raises(ValueError, match="several targets"):
        flops.target  # noqa: B018 - a family's constraint has no single target
    assert [[c.target for c in m] for m in split_targets([params])] == [[0.5]]  # one target: one member


@pytest.mark.parametrize(
    "target, message",
    [
        ([], r"cost.target_mflops=\[\] names no target"),
        ([0.3, 0.3], "0.3 is listed twice"),
        ([0.3, -1], r"cost.target_mflops\[1\]=-1 is invalid: it must be a number > 0"),
        ([0.3, "a"], r"cost.target_mflops\[1\]=.a. is invalid"),
    ],
)
def test_a_bad_list_of_targets_is_refused_by_its_key(target, message):
    with pytest.raises(ConfigError, match=message):
        budget_targets("cost.target_mflops", target)


def test_lists_of_targets_of_different_lengths_are_refused():
    flops = Constraint(Flops(), [0.3, 0.6], 0.75, 0.0, "cost")
    params = Constraint(Params(), [0.5, 0.6, 0.7], 0.2, 0.0, "cost.params")
    with pytest.raises(ConfigError, match="one length.*cost.target_mflops has 2, cost.params.target_mparams has 3"):
        split_targets([flops, params])


def test_a_bad_list_fails_before_any_work(tmp_path):
    proc = run("search.py", tmp_path / "run", "data=digits", "space=micro", "cost.target_mflops=[0.05,0.05]")
    assert proc.returncode == 2
    assert "cost.target_mflops=[0.05, 0.05]: 0.05 is listed twice" in proc.stderr
    assert not (tmp_path / "run").exists()


# ----------------------------------------------------------------------------- a family search end to end
def test_each_member_gets_what_a_search_writes_and_the_family_its_table_and_picture(straight):
    top = json.loads((straight / "search_summary.json").read_text())
    assert top["family_size"] == 2 and top["epochs"] == 4 and top["steps"] == 44
    assert top["targets_mflops"] == [0.05, 0.1]
    with open(straight / "family_summary.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [float(r["target_mflops"]) for r in rows] == [0.05, 0.1]
    assert (straight / "family.png").stat().st_size > 10_000
    for i, target in enumerate((0.05, 0.1)):
        member = json.loads((straight / f"target_{i}" / "search_summary.json").read_text())
        assert member["target_index"] == i and member["target_mflops"] == target
        assert member["arch_mflops"] <= target  # every member within its own budget
        assert member == top["members"][i]
        assert float(rows[i]["arch_mflops"]) == member["arch_mflops"]
        assert (straight / f"target_{i}" / "arch.yaml").is_file()
        assert {p.name for p in (straight / f"target_{i}" / "plots").iterdir()} == {
            "probabilities.png",
            "entropy_k.png",
            "mflops.png",
        }
    assert not (straight / "arch.yaml").exists()  # which one would it be?
    # the members took turns: each sampled on half of the steps; their distributions moved apart
    alphas = [state(straight)["state_dict"][f"members.{i}.distribution.alpha"] for i in range(2)]
    assert not torch.equal(alphas[0], alphas[1])
    header = (straight / "csv" / "metrics.csv").read_text().splitlines()[0].split(",")
    for key in ("val/acc/target_0", "val/acc/target_1", "search/target_1/entropy", "prob/target_0/g1.b0.kernel/3"):
        assert key in header, key


def test_a_member_retrains_with_train_py_as_a_search_result_does(straight, tmp_path):
    member = json.loads((straight / "target_1" / "search_summary.json").read_text())
    proc = run("train.py", tmp_path, f"arch={straight / 'target_1' / 'arch.yaml'}", "data=digits", "dry_run=true")
    assert proc.returncode == 0, proc.stderr[-3000:]
    mflops = float(re.search(r"dry run: ([0-9.]+) MFLOPs", proc.stdout).group(1))
    assert mflops == pytest.approx(member["arch_mflops"], abs=1e-4)


def test_a_family_search_cut_by_sigterm_resumes_bit_for_bit(straight, tmp_path):
    """SIGTERM at step 27 (after the FD -> JD switch, member 1's turn): ``ckpt_path=last`` continues it and
    ends with the tensors, every member's architecture and the metric history of the uninterrupted run."""
    proc = run("search.py", tmp_path, *RUN, *kill_at(27, "SIGTERM"))
    assert proc.returncode == 143, proc.stderr[-3000:]
    saved = state(tmp_path)
    assert int(saved["state_dict"]["steps_done"]) == 27 and saved["fpnas"]["phase"] == "joint"
    assert len(saved["optimizer_states"]) == 3  # ω and one α per member
    proc = run("search.py", tmp_path, "ckpt_path=last", "~callbacks.kill")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert_same_search(straight, tmp_path, arch_files=("target_0/arch.yaml", "target_1/arch.yaml"))
    assert logged_steps(tmp_path) == logged_steps(straight)
    assert (tmp_path / "family_summary.csv").read_text().replace(str(tmp_path), "") == (
        straight / "family_summary.csv"
    ).read_text().replace(str(straight), "")


@pytest.mark.slow  # two DDP runs: CI runs it (`pytest -m slow`); the default run stays short
def test_a_family_search_on_two_processes_is_the_search_on_one(tmp_path):
    """Every member's α and the shared weights after 2 epochs on 2 processes (batches of 16) equal those of
    1 process (batches of 32), as for a single target (tests/test_ddp.py)."""
    from tests.helpers import MICRO, QUICK_SEARCH
    from tests.test_ddp import _assert_same_search, _state

    short = [*MICRO, "trainer.max_epochs=2", *QUICK_SEARCH, "search.sync_bn=true", "cost.target_mflops=[0.05,0.1]"]
    one = run("search.py", tmp_path / "one", *short, "data.batch_size=32")
    assert one.returncode == 0, one.stderr[-3000:]
    two = run("search.py", tmp_path / "two", *short, "trainer=ddp_cpu", "data.batch_size=16")
    assert two.returncode == 0, two.stderr[-3000:]
    a, b = _state(tmp_path / "one"), _state(tmp_path / "two")
    _assert_same_search(a, b)  # member 0 and the weights
    a["members.0.distribution.alpha"], b["members.0.distribution.alpha"] = (
        a["members.1.distribution.alpha"],
        b["members.1.distribution.alpha"],
    )
    _assert_same_search(a, b)  # member 1
    # the final picks are not compared: they are scored with batch statistics (16 vs 32 images per batch)
    for run_dir in (tmp_path / "one", tmp_path / "two"):
        members = json.loads((run_dir / "search_summary.json").read_text())["members"]
        assert [m["arch_mflops"] <= m["target_mflops"] for m in members] == [True, True]


def test_a_family_job_of_a_sweep_gives_one_sweep_row_per_member(straight, tmp_path):
    import shutil

    from fpnas.report.sweep import write_sweep_summary

    shutil.copytree(straight, tmp_path / "0")
    rows = write_sweep_summary(tmp_path)
    assert [r["target_mflops"] for r in rows] == [0.05, 0.1]
    assert [Path(r["run_dir"]).name for r in rows] == ["target_0", "target_1"]
    with open(tmp_path / "sweep_summary.csv", newline="") as f:
        assert len(list(csv.DictReader(f))) == 2
    assert (tmp_path / "pareto.png").is_file()
