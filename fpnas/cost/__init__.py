"""What an architecture costs and how a budget is penalised: additive per-block metrics (FLOPs, params,
latency tables) and the generic constraint."""
