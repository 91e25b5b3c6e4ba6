"""The clinical record across restarts, poison events and partial failures, on the real
pipeline, encoders and SQLite outbox (a "restart" abandons the pipeline without any shutdown
step, as SIGKILL does, and reopens the same file)."""

from __future__ import annotations

import io
import json
import logging
import sqlite3
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from common.pcd.parse import parse_message
from drivers.model import Alarm, ChannelSnapshot, ChannelState, PumpIdentity, PumpSnapshot, Quantity
from gateway.config import load_config_text
from gateway.events.state_codec import STATE_VERSION
from gateway.hl7 import ControlIdGenerator
from gateway.hl7.story import check_story
from gateway.log import configure_logging
from gateway.outbox import Outbox
from gateway.pipeline import Pipeline
from tests.gateway.test_pipeline import fail_inserts

CONFIG = """
[gateway]
site = "s"
ward = "w"
gateway_id = "g"
eui64 = "001BC50C0000AA03"
[outbox]
path = "unused.sqlite"
[[destinations]]
name = "ehr"
host = "127.0.0.1"
port = 2575
messages = ["pcd01", "pcd10", "pcd04"]
[[destinations]]
name = "am2"
host = "127.0.0.1"
port = 2576
messages = ["pcd04"]
[[pumps]]
id = "bed01"
location = "bed 1"
protocol = "alaris"
link = { type = "serial", url = "/dev/ttyUSB0" }
"""
T0 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
OCCLUSION = Alarm(code="E40", kind="occlusion", text="Occlusion downstream")
IDENTITY = PumpIdentity("CareFusion", "Alaris GP", serial_number="8002-51733", firmware="1.2")


def snap(
    t: float, state: ChannelState = ChannelState.INFUSING, *, rate: str = "15.4", alarms: tuple[Alarm, ...] = ()
) -> PumpSnapshot:
    channel = ChannelSnapshot("1", state, rate=Quantity(Decimal(rate), "mL/h"), alarms=alarms)
    return PumpSnapshot("bed01", IDENTITY, (channel,), received_at=T0 + timedelta(seconds=t))


class Gateway:
    """One gateway process: a pipeline on the outbox file; ``restart`` is a SIGKILL + start."""

    def __init__(self, path, **kwargs) -> None:
        self.path, self.kwargs = path, kwargs
        self.alerts: list[tuple[str, dict]] = []
        self._open()

    def _open(self) -> None:
        self.outbox = Outbox.open(self.path)
        self.pipeline = Pipeline(
            load_config_text(CONFIG),
            self.outbox,
            control_ids=ControlIdGenerator("001BC50C0000AA03"),
            pcd01_interval_s=3600,
            on_alert=lambda name, details: self.alerts.append((name, details)),
            **self.kwargs,
        )

    def restart(self) -> None:
        self.outbox.close()
        self._open()

    def rows(self, lane: str | None = None) -> list[tuple[str, str, bytes]]:
        with sqlite3.connect(self.path) as db:
            sql = "SELECT lane, control_id, payload FROM messages"
            args: tuple = ()
            if lane:
                sql, args = sql + " WHERE lane = ?", (lane,)
            return [(r[0], r[1], bytes(r[2])) for r in db.execute(sql + " ORDER BY id", args)]

    def story(self, lane_filter=("ehr", "ehr.alarms")):
        return check_story([p for lane, _, p in self.rows() if lane in lane_filter])


def phases(rows) -> list[tuple[str, str, str]]:
    """(phase, OBR-3 id, OBR-29 parent id) of each PCD-04."""
    out = []
    for _, _, payload in rows:
        msg = parse_message(payload)
        obr = msg.named("OBR")[0]
        phase = next(o.field(5) for o in msg.named("OBX") if o.component(3, 2) == "MDC_ATTR_EVENT_PHASE")
        out.append((phase, obr.component(3, 1), obr.component(29, 2).split("&")[0]))
    return out


def events(rows) -> list[str]:
    out = []
    for _, _, payload in rows:
        msg = parse_message(payload)
        if msg.msh.component(9, 2) != "R42":
            continue
        cond = next(o for o in msg.named("OBX") if o.component(3, 2) == "MDC_ATTR_EVT_COND")
        out.append(cond.component(5, 2) + (f":{cond.component(5, 9)}" if cond.component(5, 9) else ""))
    return out


@pytest.fixture(autouse=True)
def _logs():
    yield
    logging.getLogger().handlers.clear()


async def test_an_alarm_active_across_a_restart_continues_and_ends_under_its_original_onset(tmp_path):
    gw = Gateway(tmp_path / "o.sqlite")
    await gw.pipeline.on_snapshot("bed01", snap(0))
    await gw.pipeline.on_snapshot("bed01", snap(1, ChannelState.ALARM, alarms=(OCCLUSION,)))
    gw.restart()
    await gw.pipeline.on_snapshot("bed01", snap(90, ChannelState.ALARM, alarms=(OCCLUSION,)))  # continue due
    await gw.pipeline.on_snapshot("bed01", snap(95, ChannelState.STOPPED))
    alarms = phases(gw.rows("ehr.alarms"))
    onset_id = alarms[0][1]
    assert [(p, parent) for p, _, parent in alarms] == [("start", ""), ("continue", onset_id), ("end", onset_id)]
    assert gw.story().ok


