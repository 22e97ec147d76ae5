"""``python -m fpnas.space <name>``: print a search space's report."""
import sys

from fpnas.space.report import main

sys.exit(main())
