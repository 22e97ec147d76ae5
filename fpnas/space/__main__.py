"""``python -m fpnas.space <name | file | arch.yaml>``: the command alias of :mod:`fpnas.tools.space` (also
``fpnas-space``): print a search space's report (of an architecture file: the report of its space)."""

from fpnas.tools.space import run

run()
