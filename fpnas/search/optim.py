"""Optimizers given as Hydra ``_partial_`` nodes (``optim.omega``, ``optim.alpha``), checked once.

The config names a torch optimizer class and its arguments; the search builds it over its
parameters later. :func:`check_optimizer` checks the common arguments with one-line messages that
name the key and a value that works, then builds the optimizer once over a dummy parameter, so a
wrong argument stops the run before any data is loaded (torch would only say so at the first step).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import torch

from fpnas.errors import ConfigError, check_option

OptimizerFactory = Callable[..., torch.optim.Optimizer]  # params -> optimizer

# argument -> (kind, minimum, exclusive, example): the arguments users tune, checked by name
_NUMBERS = {
    "lr": (float, 0, True, 0.1),
    "momentum": (float, 0, False, 0.9),
    "weight_decay": (float, 0, False, 4e-5),
    "eps": (float, 0, True, 1e-8),
    "dampening": (float, 0, False, 0.0),
}
_FLAGS = ("nesterov", "amsgrad", "maximize", "foreach")


def _name(factory) -> str:
    func = factory.func if isinstance(factory, functools.partial) else factory
    return f"{getattr(func, '__module__', '')}.{getattr(func, '__qualname__', repr(func))}".lstrip(".")


def _plain(value):
    from omegaconf import DictConfig, ListConfig, OmegaConf

    if isinstance(value, ListConfig):
        return tuple(OmegaConf.to_container(value, resolve=True))
    if isinstance(value, DictConfig):
        return OmegaConf.to_container(value, resolve=True)
    return value


def check_optimizer(key: str, factory: OptimizerFactory) -> OptimizerFactory:
    """``factory`` (config key ``key``) builds an optimizer, else a :class:`ConfigError`."""
    if not callable(factory):
        raise ConfigError(
            f"{key} must be an optimizer node (_target_: torch.optim.<Name>, _partial_: true, lr: ...), got {factory!r}"
        )
    if isinstance(factory, functools.partial):  # Hydra passes lists as ListConfig: plain tuples for torch
        factory = functools.partial(factory.func, *factory.args, **{k: _plain(v) for k, v in factory.keywords.items()})
    kwargs = factory.keywords if isinstance(factory, functools.partial) else {}
    for arg, (kind, minimum, exclusive, example) in _NUMBERS.items():
        if arg in kwargs:
            check_option(f"{key}.{arg}", kwargs[arg], kind, minimum, exclusive=exclusive, example=example)
    for arg in _FLAGS:
        if arg in kwargs and kwargs[arg] is not None:
            check_option(f"{key}.{arg}", kwargs[arg], bool, example="true")
    if "betas" in kwargs:
        betas = kwargs["betas"]
        if not (
            isinstance(betas, (list, tuple))
            and len(betas) == 2
            and all(
                isinstance(b, (int, float)) and not isinstance(b, bool) and math.isfinite(b) and 0 <= b < 1
                for b in betas
            )
        ):
            shown = list(betas) if isinstance(betas, (list, tuple)) else betas
            raise ConfigError(
                f"{key}.betas={shown} is invalid: it must be two numbers in [0, 1); e.g. {key}.betas=[0.9,0.999]"
            )
    try:
        factory([torch.nn.Parameter(torch.zeros(1))])
    except (TypeError, ValueError, RuntimeError) as exc:
        raise ConfigError(
            f"{key}: {_name(factory)} rejects its arguments ({' '.join(str(exc).split())}); "
            f"fix or remove the {key}.* keys"
        ) from None
    return factory


def describe_optimizer(factory: OptimizerFactory) -> str:
    """``torch.optim.SGD(lr=0.1, momentum=0.9)``: the class and its configured arguments."""
    kwargs = factory.keywords if isinstance(factory, functools.partial) else {}
    return f"{_name(factory)}({', '.join(f'{k}={v!r}' for k, v in kwargs.items())})"
