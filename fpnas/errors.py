"""Errors that mean "the user asked for something wrong": shown as one line with a hint."""


class ConfigError(ValueError):
    """Bad configuration, space file, architecture file or argument."""
