"""``python -m fpnas.export``: the command alias of :mod:`fpnas.tools.export` (also ``fpnas-export``)."""

from fpnas.tools.export import run

if __name__ == "__main__":
    run()
