"""Search-space parsing, analytic FLOPs/params, super-net weight sharing, standalone builder."""

import copy
import math

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from fpnas.errors import ConfigError
from fpnas.space.arch import architecture_from_indices, load_architecture
from fpnas.space.builder import build_model, timm_arch_def
from fpnas.space.complexity import ComplexityTables, architecture_complexity, block_complexity
from fpnas.space.spec import SearchSpace
from fpnas.space.supernet import SuperNet
from tests.conftest import random_indices

CPU_SPACES = ("tiny", "micro")
# a small per-block-width space: skips with a width change are 1x1 projections (mobile-vision's Identity)
BLOCKY = {
    "name": "blocky",
    "input_size": 16,
    "in_chans": 3,
    "num_classes": 5,
    "act": "relu",
    "channels_per": "block",
    "stem": {"channels": 8, "kernel": 3, "stride": 2},
    "groups": [
        {"channels": [8, 16], "repeat": 2, "expansion": [1, 3], "kernel": [0, 3], "se": [0, 1]},
        {"channels": [16, 24], "repeat": 2, "stride": 2, "expansion": [3], "kernel": [0, 3, 5], "splits": [0, 2]},
    ],
    "head": {"channels": 32},
}


def at_size(space: SearchSpace, size: int) -> SearchSpace:
    """The same space at another input size (forward tests of the big spaces run small)."""
    return SearchSpace(dict(space.spec, input_size=size), name=space.name)


def _measured(space, row):
    """MACs (FlopCounterMode / 2) and parameter count of the standalone model, on the meta device."""
    with torch.device("meta"):
        model = build_model(space, row).eval()
        with FlopCounterMode(display=False) as counter:
            model(torch.zeros(1, space.in_chans, space.input_size, space.input_size))
    return counter.get_total_flops() // 2, sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name", CPU_SPACES)
def test_cpu_spaces_have_every_variable_kind_and_a_cpu_size(name):
    space = SearchSpace.load(name)
    kinds = {d.kind for d in space.decisions}
    assert kinds == {"channels", "kernel", "expansion", "act", "se"}
    assert 4 <= space.log10_num_architectures <= 8
    assert any(0 in d.choices for d in space.decisions if d.kind == "kernel")


def _projection_skips(space, rows) -> int:
    return sum(cfg.projection_skip for row in rows for cfg in space.resolve(row))


@pytest.mark.parametrize(
    "name",
    [  # the paper's ImageNet-scale spaces take seconds per architecture on the flop counter: CI's slow set
        pytest.param(n, marks=pytest.mark.slow) if n.startswith("fpnas_l") else n for n in SearchSpace.available()
    ],
)
def test_analytic_macs_and_params_match_flop_counter_and_model(name):
    any_space = SearchSpace.load(name)
    tables = ComplexityTables(any_space)
    archs = random_indices(any_space, 20, seed=11)
    if any_space.channels_per == "block":  # the samples exercise 1x1 projection skips
        assert _projection_skips(any_space, archs.tolist()) >= 20
    macs, params = tables.lookup(archs)
    for row, m, p in zip(archs.tolist(), macs.tolist(), params.tolist()):
        assert (int(m), int(p)) == _measured(any_space, row) == architecture_complexity(any_space, row)


def test_macs_range_is_exact_on_the_micro_space():
    space = SearchSpace.load("micro")
    tables = ComplexityTables(space)
    every = torch.cartesian_prod(*[torch.arange(s) for s in space.sizes])  # all 3.3e5 architectures
    assert every.shape[0] == round(10**space.log10_num_architectures)
    macs, _ = tables.lookup(every)
    assert tables.macs_range() == (float(macs.min()), float(macs.max()))


def test_supernet_output_equals_standalone_model_with_copied_weights(any_space):
    space = at_size(any_space, min(any_space.input_size, 32))
    torch.manual_seed(0)
    net = SuperNet(space, eval_batch_stats=False)
    with torch.no_grad():  # non-trivial BN statistics so that eval mode is checked too
        for bn in [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]:
            bn.running_mean.normal_(0, 0.1)
            bn.running_var.uniform_(0.5, 1.5)
            bn.weight.normal_(1, 0.1)
            bn.bias.normal_(0, 0.1)
    x = torch.randn(4, space.in_chans, space.input_size, space.input_size)
    rows = random_indices(space, 6 if space.name in CPU_SPACES else 2, seed=3).tolist()
    if space.channels_per == "block":
        assert _projection_skips(space, rows) >= 2
    for row in rows:
        model = build_model(space, row)
        model.load_state_dict(net.standalone_state_dict(row), strict=True)
        with torch.no_grad():
            assert torch.allclose(net.eval()(x, row), model.eval()(x), atol=1e-5)
            # train mode normalises with batch statistics (running stats update after the output)
            assert torch.allclose(net.train()(x, row), model.train()(x), atol=1e-5)


