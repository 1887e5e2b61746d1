"""Errors a user can act on: the message names the file, the key or column, and what was expected."""


class VggheadsError(Exception):
    """Base class: the CLI prints the message alone (no traceback) and exits with status 2."""


class ConfigError(VggheadsError):
    """params.yaml has a wrong key or value."""


class InputError(VggheadsError):
    """An input file is missing, unreadable, or lacks a required column."""


class NoDataError(VggheadsError):
    """Earlier stages left a stage nothing to work on; the message names the cause and the setting to change."""


class MissingWeightsError(VggheadsError):
    """A model file the chosen backend needs is not on disk."""

    def __init__(self, what: str, path, how: str):
        self.path = path
        super().__init__(f"{what} not found at '{path}'. {how}")
