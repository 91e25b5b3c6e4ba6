"""The exception hierarchy of the gateway.

One base class; families chosen by what the caller does next (:mod:`common.errors` explains
them): :class:`RetryLater` (retry the same work later), :class:`BadInput` (report this input and
move on), or neither ("stop": a person must act). The roots live in ``common`` so drivers and
simulators share them; import them from here inside ``gateway``. Each error carries the
offending data as attributes.
"""

from common.errors import BadInput, PumpgwError, RetryLater

__all__ = ["BadInput", "ConfigError", "PumpgwError", "RetryLater"]


class ConfigError(BadInput):
    """A configuration file is unreadable or invalid; the daemon refuses to start with it."""

    def __init__(self, path: str, problems: list[str]) -> None:
        self.path = path
        self.problems = problems
        super().__init__(f"{path}: " + "; ".join(problems))