def test_supernet_forward_backward_for_every_space(any_space):
    space = at_size(any_space, min(any_space.input_size, 32))
    net = SuperNet(space)
    for row in random_indices(space, 2, seed=4).tolist():
        net.zero_grad(set_to_none=True)
        loss = net(torch.randn(2, space.in_chans, space.input_size, space.input_size), row).logsumexp(1).mean()
        loss.backward()
        grads = [p.grad for p in net.parameters() if p.grad is not None]
        assert grads and all(torch.isfinite(g).all() for g in grads)
        assert sum(float(g.abs().sum()) for g in grads) > 0


def test_supernet_computes_only_the_sampled_path(tiny):
    net = SuperNet(tiny)
    row = random_indices(tiny, 1, seed=5)[0].tolist()
    net(torch.randn(2, 1, 28, 28), row).sum().backward()
    model = build_model(tiny, row)
    touched = sum(int((p.grad != 0).sum()) for p in net.parameters() if p.grad is not None)
    # gradients reach at most the sliced weights of the path (BN/bias zeros aside)
    assert touched <= sum(p.numel() for p in model.parameters())
    assert touched > 0.5 * sum(p.numel() for p in model.parameters())


def test_skip_is_only_offered_at_stride_1_and_needs_a_residual_with_group_widths(any_space):
    offered = [slot for slot in any_space.blocks if 0 in slot.kernel]
    assert offered and all(slot.stride == 1 for slot in offered)
    if any_space.channels_per == "group":  # only where input and output width are one decision
        assert all(slot.position > 0 or slot.in_channels == slot.out_channels for slot in offered)
        assert not any(slot.can_project_skip for slot in any_space.blocks)
    else:  # every stride-1 block of a group listing 0, the group's first one included
        assert any(slot.position == 0 for slot in offered)
        assert all(
            0 in slot.kernel
            for slot in any_space.blocks
            if slot.stride == 1 and 0 in any_space.spec["groups"][slot.group - 1]["kernel"]
        )


def test_group_widths_are_unchanged_by_the_channels_per_option(tiny):
    assert tiny.channels_per == "group"
    widths = [d for d in tiny.decisions if d.kind == "channels"]
    assert [(d.name, d.choices, d.block) for d in widths] == [
        ("g1.channels", (8, 16), None),
        ("g2.channels", (16, 24), None),
        ("g3.channels", (24, 32, 40), None),
    ]
    assert tiny.num_decisions == 22 and [len(u) for u in tiny.units("joint")] == [4, 5, 4, 5, 4]
    assert [(s.in_decision, s.out_decision) for s in tiny.blocks] == [
        (None, "g1.channels"),
        ("g1.channels", "g2.channels"),
        ("g2.channels", "g2.channels"),
        ("g2.channels", "g3.channels"),
        ("g3.channels", "g3.channels"),
    ]
    # the same groups with per-block widths: one width decision per block, chained
    blocky = SearchSpace(dict(tiny.spec, channels_per="block"), name="tiny_blocks")
    names = [d.name for d in blocky.decisions if d.kind == "channels"]
    assert names == ["g1.b0.channels", "g2.b0.channels", "g2.b1.channels", "g3.b0.channels", "g3.b1.channels"]
    assert [(s.in_decision, s.out_decision) for s in blocky.blocks] == [(None, names[0]), *zip(names, names[1:])]
    assert blocky.last_channel_decision == "g3.b1.channels" and blocky.group_channel_decision == [None] * 3
    assert blocky.num_decisions == 24 and [len(u) for u in blocky.units("joint")] == [4, 5, 5, 5, 5]
    # skip is now offered on g2.b1 and g3.b1 (stride 1) as before, with its own width
    assert (
        [0 in s.kernel for s in blocky.blocks]
        == [0 in s.kernel for s in tiny.blocks]
        == [False, False, True, False, True]
    )


def test_joint_tuple_of_a_block_holds_its_own_width():
    # FP-NAS §3.2: kernel x nonlinearity x SE x expansion x channels = 3 * 2 * 2 * 6 * 10 = 720 vs 23
    space = SearchSpace.load("fbnetv2_f")
    unit = next(u for u in space.units("joint") if space.decisions[u[0]].name == "g10.b1.channels")
    assert [space.decisions[d].name for d in unit] == [
        "g10.b1.channels",
        "g10.b1.kernel",
        "g10.b1.expansion",
        "g10.b1.act",
        "g10.b1.se",
    ]
    sizes = [space.decisions[d].size for d in unit]
    assert sizes == [10, 3, 6, 2, 2] and math.prod(sizes) == 720 and sum(sizes) == 23


