"""Reference architectures: exact timm parameter counts, MACs, FBNetV2-F1's published numbers, equality."""

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from fpnas.errors import ConfigError
from fpnas.space.reference import available_references, load_reference, resolve_architecture
from fpnas.space.spec import SearchSpace, divisible_by
from fpnas.space.supernet import SuperNet


def _measure(model, size, in_chans=3):
    with FlopCounterMode(display=False) as counter:
        model(torch.zeros(1, in_chans, size, size))
    return counter.get_total_flops() // 2, sum(p.numel() for p in model.parameters())


def _supernet_equals_builder(space, samples: int = 8) -> None:
    """For random architectures of ``space`` (16 px, 1 channel): the super-net's output equals the standalone
    model's with the super-net's weights, and the analytic MACs and params equal the measured ones."""
    from fpnas.space.builder import build_model
    from fpnas.space.complexity import ComplexityTables
    from tests.conftest import random_indices

    torch.manual_seed(1)
    net = SuperNet(space, eval_batch_stats=False)
    tables = ComplexityTables(space)
    x = torch.randn(3, 1, 16, 16)
    for row in random_indices(space, samples, seed=2).tolist():
        model = build_model(space, row)
        model.load_state_dict(net.standalone_state_dict(row), strict=True)
        with torch.no_grad():
            assert torch.allclose(net.eval()(x, row), model.eval()(x), atol=1e-5)
        macs, params = tables.lookup(torch.tensor([row]))
        assert (int(macs), int(params)) == _measure(model.eval(), 16, 1)


def test_registered_references():
    assert {*TIMM_REFERENCES, "fbnetv2_f1"} <= set(available_references())
    for name in available_references():
        arch = load_reference(name)
        assert arch.space.num_decisions == 0 and arch.indices == []


TIMM_REFERENCES = [
    "mobilenetv2_100",
    "efficientnet_b0",
    "fbnetc_100",
    "tf_efficientnetv2_b0",
    "mobilenetv3_large_100",
    "mobilenetv3_small_100",
]


@pytest.mark.parametrize("name", TIMM_REFERENCES)
def test_reference_matches_timm_parameter_for_parameter(name):
    import timm

    arch = load_reference(name)
    macs, params = arch.complexity()
    with torch.device("meta"):
        ours, theirs = arch.build().eval(), timm.create_model(name, pretrained=False, num_classes=1000).eval()
        timm_macs, timm_params = _measure(theirs, 224)
        our_macs, our_params = _measure(ours, 224)
    assert params == our_params == timm_params  # 3,504,872 / 5,288,548 / 5,572,200 / 7,139,704 / 5,483,032 / 2,542,856
    assert abs(macs / timm_macs - 1) <= 0.01 and macs == our_macs
    # same tensors under the same names (timm's EfficientNet layout)
    assert {k: tuple(v.shape) for k, v in ours.state_dict().items()} == {
        k: tuple(v.shape) for k, v in theirs.state_dict().items()
    }


def test_new_block_kinds_give_fbnetc_and_efficientnetv2_b0_exactly():
    assert [(name, *load_reference(name).complexity()) for name in ("fbnetc_100", "tf_efficientnetv2_b0")] == [
        ("fbnetc_100", 384_960_160, 5_572_200),
        ("tf_efficientnetv2_b0", 718_086_176, 7_139_704),
    ]
    kinds = {
        name: [c.op for c in load_reference(name).space.resolve([])] for name in ("fbnetc_100", "tf_efficientnetv2_b0")
    }
    assert set(kinds["fbnetc_100"]) == {"ir"} and kinds["fbnetc_100"].count("ir") == 21
    assert kinds["tf_efficientnetv2_b0"][:5] == ["conv", "fused", "fused", "fused", "fused"]


@pytest.mark.parametrize("name", TIMM_REFERENCES)
def test_timms_state_dict_loads_strictly_into_the_built_model(name):
    import timm

    torch.manual_seed(0)
    theirs = timm.create_model(name, pretrained=False, num_classes=1000).eval()
    ours = load_reference(name).build().eval()
    ours.load_state_dict(theirs.state_dict(), strict=True)
    if not name.startswith("tf_"):  # tf_ models pad 'same' and use BN eps 1e-3 (see the reference file)
        x = torch.randn(2, 3, 64, 64)
        with torch.no_grad():
            assert torch.allclose(ours(x), theirs(x), atol=1e-5)


