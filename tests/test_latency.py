"""Latency look-up tables and the cost interface: tables against direct evaluation, the key refusal,
two constraints at once, the feasible export under both against brute force, and cost=flops
giving the search it gave before constraints were objects."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest
import torch

from fpnas.cost.constraint import Constraint
from fpnas.cost.latency import LatencyTable, load_table, space_key
from fpnas.cost.metrics import Flops, Latency, Params
from fpnas.errors import ConfigError
from fpnas.search.distribution import ArchDistribution
from fpnas.search.topk import top_architectures
from fpnas.space.complexity import ComplexityTables, architecture_complexity
from fpnas.space.spec import SearchSpace
from fpnas.tools.latency import Timing, build_table, distinct_block_configs
from tests.helpers import MICRO, PLAIN_SEARCH, ROOT, compose_config, quick_search, search_module


def synthetic_table(space: SearchSpace, path) -> LatencyTable:
    """A complete table with made-up but plausible entries: depthwise work, plus a fixed price for
    swish / h-swish and SE that costs no MACs (what a measured table shows and FLOPs miss)."""
    from fpnas.cost.latency import _config_key

    key = space_key(space) | {
        "batch": 1,
        "device": "cpu",
        "device_name": "synthetic",
        "dtype": "float32",
        "torch": torch.__version__,
        "threads": 1,
        "channels_last": False,
    }
    table = LatencyTable(key, stem_ms=0.1, overhead_ms=0.05, complete=True)
    for cfg in distinct_block_configs(space):
        ms = 1e-3 * cfg.mid_chs * max(cfg.kernel, 1) ** 2 + (0.3 if cfg.act != "relu" else 0.0) + 0.2 * bool(cfg.se_chs)
        table.blocks[_config_key(cfg)] = ms
    widths = space.decisions[space.decision_index[space.last_channel_decision]].choices
    table.head_ms = {int(w): 0.002 * w for w in widths}
    table.save(path)
    return table


@pytest.fixture(scope="module")
def micro():
    return SearchSpace.load("micro")


@pytest.fixture
def micro_table(micro, tmp_path):
    return synthetic_table(micro, tmp_path / "micro.json")


def micro_space():
    return SearchSpace.load("micro").with_num_classes(10, 1)  # as the digits data module fits it


def _random(space, n, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.stack([torch.randint(s, (n,), generator=g) for s in space.sizes], 1)


# ----------------------------------------------------------------------------- tables vs direct evaluation
def test_flops_and_params_tables_equal_direct_evaluation():
    space = SearchSpace.load("tiny")
    archs = _random(space, 200)
    complexity = ComplexityTables(space)
    flops, params = Flops().table(space, complexity), Params().table(space, complexity)
    direct = [architecture_complexity(space, a.tolist()) for a in archs]
    assert flops.lookup(archs).tolist() == [float(m) for m, _ in direct]  # exact: integer counts in float64
    assert params.lookup(archs).tolist() == [float(p) for _, p in direct]


def test_latency_table_equals_the_sum_of_its_own_entries(micro, micro_table, tmp_path):
    table = Latency(micro_table.path).table(micro)
    archs = _random(micro, 300, seed=1)
    got = table.lookup(archs)
    want = torch.tensor([micro_table.predict(micro, a.tolist()) for a in archs], dtype=torch.float64)
    assert torch.allclose(got, want, rtol=0, atol=1e-12)
    # the nonlinearity is a dimension of the latency table (it costs no MACs): relu vs h-swish in block 1
    idx = archs[0].clone()
    idx[micro.decision_index["g1.b1.kernel"]] = 1  # a 3x3 block, not a skip
    act = micro.decision_index["g1.b1.act"]
    idx[act] = 0
    relu = float(table.lookup(idx)[0])
    idx[act] = 1
    assert float(table.lookup(idx)[0]) - relu == pytest.approx(0.3, abs=1e-12)
    lo, hi = table.value_range()  # exact extremes over the whole space (dynamic programming)
    every = torch.cartesian_prod(*[torch.arange(n) for n in micro.sizes])
    values = table.lookup(every)
    assert (lo, hi) == (float(values.min()), float(values.max()))


def test_a_table_for_another_space_or_an_unfinished_one_is_refused(micro, micro_table, tmp_path):
    bigger = SearchSpace(dict(micro.spec, input_size=16), name="micro")
    with pytest.raises(ConfigError, match="was measured for another space .input_size=8; this search: input_size=16."):
        Latency(micro_table.path).table(bigger)
    with pytest.raises(ConfigError, match="num_classes=10; this search: num_classes=3"):
        Latency(micro_table.path).table(micro.with_num_classes(3))
    with pytest.raises(ConfigError, match="another space .spec_sha256=a8740796abba9fbb; this search: spec_sha256="):
        Latency(micro_table.path).table(SearchSpace(dict(micro.spec, se_gate="hard_sigmoid"), name="micro"))
    micro_table.complete = False
    micro_table.save(tmp_path / "partial.json")
    with pytest.raises(ConfigError, match="is incomplete .an interrupted build.: run the same"):
        Latency(tmp_path / "partial.json").table(micro)
    with pytest.raises(ConfigError, match="no such file"):
        load_table(tmp_path / "missing.json", "cost.latency.table")
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(ConfigError, match="is not an fpnas latency table"):
        load_table(tmp_path / "bad.json", "cost.latency.table")


def test_a_build_measures_every_entry_in_each_round_and_continues_an_interrupted_one(micro, tmp_path, monkeypatch):
    calls = []

    def fake_ms(self, module, x, run_time=None):  # every call faster than the one before
        calls.append(tuple(x.shape))
        return 1.0 / len(calls)

    monkeypatch.setattr(Timing, "ms", fake_ms)
    monkeypatch.setattr("fpnas.tools.latency.PASS_SPACING_S", 0.0)  # no waiting between the calibration's passes
    out = tmp_path / "t.json"
    table = build_table(micro, Timing(), out, calibration=2, rounds=2, progress=False)
    n_blocks = len(distinct_block_configs(micro))
    assert n_blocks == 136 and len(table.blocks) == n_blocks and table.complete
    n_entries = 1 + 3 + n_blocks  # stem, a head per last width, blocks
    assert len(calls) == 2 * n_entries + 5 * 2  # two rounds; the calibration: 5 passes over 2 networks
    assert set(table.measured.values()) == {2}
    assert table.stem_ms == 1 / (n_entries + 1)  # the stem's second measurement, the smaller one
    # the overhead term is the calibration networks' median gap to the sum of their entries
    gaps = sorted(c["measured_ms"] - c["sum_ms"] for c in table.calibration)
    assert table.overhead_ms == pytest.approx(gaps[1]) and len(gaps) == 2
    doc = json.loads(out.read_text())
    keep = {json.dumps(b["config"], sort_keys=True) for b in doc["blocks"][:100]}
    doc["measured"] = {k: (v if k in keep or not k.startswith("{") else 1) for k, v in doc["measured"].items()}
    doc["complete"] = False  # interrupted in the second round, after 100 blocks
    out.write_text(json.dumps(doc))
    calls.clear()
    build_table(micro, Timing(), out, calibration=2, rounds=2, progress=False)
    assert len(calls) == 36 + 5 * 2 and load_table(out).complete


def test_timing_measures_a_real_module():
    ms = Timing(min_run_time=0.001).ms(torch.nn.Conv2d(8, 8, 3), torch.randn(1, 8, 16, 16))
    assert 0 < ms < 1000


@pytest.mark.slow  # a longer end-to-end run: CI runs it (`pytest -m slow`); the default run stays short
def test_build_command_line_writes_a_complete_table_and_rejects_bad_options(tmp_path):
    out = tmp_path / "micro.json"
    cmd = [sys.executable, "-m", "fpnas.latency", "build", *MICRO[:2], "min_run_time=0.001", "calibration=1"]
    proc = subprocess.run([*cmd, f"out={out}"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    table = load_table(out)
    assert table.complete and len(table.blocks) == 136 and table.key["threads"] == 1 and table.key["batch"] == 1
    assert f"cost.latency.table={out}" in proc.stdout
    proc = subprocess.run([*cmd, "batch=0"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and proc.stderr.strip().splitlines()[-1] == "error: batch=0 must be an integer >= 1"


# ----------------------------------------------------------------------------- several constraints
def _under_both(space, dist, flops_limit, latency_table, latency_limit):
    """Brute force: the most probable architecture under both limits."""
    every = torch.cartesian_prod(*[torch.arange(n) for n in space.sizes])
    logp = torch.log_softmax(dist.masked_logits().double(), dim=1)
    lp = logp.gather(1, dist.encode(every).T).sum(0)
    ok = (ComplexityTables(space).macs.lookup(every) <= flops_limit) & (latency_table.lookup(every) <= latency_limit)
    lp[~ok] = -math.inf
    return every[int(torch.argmax(lp))], int(ok.sum())


@pytest.mark.parametrize("seed", [0, 1])
def test_the_feasible_export_under_two_constraints_equals_brute_force(micro, micro_table, seed):
    latency = Latency(micro_table.path).table(micro)
    dist = ArchDistribution(micro.sizes, micro.units("factorized"), "factorized")
    dist.alpha.copy_(2 * torch.randn(dist.alpha.shape, generator=torch.Generator().manual_seed(seed)))
    flops_limit, latency_limit = 0.08e6, 0.9
    want, feasible = _under_both(micro, dist, flops_limit, latency, latency_limit)
    assert 0 < feasible < math.prod(micro.sizes) // 2  # both limits cut
    got = top_architectures(
        dist,
        micro,
        1,
        300_000,
        [(ComplexityTables(micro).macs, flops_limit), (latency, latency_limit)],
        distinct_networks=False,
    )
    assert got.entries[0]["indices"] == want.tolist()


def _module(space, constraints):
    from fpnas.search.sampling import AdaptiveK

    return search_module(space, AdaptiveK(0.25, 2), constraints=constraints, seed=0, **PLAIN_SEARCH)


def test_two_constraints_where_the_second_binds(micro, micro_table):
    """A loose FLOPs target alone exports an architecture over the latency target; with the latency
    constraint added the exported one is within both, and its hinge enters the importance weights."""
    from fpnas.search.importance import penalised_importance

    loose = Constraint(Flops(), 0.2, beta=0.75, beta_lr=0.0, prefix="cost")
    latency = Constraint(Latency(micro_table.path), 1.5, beta=0.5, beta_lr=0.0, prefix="cost.latency")
    only_flops, both = _module(micro, [loose]), _module(micro, {"flops": loose, "latency": latency})
    for m in (only_flops, both):  # the same peaked distribution (towards large, slow architectures)
        m.distribution.alpha.data.copy_(
            torch.linspace(0, 1, m.distribution.alpha.numel()).reshape_as(m.distribution.alpha)
        )
    table = both.cost_tables[1]
    assert float(table.lookup(only_flops.exported_architecture())[0]) > 6  # 6.16 ms: far over 1.5
    exported = both.exported_architecture()
    assert float(table.lookup(exported)[0]) <= 1.5 and both.within_limits(exported)
    assert "the most probable architecture within the target" in both.selection()  # found by the enumeration
    assert both.beta_values == {"flops": 0.75, "latency": 0.5}
    # m_k: each constraint subtracts β_c C_ck / Σ_j C_cj
    v = torch.tensor([-1.0, -2.0, -3.0], dtype=torch.float64)
    c1, c2 = torch.tensor([0.0, 0.5, 0.0]), torch.tensor([0.2, 0.0, 0.6])
    m = penalised_importance(v, [c1, c2], [0.75, 0.5])
    assert torch.allclose(m, torch.softmax(v, 0) - 0.75 * c1 / 0.5 - 0.5 * c2 / 0.8, atol=1e-12)
    assert torch.equal(penalised_importance(v, [torch.zeros(3), c2], [9.0, 0.5]), penalised_importance(v, [c2], [0.5]))


def test_constraint_arguments_are_checked_with_their_config_keys(micro, micro_table):
    with pytest.raises(ConfigError, match=r"cost.latency.target_ms='abc' is invalid: it must be a number > 0"):
        Constraint(Latency(micro_table.path), "abc", 0.75, 0.0, prefix="cost.latency")
    with pytest.raises(ConfigError, match=r"cost.latency.target_ms=0.01 is below what space 'micro' can reach"):
        _module(micro, [Constraint(Latency(micro_table.path), 0.01, 0.75, 0.0, prefix="cost.latency")])
    with pytest.raises(ConfigError, match="one constraint per metric"):
        _module(micro, [Constraint(Flops(), 0.1, 0.75, 0.0, "cost"), Constraint(Flops(), 0.2, 0.75, 0.0, "cost")])
    with pytest.raises(ConfigError, match="cost.constraints must name at least one constraint"):
        _module(micro, {"flops": None})


# ----------------------------------------------------------------------------- through the config
def test_cost_flops_gives_the_search_it_gave_before_constraints(tmp_path):
    """The same α and β after 12 steps (3 epochs, the joint distribution from epoch 1, β adapted) as
    the code before the cost interface: sha256 of α was 2e7e4f60… there (one thread, this machine);
    checked here to float precision, which other CPUs' kernels keep."""
    from fpnas.search.run import run_search

    cfg = compose_config(
        "search",
        tmp_path,
        *MICRO,
        "trainer.max_epochs=3",
        *quick_search(train_batches=4, val_batches=1),
        "cost.target_mflops=0.05",
        "cost.beta_lr=0.05",
        "logger=[]",
        "callbacks.search_plots=null",
        "threads=1",
        "export.candidates=1",  # the export of that code: the most probable architecture within the target
    )
    summary = run_search(cfg)
    state = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=False)["state_dict"]
    alpha = state["members.0.distribution.alpha"]
    assert alpha.shape == (4, 32) and summary["arch_mflops"] == 0.032832
    golden = [-3.5763323307037354, -3.610919952392578, -3.2146501541137695, -3.4861834049224854]
    assert alpha.flatten()[[0, 5, 17, 40]].tolist() == pytest.approx(golden, abs=1e-6)
    # β is float64 but follows E[FLOPs] of the float32 α: float32 precision too (another CPU gave 0.97627636)
    assert float(state["members.0.beta"][0]) == pytest.approx(0.9762763752340078, abs=1e-6)
    # the constraint comes back from the checkpoint's hyper-parameters (benchmarks load searches so)
    from fpnas.search.module import SearchModule
    from fpnas.search.sampling import AdaptiveK

    optimizers = {k: PLAIN_SEARCH["alpha_optimizer"] for k in ("omega_optimizer", "alpha_optimizer")}
    loaded = SearchModule.load_from_checkpoint(
        tmp_path / "checkpoints" / "last.ckpt", space=micro_space(), sampler=AdaptiveK(0.25, 2), **optimizers
    )
    assert [c.to_dict() for c in loaded.constraints] == [
        {"metric": "flops", "target": 0.05, "beta": 0.75, "beta_lr": 0.05, "prefix": "cost"}
    ]
    assert torch.equal(loaded.distribution.alpha, alpha) and loaded.beta_values["flops"] == float(
        state["members.0.beta"][0]
    )
    assert summary["constraints"] == {
        "flops": {
            "target": 0.05,
            "unit": "MFLOPs",
            "arch": 0.032832,
            "expected_final": pytest.approx(summary["expected_mflops_final"]),
            "beta_final": pytest.approx(0.9762763752340078),
        }
    }


