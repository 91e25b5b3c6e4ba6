"""What every configuration table shares: strictness, id syntax, rule errors.

Unknown keys are errors (``extra="forbid"``): a misspelt key silently ignored is how a pump
ends up unmonitored.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict
from pydantic_core import PydanticCustomError

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
"""Ids and names that key topics, logs and outbox lanes."""

# Pass ``context={DEFER_CROSS_CHECKS: True}`` to ``model_validate*`` to skip the checks
# across pumps and destinations; the file loader runs them itself so that it can report
# every one of them with its line, not just the first.
DEFER_CROSS_CHECKS = "pumpgw.defer_cross_checks"


def rule_error(key: str, message: str) -> PydanticCustomError:
    """A rule across fields of one table, reported at ``key`` (the field to look at first)."""
    return PydanticCustomError("config_rule", message, {"key": key})


class StrictModel(BaseModel):
    # inf/nan are refused: "never" is not a duration here (a pump whose comm_lost_after_s is
    # inf would never be reported lost).
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
