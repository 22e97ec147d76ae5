"""``python -m fpnas.docs``: the command alias of :mod:`fpnas.tools.docs` (also ``fpnas-docs``)."""

from fpnas.tools.docs import run

if __name__ == "__main__":
    run()
