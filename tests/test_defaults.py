"""One home per default (#27): a value that a file under conf/ passes to an fpnas constructor is set there only.

The Python constructors that conf/ instantiates (every ``_target_`` in fpnas) have no default of their own for
an argument their conf node passes: such a default would be a second home that can drift from the file a user
overrides (it did: LastCheckpoint's every_n_steps was 0 in Python and 500 in conf/). Arguments that no conf file
passes keep theirs. Read from the conf files and the signatures themselves, so a new default cannot creep back.
"""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
import yaml
from hydra.utils import get_method

CONF = Path(__file__).resolve().parents[1] / "conf"


def _nodes(node, where: str):
    """(where, node) of every mapping with a ``_target_`` in ``node``, nested ones included."""
    if isinstance(node, dict):
        if "_target_" in node:
            yield where, node
        for key, value in node.items():
            yield from _nodes(value, f"{where}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _nodes(value, f"{where}[{i}]")


FPNAS_NODES = [
    (f"{path.relative_to(CONF.parent)}{where}", node)
    for path in sorted(CONF.rglob("*.yaml"))
    for where, node in _nodes(yaml.safe_load(path.read_text()), "")
    if str(node["_target_"]).startswith("fpnas.")
]


def _signatures(target):
    """The fpnas-defined signatures that receive a call of ``target``: a function's own; for a class, the
    ``__init__`` of every fpnas class in its method resolution order (a subclass hands its arguments to its
    base classes, by name or through ``**kwargs``). Signatures of other packages' classes (Lightning's) are
    not fpnas's to change."""
    if not inspect.isclass(target):
        return [(target.__qualname__, inspect.signature(target))]
    return [
        (f"{cls.__qualname__}.__init__", inspect.signature(cls.__dict__["__init__"]))
        for cls in target.__mro__
        if "__init__" in cls.__dict__ and cls.__module__.startswith("fpnas.")
    ]


def test_conf_instantiates_fpnas_constructors():
    """The test below has something to check: the callbacks, data modules and cost terms are among them."""
    targets = {node["_target_"] for _, node in FPNAS_NODES}
    assert {
        "fpnas.search.callbacks.SearchStatsLogger",
        "fpnas.search.callbacks.SearchPlots",
        "fpnas.runtime.checkpoint.LastCheckpoint",
        "fpnas.data.DigitsDataModule",
        "fpnas.data.ClutteredMnist5kDataModule",
        "fpnas.data.ImageFolderDataModule",
        "fpnas.cost.constraint.Constraint",
    } <= targets


@pytest.mark.parametrize("where,node", FPNAS_NODES, ids=[where for where, _ in FPNAS_NODES])
def test_no_python_default_for_what_conf_passes(where, node):
    target = node["_target_"]
    doubled = [
        f"{name}({key}={param.default!r})"
        for name, signature in _signatures(get_method(target))
        for key, param in signature.parameters.items()
        if key in node and param.default is not inspect.Parameter.empty
    ]
    assert not doubled, (
        f"{where} passes these to {target}, whose Python signature also gives them a default: {', '.join(doubled)}. "
        "The conf file is their one home: remove the Python defaults"
    )
