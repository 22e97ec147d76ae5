"""The ``fpnas-search`` and ``fpnas-train`` commands: ``search.py`` and ``train.py`` of the checkout this package
is installed from (``pip install -e .``), with the same arguments, so both spellings run the same program."""

from __future__ import annotations

import runpy
import sys

from fpnas.errors import ConfigError
from fpnas.runtime.config import CONF_DIR


def _run_script(name: str) -> None:
    script = CONF_DIR.parent / name
    if not script.is_file():
        raise ConfigError(f"{script} is missing: fpnas-{name[:-3]} needs an editable install (pip install -e .)")
    sys.argv[0] = str(script)
    runpy.run_path(str(script), run_name="__main__")


def search() -> None:
    """``fpnas-search [hydra overrides]`` = ``python search.py [hydra overrides]``."""
    _run_script("search.py")


def train() -> None:
    """``fpnas-train arch=<arch.yaml> [hydra overrides]`` = ``python train.py ...``."""
    _run_script("train.py")