async def test_an_alarm_cleared_while_the_gateway_was_down_is_ended_linked_to_its_onset(tmp_path):
    gw = Gateway(tmp_path / "o.sqlite")
    await gw.pipeline.on_snapshot("bed01", snap(1, ChannelState.ALARM, alarms=(OCCLUSION,)))
    gw.restart()
    await gw.pipeline.on_snapshot("bed01", snap(30, ChannelState.STOPPED))
    alarms = phases(gw.rows("ehr.alarms"))
    assert [p for p, _, _ in alarms] == ["start", "end"] and alarms[1][2] == alarms[0][1]
    assert gw.story().ok


async def test_a_running_infusion_is_not_started_again_after_a_restart(tmp_path):
    gw = Gateway(tmp_path / "o.sqlite")
    await gw.pipeline.on_snapshot("bed01", snap(0))
    gw.restart()
    await gw.pipeline.on_snapshot("bed01", snap(5))
    await gw.pipeline.on_snapshot("bed01", snap(6, ChannelState.STOPPED))
    assert events(gw.rows("ehr")) == ["MDC_EVT_PUMP_DELIV_START", "MDC_EVT_PUMP_DELIV_STOP"]


async def test_a_pump_reported_offline_before_a_restart_is_reported_online_once_after_it(tmp_path):
    gw = Gateway(tmp_path / "o.sqlite")
    await gw.pipeline.on_snapshot("bed01", snap(0))
    await gw.pipeline.on_comm_lost("bed01", T0 + timedelta(seconds=10), "no reply")
    gw.restart()
    await gw.pipeline.on_comm_lost("bed01", T0 + timedelta(seconds=20), "no reply")  # still away: said already
    await gw.pipeline.on_snapshot("bed01", snap(30))
    await gw.pipeline.on_snapshot("bed01", snap(31))
    assert events(gw.rows("ehr")) == [
        "MDC_EVT_PUMP_DELIV_START",
        "MDC_EVT_COMM_STATUS_CHANGE:comm-status-offline",
        "MDC_EVT_COMM_STATUS_CHANGE:comm-status-online",
    ]
    assert gw.story().ok


@pytest.mark.parametrize(
    ("version", "text", "reason"),
    [
        (STATE_VERSION + 1, "{}", "newer than this pumpgw"),
        (STATE_VERSION, "{not json", "JSONDecodeError"),
        (
            STATE_VERSION,
            json.dumps({"identity": None, "channels": [{"id": "1"}], "alarms": [], "lost": None}),
            "KeyError",
        ),
    ],
)
async def test_an_unusable_state_row_is_refused_naming_the_pump_which_then_starts_as_a_baseline(
    tmp_path, version, text, reason
):
    log = io.StringIO()
    configure_logging(level="info", fmt="json", stream=log)
    gw = Gateway(tmp_path / "o.sqlite")
    await gw.pipeline.on_snapshot("bed01", snap(0))
    gw.outbox.close()
    with sqlite3.connect(tmp_path / "o.sqlite") as db:
        db.execute("UPDATE pump_state SET version = ?, state = ? WHERE pump_id = 'bed01'", (version, text))
    gw._open()
    await gw.pipeline.on_snapshot("bed01", snap(5))
    line = next(json.loads(x) for x in log.getvalue().splitlines() if "stored clinical state unusable" in x)
    assert line["pump"] == "bed01" and line["level"] == "error" and reason in line["error"]
    assert [name for name, _ in gw.alerts] == ["pump_state_refused"]
    # from unknown: the running infusion is reported again as a baseline start (docs/hl7.md)
    assert events(gw.rows("ehr")) == ["MDC_EVT_PUMP_DELIV_START", "MDC_EVT_PUMP_DELIV_START"]


async def test_an_event_that_cannot_be_encoded_is_dropped_with_an_alert_and_never_holds_back_the_next_alarm(
    tmp_path,
):
    log = io.StringIO()
    configure_logging(level="info", fmt="json", stream=log)
    gw = Gateway(tmp_path / "o.sqlite")
    await gw.pipeline.on_snapshot("bed01", snap(0, rate="NaN"))  # the start cannot be written as HL7
    assert gw.rows() == []
    await gw.pipeline.on_snapshot("bed01", snap(1, ChannelState.ALARM, rate="NaN", alarms=(OCCLUSION,)))
    assert [lane for lane, _, _ in gw.rows()] == ["ehr.alarms", "am2.alarms"]  # at once, on both lanes
    refused = [d for name, d in gw.alerts if name == "message_not_encoded"]
    assert {(d["lane"], d["event_kind"]) for d in refused} >= {("ehr", "delivery_start"), ("ehr", "pcd01")}
    assert all(d["error_type"] == "Hl7EncodeError" for d in refused)
    assert "message not produced: cannot be encoded" in log.getvalue()