def _blocky_arch(space, **overrides):
    choices = {d.name: d.choices[0] for d in space.decisions}
    choices |= {
        "g1.b0.channels": 16,
        "g1.b0.kernel": 0,  # stem 8 -> 16: projection skip
        "g1.b1.channels": 16,
        "g1.b1.kernel": 0,  # 16 -> 16: identity
        "g2.b0.channels": 16,
        "g2.b0.splits": 2,
        "g2.b1.channels": 24,
        "g2.b1.kernel": 0,
        "g2.b1.splits": 2,
    }  # 16 -> 24: projection
    return space.indices_of(choices | overrides)


def test_projection_skip_is_a_1x1_conv_in_supernet_builder_and_tables():
    space = SearchSpace(BLOCKY)
    row = _blocky_arch(space)
    cfgs = space.resolve(row)
    assert [(c.skip, c.projection_skip, c.in_chs, c.out_chs) for c in cfgs] == [
        (True, True, 8, 16),
        (True, False, 16, 16),
        (False, False, 16, 16),
        (True, True, 16, 24),
    ]
    assert timm_arch_def(space, row) == [["cn_r1_k1_s1_c16_nre"], ["ir_r1_k3_s2_e3.0_c16_nre", "cn_r1_k1_s1_c24_nre"]]
    # 1x1 conv MACs at 8x8 and 4x4, params: weight + BN
    assert block_complexity(cfgs[0]) == (8 * 16 * 8 * 8, 8 * 16 + 2 * 16)
    assert block_complexity(cfgs[3]) == (16 * 24 * 4 * 4, 16 * 24 + 2 * 24)
    assert block_complexity(cfgs[1]) == (0, 0)
    macs, params = ComplexityTables(space).lookup(torch.tensor([row]))
    assert (int(macs), int(params)) == _measured(space, row) == architecture_complexity(space, row)
    # the super-net holds projection weights only where a skip can change the width
    torch.manual_seed(0)
    net = SuperNet(space, eval_batch_stats=False)
    assert [hasattr(b, "skip_conv") for b in net.blocks] == [True, True, False, True]
    assert not any(hasattr(b, "skip_conv") for b in SuperNet(SearchSpace.load("tiny")).blocks)
    with torch.no_grad():
        for bn in [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]:
            bn.running_mean.normal_(0, 0.1)
            bn.running_var.uniform_(0.5, 1.5)
    model = build_model(space, row)
    sd = net.standalone_state_dict(row)
    assert sd["blocks.0.0.conv.weight"].shape == (16, 8, 1, 1) and sd["blocks.1.1.conv.weight"].shape == (24, 16, 1, 1)
    model.load_state_dict(sd, strict=True)
    x = torch.randn(3, 3, 16, 16)
    with torch.no_grad():
        assert torch.allclose(net.eval()(x, row), model.eval()(x), atol=1e-5)
        assert torch.allclose(net.train()(x, row), model.train()(x), atol=1e-5)
    # the projection is trained: gradients reach its sliced weights
    net.zero_grad(set_to_none=True)
    net(x, row).sum().backward()
    grad = net.blocks[0].skip_conv.weight.grad
    assert grad[:16, :8].abs().sum() > 0 and not grad[:, 8:].any()


def test_a_group_whose_blocks_are_all_skipped_leaves_no_empty_stage():
    space = SearchSpace(BLOCKY)
    row = _blocky_arch(space, **{"g1.b0.channels": 8, "g1.b1.channels": 8})  # 8 -> 8 -> 8: identities
    assert [c.identity for c in space.resolve(row)] == [True, True, False, False]
    assert timm_arch_def(space, row) == [["ir_r1_k3_s2_e3.0_c16_nre", "cn_r1_k1_s1_c24_nre"]]
    torch.manual_seed(1)
    net = SuperNet(space, eval_batch_stats=False).eval()
    model = build_model(space, row).eval()
    model.load_state_dict(net.standalone_state_dict(row), strict=True)
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        assert torch.allclose(net(x, row), model(x), atol=1e-5)
    assert (
        (int(ComplexityTables(space).lookup(torch.tensor([row]))[0]), sum(p.numel() for p in model.parameters()))
        == architecture_complexity(space, row)
        == _measured(space, row)
    )


