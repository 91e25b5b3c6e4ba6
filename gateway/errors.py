"""The exception hierarchy of the gateway.

One base class; subclasses chosen by what the caller does next (fix a file and retry,
retry the link later, stop the daemon). Each carries the offending data as attributes.
"""


class PumpgwError(Exception):
    """Base of every error pumpgw raises on purpose."""


class ConfigError(PumpgwError):
    """A configuration file is unreadable or invalid; the daemon refuses to start with it."""

    def __init__(self, path: str, problems: list[str]) -> None:
        self.path = path
        self.problems = problems
        super().__init__(f"{path}: " + "; ".join(problems))