def test_mobilenetv3_se_head_and_activations_are_timms():
    assert [
        (name, *load_reference(name).complexity()) for name in ("mobilenetv3_large_100", "mobilenetv3_small_100")
    ] == [
        ("mobilenetv3_large_100", 216_589_760, 5_483_032),
        ("mobilenetv3_small_100", 56_510_400, 2_542_856),
    ]
    large = load_reference("mobilenetv3_large_100").space.resolve([])
    # round_channels(0.25 x expanded): 72 x 0.25 = 18 -> 24 (16 would be more than 10 % below), 120 x 0.25 = 30 -> 32
    assert [c.se_chs for c in large if c.se_chs] == [24, 32, 32, 120, 168, 168, 240, 240]
    small = load_reference("mobilenetv3_small_100").space.resolve([])
    assert [c.se_chs for c in small if c.se_chs] == [8, 24, 64, 64, 32, 40, 72, 144, 144]  # 16 x 0.25 = 4 -> 8
    assert [c.act for c in large] == ["relu"] * 6 + ["hswish"] * 10 and large[-1].op == "conv"
    model = load_reference("mobilenetv3_large_100").build()
    se = model.blocks[2][0].se
    assert type(se.act1).__name__ == "ReLU" and type(se.gate).__name__ == "Hardsigmoid"
    assert not hasattr(model, "bn2") and type(model.act2).__name__ == "Hardswish" and model.conv_head.bias is not None
    # the default rounding is unchanged: round() (timm's SqueezeExcite), the SE's nonlinearity the block's
    b0 = load_reference("efficientnet_b0").space
    assert (b0.se_round, b0.se_act) == ("round", "block") and b0.se_channels(16, 96, 6.0) == 4


def test_mobilenetv3_vocabulary_supernet_equals_standalone_and_its_cost():
    """se_round: round_channels, se_act and a head without a conv before pooling, searched: the super-net's
    output equals the standalone model's, the analytic MACs and params the measured ones."""
    spec = {
        "input_size": 16,
        "in_chans": 1,
        "act": "hswish",
        "se_divisor": 8,
        "se_round": "round_channels",
        "se_act": "relu",
        "se_gate": "hard_sigmoid",
        "stem": {"channels": 8},
        "groups": [
            {"channels": [8, 16], "kernel": [3, 5], "expansion": [1, 3], "se": [0, 1], "act": ["relu", "hswish"]},
            {"op": "fused", "channels": [16, 24], "kernel": 3, "expansion": [2, 3], "stride": 2, "se": [0, 1]},
            {"channels": [16, 24], "kernel": [0, 3], "expansion": [3, 4.5], "repeat": 2, "stride": 2, "se": [0, 1]},
            {"op": "conv", "channels": [32, 48], "kernel": 1},
        ],
        "head": {"channels": 0, "pool_channels": 40, "pool_bias": True},
    }
    _supernet_equals_builder(SearchSpace(spec, name="mnv3_vocab"))
    arch = load_reference("mobilenetv3_small_100").with_data(10, 3, 64)
    torch.manual_seed(0)
    net = SuperNet(arch.space, eval_batch_stats=False)
    model = arch.build()
    model.load_state_dict(net.standalone_state_dict([]), strict=True)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(net.eval()(x, []), model.eval()(x), atol=1e-5)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"se_round": "floor"}, r"se_round must be one of \['round', 'round_channels'\], got 'floor'"),
        ({"se_round": "round_channels"}, "se_round: round_channels needs se_divisor > 1"),
        ({"se_act": "gelu"}, r"se_act must be one of \['block', 'relu', .*\], got 'gelu'"),
        ({"head": {"channels": 0}}, "head: channels 0 .no conv before pooling. needs pool_channels > 0"),
        ({"head": {"channels": -1}}, "head.channels: bad value in .-1. .-1 is not a non-negative integer"),
    ],
)
def test_bad_mobilenetv3_options_are_one_line_errors(change, message):
    spec = {"input_size": 8, "stem": {"channels": 4}, "groups": [{"channels": 4, "kernel": 3}], "head": {"channels": 8}}
    with pytest.raises(ConfigError, match=message):
        SearchSpace({**spec, **change}, name="bad")