def test_macs_range_is_exact_with_block_widths():
    space = SearchSpace(BLOCKY)
    tables = ComplexityTables(space)
    every = torch.cartesian_prod(*[torch.arange(s) for s in space.sizes])
    assert every.shape[0] == 16 * 16 * 8 * 12
    macs, params = tables.lookup(every)
    assert tables.macs_range() == (float(macs.min()), float(macs.max()))
    pick = torch.randperm(len(every), generator=torch.Generator().manual_seed(0))[:50]
    for i in pick.tolist():  # shared tables of repeated blocks still give each architecture's cost
        assert (int(macs[i]), int(params[i])) == architecture_complexity(space, every[i].tolist())


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda s: s.pop("groups"), "missing required key 'groups'"),
        (lambda s: s["groups"][1].update(kernel=[3, 4]), "group 2: kernel"),
        (lambda s: s["groups"][0].update(act=["relu", "gelu"]), "group 1: act"),
        (lambda s: s["groups"][2].update(colour=1), "group 3: unknown key"),
        (lambda s: s["groups"][0].update(channels=[]), "group 1: channels: empty"),
        (lambda s: s["groups"][0].update(stride=3), "group 1: stride"),
        (lambda s: s["stem"].update(channels=-4), "stem.channels"),
        (lambda s: s.update(se_gate="tanh"), "se_gate"),
        (lambda s: s.update(channels_per="stage"), "channels_per must be one of"),
    ],
)
def test_malformed_space_names_the_key_and_group(tiny, mutate, message):
    spec = copy.deepcopy(tiny.spec)
    mutate(spec)
    with pytest.raises(ConfigError, match=message):
        SearchSpace(spec, name="broken")


def test_unknown_space_lists_the_available_ones():
    with pytest.raises(ConfigError, match=r"available: \[.*'fbnetv2_f'.*'micro'.*'tiny'"):
        SearchSpace.load("nope")


def test_architecture_file_round_trip_and_validation(tiny, tmp_path):
    row = random_indices(tiny, 1, seed=9)[0].tolist()
    path = architecture_from_indices(tiny, row).save(tmp_path / "arch.yaml")
    arch = load_architecture(path)
    assert arch.indices == row
    assert _measured(tiny, arch.indices) == arch.complexity()
    text = path.read_text()
    for bad, message in [
        (text.replace("g3.channels:", "g9.channels:"), "unknown decision"),
        (text.replace("g1.b0.act: ", "g1.b0.act: gelu #"), "g1.b0.act='gelu' is not a choice"),
        ("\n".join(line for line in text.splitlines() if "g3.b1" not in line), "missing decision"),
    ]:
        (tmp_path / "bad.yaml").write_text(bad)
        with pytest.raises(ConfigError, match=message):
            load_architecture(tmp_path / "bad.yaml")


def test_space_path_in_an_architecture_file_is_relative_to_the_file(tmp_path, monkeypatch):
    import re

    import yaml

    from fpnas.space.arch import architecture_from_dict
    from fpnas.space.spec import SPACE_DIR

    (tmp_path / "spaces").mkdir()
    (tmp_path / "spaces" / "mine.yaml").write_text(
        (SPACE_DIR / "micro.yaml").read_text().replace("name: micro", "name: mine")
    )
    space = SearchSpace.load(tmp_path / "spaces" / "mine.yaml")
    row = random_indices(space, 1, seed=3)[0].tolist()
    data = architecture_from_indices(space, row).to_dict()
    run = tmp_path / "runs" / "a"
    run.mkdir(parents=True)
    (run / "arch.yaml").write_text(yaml.safe_dump(dict(data, space="../../spaces/mine.yaml"), sort_keys=False))
    monkeypatch.chdir(tmp_path / "runs")  # the current directory plays no part
    arch = load_architecture(run / "arch.yaml")
    assert (arch.space.name, arch.indices, arch.complexity()) == ("mine", row, architecture_complexity(space, row))
    (run / "bad.yaml").write_text(yaml.safe_dump(dict(data, space="../spaces/mine.yaml"), sort_keys=False))
    tried = re.escape(str(run / "../spaces/mine.yaml"))
    with pytest.raises(ConfigError, match=f"space file {tried} does not exist .*relative to the architecture file's"):
        load_architecture(run / "bad.yaml")
    # no file to be relative to (a mapping, e.g. from a checkpoint): the current directory, as before
    monkeypatch.chdir(tmp_path)
    assert architecture_from_dict(dict(data, space="spaces/mine.yaml")).indices == row
    assert (
        load_architecture(
            architecture_from_indices(SearchSpace.load("micro"), row).save(run / "shipped.yaml")
        ).space.name
        == "micro"
    )  # a shipped space's name keeps working
