"""Search-space parsing, analytic FLOPs/params, super-net weight sharing, standalone builder."""
import copy

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from fpnas.arch import architecture_from_indices, load_architecture
from fpnas.errors import ConfigError
from fpnas.space.builder import build_model
from fpnas.space.complexity import ComplexityTables, architecture_complexity
from fpnas.space.spec import SearchSpace
from fpnas.space.supernet import SuperNet
from tests.conftest import random_indices


CPU_SPACES = ("tiny", "micro")


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


def test_analytic_macs_and_params_match_flop_counter_and_model(any_space):
    tables = ComplexityTables(any_space)
    archs = random_indices(any_space, 20, seed=11)
    macs, params = tables.lookup(archs)
    for row, m, p in zip(archs.tolist(), macs.tolist(), params.tolist()):
        assert (int(m), int(p)) == _measured(any_space, row) == architecture_complexity(any_space, row)


def test_macs_range_is_exact_on_the_micro_space():
    space = SearchSpace.load("micro")
    tables = ComplexityTables(space)
    every = torch.cartesian_prod(*[torch.arange(s) for s in space.sizes])  # all 3.3e5 architectures
    assert every.shape[0] == round(10 ** space.log10_num_architectures)
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
    for row in random_indices(space, 6 if space.name in CPU_SPACES else 2, seed=3).tolist():
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


def test_skip_is_only_offered_where_a_residual_exists(any_space):
    for slot in any_space.blocks:
        if 0 in slot.kernel:
            assert slot.stride == 1 and (slot.position > 0 or slot.in_channels == slot.out_channels)


@pytest.mark.parametrize("mutate, message", [
    (lambda s: s.pop("groups"), "missing required key 'groups'"),
    (lambda s: s["groups"][1].update(kernel=[3, 4]), "group 2: kernel"),
    (lambda s: s["groups"][0].update(act=["relu", "gelu"]), "group 1: act"),
    (lambda s: s["groups"][2].update(colour=1), "group 3: unknown key"),
    (lambda s: s["groups"][0].update(channels=[]), "group 1: channels: empty"),
    (lambda s: s["groups"][0].update(stride=3), "group 1: stride"),
    (lambda s: s["stem"].update(channels=-4), "stem.channels"),
    (lambda s: s.update(se_gate="tanh"), "se_gate"),
])
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
    for bad, message in [(text.replace("g3.channels:", "g9.channels:"), "unknown decision"),
                         (text.replace("g1.b0.act: ", "g1.b0.act: gelu #"), "g1.b0.act='gelu' is not a choice"),
                         ("\n".join(l for l in text.splitlines() if "g3.b1" not in l), "missing decision")]:
        (tmp_path / "bad.yaml").write_text(bad)
        with pytest.raises(ConfigError, match=message):
            load_architecture(tmp_path / "bad.yaml")
