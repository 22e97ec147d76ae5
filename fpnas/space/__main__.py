"""``python -m fpnas.space <name | file | arch.yaml>``: print a search space's report (of an
architecture file: the report of its space)."""

import sys

from fpnas.space.report import main

sys.exit(main())