async def test_a_second_alarm_destination_failing_once_duplicates_nothing_under_a_new_control_id(tmp_path):
    gw = Gateway(tmp_path / "o.sqlite")
    await gw.pipeline.on_snapshot("bed01", snap(0))
    fail_inserts(gw.outbox, 1, lane="am2.alarms")
    await gw.pipeline.on_snapshot("bed01", snap(1, ChannelState.ALARM, alarms=(OCCLUSION,)))
    assert gw.rows("ehr.alarms") == [] and gw.rows("am2.alarms") == []  # all lanes or none
    await gw.pipeline.on_snapshot("bed01", snap(2, ChannelState.ALARM, alarms=(OCCLUSION,)))
    first, second = gw.rows("ehr.alarms"), gw.rows("am2.alarms")
    assert len(first) == 1 and len(second) == 1
    assert phases(first)[0][1] == phases(second)[0][1]  # one onset, one alert instance
    assert first[0][1] != second[0][1]  # each destination its own MSH-10, each exactly once
    assert events(gw.rows("ehr")) == ["MDC_EVT_PUMP_DELIV_START", "MDC_EVT_PUMP_DELIV_STOP"]


async def test_a_failed_commit_is_retried_with_identical_bytes_and_control_ids(tmp_path):
    gw = Gateway(tmp_path / "o.sqlite")
    seen: list[list[tuple[str, bytes]]] = []
    real_commit = gw.outbox.commit

    async def recording_commit(messages, states=()):
        seen.append([(m.control_id, m.payload) for m in messages])
        return await real_commit(messages, states)

    gw.outbox.commit = recording_commit  # observe only; the real commit runs
    fail_inserts(gw.outbox, 1)
    await gw.pipeline.on_snapshot("bed01", snap(0, ChannelState.ALARM, alarms=(OCCLUSION,)))
    await gw.pipeline.on_snapshot("bed01", snap(1, ChannelState.ALARM, alarms=(OCCLUSION,)))
    assert seen[0] and seen[1][: len(seen[0])] == seen[0]
    assert [(c, p) for _, c, p in gw.rows()] == seen[1]


async def test_the_mqtt_alarm_is_committed_in_the_same_transaction_as_the_hl7_alarms(tmp_path):
    from gateway.mqtt.outbox_queue import OutboxQueue
    from gateway.mqtt.publisher import MqttPublisher
    from gateway.mqtt.queue import decode_envelope

    config = load_config_text(CONFIG + "\n[mqtt]\nenabled = true\n")
    outbox = Outbox.open(tmp_path / "o.sqlite")
    live = MqttPublisher(config.mqtt, site="s", gateway_id="g", queue=OutboxQueue(outbox), version="t", config_hash="0")
    pipeline = Pipeline(
        config, outbox, control_ids=ControlIdGenerator("001BC50C0000AA03"), live=live, pcd01_interval_s=3600
    )
    await pipeline.on_snapshot("bed01", snap(0))
    fail_inserts(outbox, 1, lane="mqtt-alarms")  # the MQTT row fails: no HL7 alarm either
    await pipeline.on_snapshot("bed01", snap(1, ChannelState.ALARM, alarms=(OCCLUSION,)))
    with sqlite3.connect(tmp_path / "o.sqlite") as db:
        assert db.execute("SELECT count(*) FROM messages WHERE kind IN ('pcd04', 'mqtt-alarm')").fetchone() == (0,)
    await pipeline.on_snapshot("bed01", snap(2, ChannelState.ALARM, alarms=(OCCLUSION,)))
    with sqlite3.connect(tmp_path / "o.sqlite") as db:
        rows = db.execute(
            "SELECT lane, payload FROM messages WHERE kind IN ('pcd04', 'mqtt-alarm') ORDER BY id"
        ).fetchall()
    assert [lane for lane, _ in rows] == ["ehr.alarms", "am2.alarms", "mqtt-alarms"]
    topic, body = decode_envelope(bytes(rows[2][1]))
    onset_id = phases([(None, None, bytes(rows[0][1]))])[0][1]
    assert topic.endswith("/pumps/bed01/alarms") or "bed01" in topic
    assert json.loads(body)["alert_instance_id"] == onset_id
    outbox.close()


async def test_a_replaced_device_is_closed_under_its_own_identity_and_the_new_one_starts_under_its_own(tmp_path):
    from dataclasses import replace

    gw = Gateway(tmp_path / "o.sqlite")
    await gw.pipeline.on_snapshot("bed01", snap(0))
    other = replace(snap(5), identity=replace(IDENTITY, serial_number="8002-99999"))
    await gw.pipeline.on_snapshot("bed01", other)
    told = []
    for _, _, payload in gw.rows("ehr"):
        msg = parse_message(payload)
        if msg.msh.component(9, 2) == "R42":
            cond = next(o for o in msg.named("OBX") if o.component(3, 2) == "MDC_ATTR_EVT_COND")
            told.append((cond.component(5, 2), msg.named("OBX")[0].component(18, 1)))
    assert told == [
        ("MDC_EVT_PUMP_DELIV_START", "8002-51733"),
        ("MDC_EVT_PUMP_DELIV_STOP", "8002-51733"),
        ("MDC_EVT_PUMP_DELIV_START", "8002-99999"),
    ]