def test_a_latency_constrained_search_exports_an_architecture_within_its_table_target(tmp_path, micro):
    from fpnas.search.run import run_search

    space = micro  # digits: 10 classes, 1 channel, as the space file
    synthetic_table(space, tmp_path / "t.json")
    cfg = compose_config(
        "search",
        tmp_path / "run",
        *MICRO[:2],
        "cost=flops_latency",
        "cost.target_mflops=0.2",
        f"cost.latency.table={tmp_path / 't.json'}",
        "cost.latency.target_ms=0.8",
        "trainer.max_epochs=1",
        *quick_search(train_batches=3, val_batches=1),
        "distribution.schedule=factorized",  # one epoch: no switch
        "logger=[]",
        "callbacks.search_plots=null",
        "export.top_k=3",
    )
    summary = run_search(cfg)
    assert summary["target_latency_ms"] == 0.8 and summary["arch_latency_ms"] <= 0.8
    assert set(summary["constraints"]) == {"flops", "latency"}
    assert summary["constraints"]["latency"]["unit"] == "ms"
    import yaml

    top = yaml.safe_load((tmp_path / "run" / "top_archs.yaml").read_text())
    assert top["targets"] == {"flops": "0.2 MFLOPs", "latency": "0.8 ms"}
    assert all(e["latency_ms"] <= 0.8 and e["mflops"] <= 0.2 for e in top["entries"])


