"""How a run runs: config checks and instantiation, the trainer, checkpoint I/O, resume, launch, distributed
helpers, threads, the run directory, loggers, sweep checks and the entry points' error handling. Imports only
:mod:`fpnas.errors`."""
