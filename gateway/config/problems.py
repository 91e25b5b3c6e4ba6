"""Configuration problems: the shared :class:`common.diagnostics.Problem`, and the error that
refuses a configuration file with every problem found."""

from __future__ import annotations

from common.diagnostics import KeyPath, Severity, format_key
from common.diagnostics import Problem as ConfigProblem
from gateway.errors import ConfigError

__all__ = ["ConfigFileError", "ConfigProblem", "KeyPath", "Severity", "format_key"]


class ConfigFileError(ConfigError):
    """A configuration file is invalid; ``issues`` holds every problem found, in file order.

    ``problems`` (from :class:`ConfigError`) holds the same problems rendered as text.
    """

    def __init__(self, path: str, issues: list[ConfigProblem]) -> None:
        self.issues = issues
        super().__init__(path, [str(issue) for issue in issues])
