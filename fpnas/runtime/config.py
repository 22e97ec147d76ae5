"""Config plumbing: the shipped conf/ directory and its defaults (read, so messages cannot drift), required
values, and instantiation whose unknown keys are named in one line."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from fpnas.errors import ConfigError

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"  # the shipped config groups, beside the package


def shipped_node(group: str) -> list:
    """What ``group`` (e.g. ``cost`` or ``cost.latency``) is in each shipped config file that has it."""
    import yaml

    head, *rest = group.split(".")
    files = sorted((CONF_DIR / head).glob("*.yaml")) if (CONF_DIR / head).is_dir() else [CONF_DIR / "search.yaml"]
    nodes = []
    for f in files:
        node = yaml.safe_load(f.read_text()) or {}
        for part in rest if (CONF_DIR / head).is_dir() else [head, *rest]:
            node = node.get(part) or {} if isinstance(node, dict) else {}
        nodes.append(node)
    return nodes


def shipped_example(key: str):
    """A shipped default of ``key`` (e.g. ``cost.target_mflops`` -> 0.6) for error messages, or None."""
    group, _, name = key.rpartition(".")
    for node in shipped_node(group) if group else []:
        value = node.get(name) if isinstance(node, dict) else None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return value
    return None


def shipped_keys(group: str) -> set[str]:
    """Keys ``group`` (e.g. ``cost``) has in the shipped config files (read, so it cannot drift)."""
    return {k for node in shipped_node(group) if isinstance(node, dict) for k in node}


def source_key(node: DictConfig, key: str, fallback: str) -> str:
    """The config key a user sets for ``node[key]``: the key it interpolates (``${cost.target_mflops}``
    -> ``cost.target_mflops``), else ``fallback``."""
    raw = OmegaConf.to_container(node, resolve=False).get(key)
    if isinstance(raw, str) and raw.startswith("${") and raw.endswith("}") and raw.count("${") == 1:
        inner = raw[2:-1]
        if ":" not in inner:  # a resolver (${oc.env:...}) is not a key
            return inner
    return fallback


def check_required(cfg, prefix: str = "") -> None:
    """Every ``???`` (required) value of ``cfg`` is set, else a :class:`ConfigError` naming the key.

    Walks the config without resolving interpolations (``${hydra:...}`` needs a running Hydra).
    """
    from omegaconf import DictConfig, OmegaConf

    for key in cfg:
        full = f"{prefix}{key}"
        if OmegaConf.is_missing(cfg, key):
            raise ConfigError(
                f"{full} is required and has no value: give it on the command line, "
                f"e.g. {full}=<value> (see the comment next to it in conf/)"
            )
        if not OmegaConf.is_interpolation(cfg, key) and isinstance(cfg[key], DictConfig):
            check_required(cfg[key], f"{full}.")


def instantiate_checked(node, group: str, **kwargs):
    """``hydra.utils.instantiate(node, **kwargs)``, but an unknown key names itself and the allowed
    ones (Hydra would report a TypeError from deep inside the call)."""
    import inspect

    from hydra.utils import get_method, instantiate

    target = node.get("_target_")
    try:
        params = inspect.signature(get_method(target)).parameters
    except Exception:  # noqa: BLE001 - not importable: let instantiate report it
        params = None
    if params is not None and not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        unknown = sorted(k for k in node if not str(k).startswith("_") and k not in params)
        if unknown:
            raise ConfigError(
                f"{group}.{unknown[0]} is not an option of {target}; "
                f"known: {sorted(k for k in params if k != 'self' and k not in kwargs)}"
            )
    return instantiate(node, **kwargs)
