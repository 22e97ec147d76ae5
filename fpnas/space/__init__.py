"""Search spaces: spec (data), analytic complexity, weight-shared super-net, standalone builder."""

from fpnas.space.spec import BlockConfig, Decision, SearchSpace

__all__ = ["SearchSpace", "Decision", "BlockConfig"]