def test_fbnetv2_f1_matches_the_model_zoo_figures():
    arch = load_reference("fbnetv2_f1")
    macs, params = arch.complexity()
    with torch.device("meta"):
        assert _measure(arch.build().eval(), 128) == (macs, params)
    # mobile-vision: "nparams: 5.999408, nflops 56.41056" at 128 px
    assert abs(macs / 56.41056e6 - 1) <= 0.02, macs
    assert abs(params / 5.999408e6 - 1) <= 0.02, params
    cfgs = arch.space.resolve([])
    assert [c.se_chs for c in cfgs if c.se_chs] == [32, 40, 72, 88, 40, 96, 208, 248]
    assert [c.op for c in cfgs].count("conv") == 2 and {c.act for c in cfgs} == {"relu", "hswish"}


def test_divisible_by_is_mobile_visions_rounding():
    assert [divisible_by(v, 8) for v in (10, 12, 20, 28, 3, 130.96)] == [8, 16, 24, 32, 8, 128]


@pytest.mark.parametrize("name", ["mobilenetv2_100", "fbnetv2_f1"])
def test_supernet_equals_standalone_for_new_vocabulary(name):
    arch = load_reference(name).with_data(10, 3, 64)
    space = arch.space
    torch.manual_seed(0)
    net = SuperNet(space, eval_batch_stats=False)
    model = arch.build()
    model.load_state_dict(net.standalone_state_dict([]), strict=True)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(net.eval()(x, []), model.eval()(x), atol=1e-5)


def test_searchable_conv_op_relu6_and_pool_head():
    spec = {
        "input_size": 16,
        "in_chans": 1,
        "act": "relu6",
        "se_divisor": 8,
        "se_gate": "hard_sigmoid",
        "stem": {"channels": 8},
        "groups": [
            {"channels": [8, 16], "kernel": [1, 3], "op": "conv", "act": ["relu", "relu6"]},
            {
                "channels": [16, 24],
                "kernel": [0, 3, 5],
                "expansion": [1, 3],
                "repeat": 2,
                "stride": 2,
                "se": [0, 1],
                "act": ["relu6", "hswish"],
            },
        ],
        "head": {"channels": 32, "pool_channels": 24, "pool_bias": False},
    }
    _supernet_equals_builder(SearchSpace(spec, name="vocab"))


def test_bad_references_and_names():
    with pytest.raises(ConfigError, match="neither an existing architecture file nor a registered"):
        resolve_architecture("mobilenetv9")
    with pytest.raises(ConfigError, match="op must be one of"):
        SearchSpace(
            {
                "input_size": 8,
                "stem": {"channels": 4},
                "groups": [{"channels": 4, "kernel": 3, "expansion": 1, "op": "pool"}],
                "head": {"channels": 8},
            }
        )


def test_own_references_on_the_search_path(tmp_path):
    from fpnas.space.arch import architecture_from_indices
    from fpnas.space.reference import REFERENCE_DIR, searchpath_dirs

    (tmp_path / "reference").mkdir()
    (tmp_path / "reference" / "mine.yaml").write_text((REFERENCE_DIR / "mobilenetv2_100.yaml").read_text())
    dirs = searchpath_dirs(["pkg://somepackage.conf", f"file://{tmp_path}"])
    assert dirs == [tmp_path] and "mine" in available_references(dirs) and "mine" not in available_references()
    arch, is_reference = resolve_architecture("mine", dirs)
    assert is_reference and arch.complexity() == load_reference("mobilenetv2_100").complexity()
    with pytest.raises(
        ConfigError,
        match=r"registered: \[.*'mobilenetv2_100'.*\]; to add your own, save it as "
        r"<dir>/reference/mine.yaml and pass hydra.searchpath=\[file://<dir>\]",
    ):
        resolve_architecture("mine")
    with pytest.raises(ConfigError, match=rf"registered: \[.*'mine'.*\] \(also searched {tmp_path}/reference/\)"):
        resolve_architecture("nope", dirs)
    # given by path, a file is a reference when its space is inline with zero decisions (model.adapt_to_data=auto)
    assert resolve_architecture(tmp_path / "reference" / "mine.yaml")[1]
    micro = SearchSpace.load("micro")
    assert not resolve_architecture(
        architecture_from_indices(micro, [0] * micro.num_decisions).save(tmp_path / "a.yaml")
    )[1]
