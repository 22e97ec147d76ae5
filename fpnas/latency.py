"""``python -m fpnas.latency``: the command alias of :mod:`fpnas.tools.latency` (also ``fpnas-latency``)."""

from fpnas.tools.latency import run

if __name__ == "__main__":
    run()
