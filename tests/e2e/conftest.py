"""Shared helpers for end-to-end tests: write a gateway config pointing at simulators."""

from __future__ import annotations

from pathlib import Path


def write_gateway_config(
    path: Path,
    *,
    ptys: dict[str, str],
    ehr_port: int,
    outbox: Path,
    pcd01_interval_s: float = 1.0,
    poll_interval_s: float = 0.5,
    extra: str = "",
    health_port: int | None = None,
) -> Path:
    pumps = "".join(
        f"""
[[pumps]]
id = "{pump_id}"
protocol = "ne1000"
location = "test bed {n}"
care_area = "ICU"
poll_interval_s = {poll_interval_s}
request_timeout_s = 0.5
link = {{ type = "serial", url = "{pty}", baudrate = 19200 }}
"""
        for n, (pump_id, pty) in enumerate(sorted(ptys.items()), 1)
    )
    path.write_text(
        f"""
[gateway]
site = "test-site"
ward = "icu-t"
gateway_id = "gw-test"
eui64 = "001BC50C0000AA01"
{'incomplete_reason = "draining the outbox (test)"' if not ptys else ""}

[hl7]
pcd01_interval_s = {pcd01_interval_s}
processing_id = "D"

[outbox]
path = "{outbox}"

[logging]
format = "json"

[health]
{f"port = {health_port}" if health_port else "enabled = false"}

[[destinations]]
name = "ehr"
host = "127.0.0.1"
port = {ehr_port}
messages = ["pcd01", "pcd10", "pcd04"]
ack_timeout_s = 2
connect_timeout_s = 2
retry = {{ initial_backoff_s = 0.1, max_backoff_s = 0.5 }}
{pumps}
{extra}
""",
        encoding="utf-8",
    )
    return path