def test_cost_latency_without_a_table_names_the_build_command(tmp_path):
    from fpnas.search.run import instantiate_search

    cfg = compose_config(
        "search", tmp_path, *MICRO[:2], "cost=latency", "cost.latency.target_ms=1", "cost.latency.table=null"
    )
    with pytest.raises(Exception) as info:
        instantiate_search(cfg)
    from fpnas.runtime.cli import find_user_error

    assert "cost.latency.table is required: build a table with python -m fpnas.latency build" in str(
        find_user_error(info.value)
    )


def test_a_weighted_sum_of_tables_is_exact_and_keeps_exact_extremes(micro, micro_table):
    from fpnas.space.complexity import AdditiveTable

    flops, latency = ComplexityTables(micro).macs, Latency(micro_table.path).table(micro)
    both = AdditiveTable.weighted_sum([(flops, 1 / 0.08e6), (latency, 1 / 0.9)])
    every = torch.cartesian_prod(*[torch.arange(n) for n in micro.sizes])
    want = flops.lookup(every) / 0.08e6 + latency.lookup(every) / 0.9
    assert torch.allclose(both.lookup(every), want, rtol=1e-12, atol=0)
    value, idx = both.extreme_architecture("min")
    assert value == pytest.approx(float(want.min()), rel=1e-12)
    assert float(want[int(torch.argmin(want))]) == pytest.approx(float(both.lookup(torch.tensor(idx))[0]), rel=1e-12)


