"""Configuration changes are audit rows naming the hash before and after (start-up and SIGHUP)."""

from __future__ import annotations

import asyncio

from gateway.audit import AuditTrail
from gateway.config import load_config
from gateway.identity.wiring import TraceabilityParts, full_config_hash

CONFIG = """
[gateway]
site = "s"
ward = "w"
gateway_id = "gw1"
eui64 = "001BC50C0000AA01"
[outbox]
path = "{db}"
[[pumps]]
id = "bed03"
protocol = "alaris"
asset_tag = "{tag}"
link = {{ type = "serial", url = "/dev/null", baudrate = 38400 }}
"""


def _write(path, db, tag):
    path.write_text(CONFIG.format(db=db, tag=tag))
    return load_config(path)


def test_startup_and_sighup_record_each_configuration_change_once(tmp_path):
    db, path = tmp_path / "gw.sqlite", tmp_path / "gw.toml"
    first = _write(path, db, "MT-1")
    parts = TraceabilityParts(first, config_path=path, on_record=None)
    parts.start_up()
    parts.close()
    parts = TraceabilityParts(first, config_path=path, on_record=None)
    parts.start_up()  # same file: no new config row
    second = _write(path, db, "MT-2")
    asyncio.run(parts.on_sighup())
    path.write_text("[gateway]\nsite = \n")  # broken: refused, recorded
    asyncio.run(parts.on_sighup())
    parts.close()
    trail = AuditTrail.open_readonly(db)
    changes = [r.detail_dict for r in trail.rows(kind="config.changed")]
    assert [(c["previous_hash"], c["hash"], c["when"]) for c in changes] == [
        ("", full_config_hash(first), "start-up"),
        (full_config_hash(first), full_config_hash(second), "SIGHUP"),
    ]
    assert [r.kind for r in trail.rows(kind="config")][-1] == "config.refused"
    assert [r.kind for r in trail.rows(kind="gateway")] == ["gateway.start", "gateway.start"]
    assert trail.verify() == []
