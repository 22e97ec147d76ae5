"""Block kinds: the registry, and each kind exact against timm (super-net == standalone, analytic == counted)."""

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from fpnas.errors import ConfigError
from fpnas.space.blocks import BLOCK_KINDS, group_ops
from fpnas.space.builder import build_model, timm_arch_def
from fpnas.space.complexity import ComplexityTables, architecture_complexity
from fpnas.space.spec import SearchSpace
from fpnas.space.supernet import SuperNet
from tests.conftest import random_indices


def _space(groups, **top):
    spec = {
        "input_size": 16,
        "in_chans": 3,
        "num_classes": 5,
        "act": "relu",
        "stem": {"channels": 8},
        "groups": groups,
        "head": {"channels": 32},
    } | top
    return SearchSpace(spec, name="kinds")


def _check_exact(space, rows):
    """Super-net == standalone (eval and train), analytic == FlopCounterMode / 2 and the parameter count."""
    torch.manual_seed(0)
    net = SuperNet(space, eval_batch_stats=False)
    with torch.no_grad():
        for bn in [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]:
            bn.running_mean.normal_(0, 0.1)
            bn.running_var.uniform_(0.5, 1.5)
    x = torch.randn(3, space.in_chans, space.input_size, space.input_size)
    macs, params = ComplexityTables(space).lookup(torch.tensor(rows))
    for row, m, p in zip(rows, macs.tolist(), params.tolist()):
        model = build_model(space, row)
        model.load_state_dict(net.standalone_state_dict(row), strict=True)
        with torch.no_grad():
            assert torch.allclose(net.eval()(x, row), model.eval()(x), atol=1e-5)
            assert torch.allclose(net.train()(x, row), model.train()(x), atol=1e-5)
        with FlopCounterMode(display=False) as counter:
            model.eval()(x[:1])
        counted = (counter.get_total_flops() // 2, sum(t.numel() for t in model.parameters()))
        assert (int(m), int(p)) == counted == architecture_complexity(space, row)


def test_registry_lists_the_kinds_and_an_unknown_op_names_them():
    assert {"mbconv", "ir", "conv"} <= set(group_ops()) and "skip" not in group_ops()
    assert set(group_ops()) | {"skip"} == set(BLOCK_KINDS)
    for kind in BLOCK_KINDS.values():
        assert kind.summary and kind.timm_type
    with pytest.raises(ConfigError, match=r"group 1: op must be one of \[.*'conv'.*'ir'.*'mbconv'"):
        _space([{"channels": 8, "kernel": 3, "expansion": 1, "op": "transformer"}])
    with pytest.raises(ConfigError, match=r"group 1: unknown key\(s\) \['expansion'\] for op 'conv'"):
        _space([{"channels": 8, "kernel": 3, "expansion": 1, "op": "conv"}])


def test_ir_at_expansion_1_keeps_the_expansion_conv():
    space = _space(
        [
            {"channels": 8, "kernel": [3, 5], "expansion": [1, 2], "op": "ir", "repeat": 2},
            {"channels": [12, 16], "kernel": 3, "expansion": 1, "stride": 2, "op": "ir", "se": [0, 1]},
        ]
    )
    e1 = [0] * space.num_decisions  # every expansion 1
    assert timm_arch_def(space, e1) == [["ir_r1_k3_s1_e1.0_c8_nre"] * 2, ["ir_r1_k3_s2_e1.0_c12_nre"]]
    model = build_model(space, e1)
    assert type(model.blocks[0][0]).__name__ == "InvertedResidual" and model.blocks[0][0].conv_pw.weight.shape == (
        8,
        8,
        1,
        1,
    )
    # the mbconv kind at expansion 1 is timm's depthwise-separable block instead (no conv_pw of 8 x 8)
    ds = _space([{"channels": 8, "kernel": 3, "expansion": 1}])
    assert timm_arch_def(ds, []) == [["ds_r1_k3_s1_c8_nre"]]
    assert architecture_complexity(space, e1)[1] - architecture_complexity(ds, [])[1] > 0
    _check_exact(space, random_indices(space, 6, seed=1).tolist())


def test_residual_false_is_timms_noskip():
    groups = [
        {"channels": 8, "kernel": [0, 3], "expansion": [1, 3], "repeat": 2, "residual": False},
        {"channels": 8, "kernel": 3, "op": "conv", "residual": False},
        {"channels": 8, "kernel": 3, "op": "conv"},
    ]
    space = _space(groups)
    row = [space.decisions[i].choices.index(v) for i, v in enumerate([3, 3, 3, 3])]
    assert timm_arch_def(space, row) == [
        ["ir_r1_k3_s1_e3.0_c8_noskip_nre"] * 2,
        ["cn_r1_k3_s1_c8_nre"],
        ["cn_r1_k3_s1_c8_skip_nre"],
    ]
    assert [c.has_residual for c in space.resolve(row)] == [False, False, False, True]
    model = build_model(space, row)
    assert [b.has_skip for stage in model.blocks for b in stage] == [False, False, False, True]
    _check_exact(space, random_indices(space, 6, seed=2).tolist())
    with pytest.raises(ConfigError, match="group 1: residual: 'no' is not true or false"):
        _space([{"channels": 8, "kernel": 3, "expansion": 1, "residual": "no"}])


def test_same_stage_continues_the_previous_timm_stage():
    space = _space(
        [
            {"channels": 8, "kernel": 3, "expansion": 1},
            {"channels": 16, "kernel": 3, "expansion": 6, "stride": 2},
            {"channels": 16, "kernel": 5, "expansion": 3, "same_stage": True, "repeat": 2},
        ]
    )
    assert timm_arch_def(space, []) == [
        ["ds_r1_k3_s1_c8_nre"],
        ["ir_r1_k3_s2_e6.0_c16_nre", "ir_r1_k5_s1_e3.0_c16_nre", "ir_r1_k5_s1_e3.0_c16_nre"],
    ]
    assert "blocks.1.2.conv_pw.weight" in build_model(space, []).state_dict()
    with pytest.raises(ConfigError, match="group 1: same_stage must be true or false"):
        _space([{"channels": 8, "kernel": 3, "expansion": 1, "same_stage": True}])


def test_fused_mbconv_is_timms_edge_residual():
    space = _space(
        [
            {"channels": 8, "kernel": [0, 3, 5], "expansion": [1, 4], "op": "fused", "repeat": 2, "se": [0, 1]},
            {
                "channels": [12, 16],
                "kernel": 3,
                "expansion": [2, 4],
                "stride": 2,
                "op": "fused",
                "act": ["relu", "swish"],
            },
            {"channels": 16, "kernel": [3, 5], "expansion": [3, 6], "se": [0, 1]},
        ],
        se_ratio=0.25,
    )
    row = [1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0]  # fused k3 e4 with SE twice, fused 8->16 e2 relu, MBConv k3 e3
    assert [d.name for d in space.decisions][:4] == ["g1.b0.kernel", "g1.b0.expansion", "g1.b0.se", "g1.b1.kernel"]
    assert timm_arch_def(space, row)[:2] == [["er_r1_k3_s1_e4.0_c8_se1.0_nre"] * 2, ["er_r1_k3_s2_e2.0_c16_nre"]]
    block = build_model(space, row).blocks[0][0]
    assert type(block).__name__ == "EdgeResidual" and block.conv_exp.weight.shape == (32, 8, 3, 3)
    assert block.se.conv_reduce.weight.shape == (8, 32, 1, 1)  # 0.25 x the expanded width (FBNet convention)
    assert space.resolve(row)[0].kind.describe(space.resolve(row)[0]) == "er e4 k3 8->8 s1 relu se8"
    rows = random_indices(space, 8, seed=3).tolist()
    assert {c.kernel for r in rows for c in space.resolve(r)[:2]} >= {0, 3, 5}
    _check_exact(space, rows)