def test_show_gains_a_latency_column_that_adds_up_to_the_prediction(micro, micro_table, tmp_path, capsys):
    from fpnas.space.arch import architecture_from_indices
    from fpnas.tools.show import main

    idx = _random(micro, 1, seed=3)[0].tolist()
    arch = architecture_from_indices(micro, idx)
    arch.save(tmp_path / "arch.yaml")
    column = micro_table.part_ms(micro, idx)
    assert len(column) == len(micro.blocks) + 2
    assert sum(column) + micro_table.overhead_ms == pytest.approx(micro_table.predict(micro, idx), abs=1e-12)
    assert main([str(tmp_path / "arch.yaml"), "--latency-table", str(micro_table.path)]) == 0
    out = capsys.readouterr().out
    header = next(line for line in out.splitlines() if "MFLOPs" in line and "params" in line)
    assert header.rstrip(" │┃|").endswith("ms")  # the last column
    footer = next(line for line in out.splitlines() if line.lstrip(" │┃").startswith("total"))
    assert f"{micro_table.predict(micro, idx):.4g}" in footer
    assert f"latency: {micro_table.predict(micro, idx):.4g} ms predicted" in out
    other = synthetic_table(SearchSpace(dict(micro.spec, input_size=16), name="micro"), tmp_path / "other.json")
    assert main([str(tmp_path / "arch.yaml"), "--latency-table", str(other.path)]) == 2
    assert "was measured for another space" in capsys.readouterr().err


