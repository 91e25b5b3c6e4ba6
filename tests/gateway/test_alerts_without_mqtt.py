"""Without MQTT nothing drains the gateway-alert queue: alerts are logged, never queued."""

from __future__ import annotations

from gateway.config import load_config_text
from gateway.daemon import build_daemon

CONFIG = """
[gateway]
site = "s"
ward = "w"
gateway_id = "g"
eui64 = "001BC50C0000AA03"
[outbox]
path = "{path}"
[[destinations]]
name = "ehr"
host = "127.0.0.1"
port = 2575
messages = ["pcd01", "pcd10", "pcd04"]
"""


async def test_without_mqtt_each_alert_is_one_error_line_and_nothing_piles_up(tmp_path, daemon_logs):
    daemon = build_daemon(load_config_text(CONFIG.format(path=tmp_path / "o.sqlite")))
    try:
        daemon_logs.clear()
        for i in range(1500):
            daemon.alerts.raise_alert("messages_expired", {"count": i})
        assert daemon.alerts.queued == 0 and daemon.alerts.overflow == 0
        alerts = [e for e in daemon_logs if e["event"] == "gateway alert"]
        assert len(alerts) == 1500 and all(e["log_level"] == "error" for e in alerts)
        assert not any("queue full" in e["event"] for e in daemon_logs)
    finally:
        daemon.outbox.close()
