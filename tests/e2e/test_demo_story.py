"""`pumpgw demo` tells its story: each step announced on the terminal as the gateway sees it
and the EHR receives it; afterwards its temporary folder and its retained MQTT topics are
gone. A real subprocess, real ptys, a real Mosquitto broker."""

from __future__ import annotations

import os
import subprocess

from tests.gateway.mqtt.conftest import Broker, Subscriber, broker, make_broker  # noqa: F401  (fixtures)

STORY = [  # (who, what) in the order they must be announced
    ("bed02", "ward: nurse starts sodium chloride"),
    ("bed02", "gateway: stopped -> infusing"),
    ("EHR", "received PCD-10 event 'deliv start' for ICU-3 bed 2"),
    ("bed01", "ward: nurse titrates dopamine"),
    ("bed01", "gateway: rate 15.4 mL/h -> 22 mL/h"),
    ("bed03", "ward: the heparin line kinks: occlusion"),
    ("bed03", "gateway: ALARM motor_stalled raised"),
    ("EHR", "received PCD-04 alarm 'pump motor stalled' (start) for ICU-3 bed 3"),
    ("bed03", "gateway: alarm motor_stalled cleared"),
    ("bed03", "ward: nurse clears the occlusion and restarts"),
    ("bed01", "ward: 1200 mL/h keyed in by mistake"),
    ("bed01", "drug library: CRITICAL above_hard_max"),
    ("bed02", "ward: its USB cable is pulled"),
    ("bed02", "gateway: COMMUNICATION LOST"),
    ("bed02", "ward: cable plugged back in"),
    ("bed02", "gateway: communication restored"),
    ("demo", "story complete"),
]


def test_demo_announces_each_step_of_its_story_and_cleans_up(tmp_path, pumpgw_cmd, subprocess_env, broker: Broker):  # noqa: F811
    watcher = Subscriber(broker, ["pumpgw/v1/#"])
    env = {**subprocess_env, "TMPDIR": str(tmp_path)}
    try:
        result = subprocess.run(
            [
                *pumpgw_cmd,
                "demo",
                "--story-pace",  # the story ends at 30 s, then the demo stops; --duration only caps it
                "0.5",
                "--exit-after-story",
                "--duration",
                "90",
                "--status-every",
                "100",
                "--mqtt",
                f"{broker.host}:{broker.port}",
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        watcher.client.loop_stop()
        watcher.client.disconnect()
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stdout.splitlines() if line.startswith("[")]
    position = 0
    for who, what in STORY:
        found = next((i for i, line in enumerate(lines[position:], position) if f"] {who:<8} {what}" in line), None)
        assert found is not None, f"not announced (in order): {who} {what}\n" + "\n".join(lines)
        position = found + 1
    # nothing from the power-up of the simulated pumps: the story starts clean
    assert "pump was reset" not in result.stdout
    # the temporary folder is gone
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("pumpgw-demo-")] == []
    # every retained topic the demo set was cleared at the end (an empty retained message)
    retained = {}
    for topic, payload, _retain in watcher.history:
        if topic.endswith(("/status", "/inventory", "/availability", "/state")):
            retained[topic] = payload
    assert retained and all(payload == b"" for payload in retained.values()), {t: p[:40] for t, p in retained.items()}
    assert "MQTT: removed" in result.stdout
    assert os.path.isdir(tmp_path)
