"""The byte-budget alert is raised once per crossing: a backlog that sits at the budget, its
measured size moving a little above and below it (the WAL file counts and shrinks at each
checkpoint), is one crossing, not one alert per checkpoint."""

from __future__ import annotations

from gateway.outbox import budget
from gateway.outbox.reporting import Reporter

LIMIT = 300_000


def report(reporter: Reporter, used: int) -> None:
    reporter.budget(budget.BudgetOutcome(used=used, still_over=used > LIMIT), budget_bytes=LIMIT, disk_full=False)


def test_a_backlog_hovering_at_the_budget_raises_one_alert():
    alerts: list[str] = []
    reporter = Reporter(lambda name, details: alerts.append(name))
    for used in (310_000, 299_000, 305_000, 290_000, 301_000):  # a WAL restart dips it under
        report(reporter, used)
    assert alerts == ["outbox_budget_exceeded"]
    assert reporter.over_budget


def test_falling_well_under_the_budget_ends_the_crossing_and_the_next_one_alerts_again():
    alerts: list[str] = []
    reporter = Reporter(lambda name, details: alerts.append(name))
    report(reporter, 310_000)
    report(reporter, int(LIMIT * budget.LOW_WATER))  # delivered and compacted
    assert not reporter.over_budget
    report(reporter, 320_000)
    assert alerts == ["outbox_budget_exceeded", "outbox_budget_exceeded"]