def test_a_sweep_of_latency_searches_gets_latency_columns_and_a_latency_pareto_axis(tmp_path):
    import csv

    from fpnas.report.sweep import write_sweep_summary

    for i, (target, found, acc) in enumerate([(1.0, 0.9, 0.8), (2.0, 1.7, 0.9)]):
        (tmp_path / str(i)).mkdir()
        summary = {
            "target_mflops": None,
            "arch_mflops": 0.1 * (i + 1),
            "arch_params_m": 0.01,
            "val_acc": acc,
            "total_arch_samples": 10,
            "wall_time_s": 1.0,
            "target_latency_ms": target,
            "arch_latency_ms": found,
            "constraints": {"latency": {"target": target, "unit": "ms", "arch": found}},
        }
        (tmp_path / str(i) / "search_summary.json").write_text(json.dumps(summary))
    write_sweep_summary(tmp_path)
    rows = list(csv.DictReader(open(tmp_path / "sweep_summary.csv")))
    assert [(r["target_latency_ms"], r["arch_latency_ms"]) for r in rows] == [("1.0", "0.9"), ("2.0", "1.7")]
    assert "target_params_m" not in rows[0] and (tmp_path / "pareto.png").stat().st_size > 1000


def test_latency_cli_with_an_unknown_space_is_one_line_listing_the_spaces():
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-m", "fpnas.latency", "build", "space=no_such_space"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    (line,) = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert line.startswith("error: ") and "Could not find 'space/no_such_space'" in line and "tiny" in line
