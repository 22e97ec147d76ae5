"""``python -m fpnas.show``: the command alias of :mod:`fpnas.tools.show` (also ``fpnas-show``)."""

from fpnas.tools.show import run

if __name__ == "__main__":
    run()
