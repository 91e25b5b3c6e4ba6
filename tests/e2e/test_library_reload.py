"""The daemon keeps the drug library current: SIGHUP puts a newly pinned version in force, a
broken file is refused with an alert and the previous library stays in force."""

from __future__ import annotations

import hashlib
import json
import signal
import subprocess
import time
from pathlib import Path

from common.resources import config_dir


def write_config(path: Path, library: Path, outbox: Path) -> None:
    digest = hashlib.sha256(library.read_bytes()).hexdigest()
    path.write_text(f"""
[gateway]
site = "s"
ward = "w"
gateway_id = "g"
eui64 = "001BC50C0000AA02"
incomplete_reason = "library reload test: no pumps, no destinations"

[health]
enabled = false

[outbox]
path = "{outbox}"

[library]
path = "{library}"
sha256 = "{digest}"

[logging]
format = "json"
""")


def wait_for_log(log: Path, predicate, timeout_s: float = 20) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for line in log.read_text().splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if predicate(record):
                return record
        time.sleep(0.1)
    raise AssertionError(f"no matching log line in {log}:\n{log.read_text()[-3000:]}")


def test_sighup_pins_a_new_library_and_a_broken_file_is_refused_with_an_alert(tmp_path, pumpgw_cmd, subprocess_env):
    library = tmp_path / "library.json"
    original = json.loads((config_dir() / "drug-library.example.json").read_text())
    library.write_text(json.dumps(original))
    config = tmp_path / "gw.toml"
    write_config(config, library, tmp_path / "outbox.sqlite")
    log = tmp_path / "daemon.log"
    with open(log, "wb") as err:
        proc = subprocess.Popen([*pumpgw_cmd, "run", "--config", str(config)], env=subprocess_env, stderr=err)
    try:
        wait_for_log(log, lambda r: r.get("event") == "started")
        # pharmacy releases a new version: new file, new pin in the config, then reload
        library.write_text(json.dumps({**original, "version": "example-2024.2"}))
        write_config(config, library, tmp_path / "outbox.sqlite")
        proc.send_signal(signal.SIGHUP)
        reload = wait_for_log(log, lambda r: r.get("event") == "drug library reload (SIGHUP)")
        assert reload["status"] == "loaded" and reload["version"] == "example-2024.2"
        # a damaged file (not valid JSON, not the pinned hash) is refused and alerted
        library.write_text('{"version": ')
        alert = wait_for_log(log, lambda r: r.get("event") == "gateway alert")
        assert alert["alert"] == "drug_library_refused" and alert["level"] == "error"
        proc.send_signal(signal.SIGHUP)
        second = wait_for_log(
            log, lambda r: r.get("event") == "drug library reload (SIGHUP)" and r.get("status") != "loaded"
        )
        assert second["version"] == "example-2024.2"  # the previous library stays in force
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_sighup_without_a_drug_library_keeps_the_daemon_running(tmp_path, pumpgw_cmd, subprocess_env):
    """`systemctl reload` must never end monitoring: SIGHUP's default action would."""
    config = tmp_path / "gw.toml"
    config.write_text(f"""
[gateway]
site = "s"
ward = "w"
gateway_id = "g"
eui64 = "001BC50C0000AA04"
incomplete_reason = "library reload test: no pumps, no destinations"

[health]
enabled = false

[outbox]
path = "{tmp_path / "outbox.sqlite"}"

[logging]
format = "json"
""")
    log = tmp_path / "daemon.log"
    with open(log, "wb") as err:
        proc = subprocess.Popen([*pumpgw_cmd, "run", "--config", str(config)], env=subprocess_env, stderr=err)
    try:
        wait_for_log(log, lambda r: r.get("event") == "started")
        proc.send_signal(signal.SIGHUP)
        wait_for_log(
            log,
            lambda r: (
                "nothing to reload" in r.get("event", "")
                or r.get("event") == "SIGHUP: configuration file re-read for the audit trail"
            ),
        )
        assert proc.poll() is None
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
