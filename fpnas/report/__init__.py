"""Everything a person reads: console and progress lines, log handler, architecture tables, run and sweep
summaries, pictures."""
