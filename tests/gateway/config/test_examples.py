"""The shipped configuration files validate, and the summary reflects how pumps are wired."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

from common.resources import config_dir
from gateway.commands.schema import render_config_reference
from gateway.config import load_config, load_config_report
from gateway.config.summary import link_groups, summarise

REPO = Path(__file__).resolve().parents[3]


def test_ward_example_validates_with_its_documented_wiring():
    report = load_config_report(config_dir() / "ward-example.toml")
    config = report.config
    assert len(config.pumps) == 21
    assert {p.protocol for p in config.pumps} == {"alaris", "ne1000", "bbraun-bcc"}
    routes = {d.name: d.messages for d in config.destinations}
    assert routes == {"ehr": ["pcd01", "pcd10"], "alert-manager": ["pcd04"]}
    assert config.destinations[1].ttl_s["pcd04"] == 120
    assert config.mqtt.tls.enabled and config.mqtt.tls.cert_file and config.mqtt.tls.key_file
    assert str(config.outbox.path).startswith("/var/lib/pumpgw/")
    assert str(config.library.path).startswith("/etc/pumpgw/") and len(config.library.sha256) == 64
    # No configuration warnings (files on the host are checked by gateway.config.preflight).
    assert report.warnings == []
    # The pin is the shipped example library's, so a newcomer copying both passes the gate.
    assert (
        config.library.sha256 == hashlib.sha256((config_dir() / "drug-library.example.json").read_bytes()).hexdigest()
    )


def test_ward_example_groups_pumps_by_device_server_and_rack():
    groups = link_groups(load_config(config_dir() / "ward-example.toml").pumps)
    assert list(groups) == [
        "serial device server 10.42.16.21 (RFC 2217)",
        "serial device server 10.42.16.22 (RFC 2217)",
        "rack/TCP 10.42.16.30:4001",
    ]
    assert [label for label, _ in groups["serial device server 10.42.16.21 (RFC 2217)"]] == [
        f"port {4001 + i}" for i in range(8)
    ]
    assert [label for label, _ in groups["rack/TCP 10.42.16.30:4001"]][-1] == "pillar 2 slot 2"


def test_demo_config_validates_and_warns_that_its_serial_paths_are_placeholders():
    report = load_config_report(config_dir() / "demo.toml")
    assert [p.id for p in report.config.pumps] == ["bed01", "bed02", "bed03"]
    placeholders = [w for w in report.warnings if w.key[-1:] == ("url",)]
    text = (config_dir() / "demo.toml").read_text(encoding="utf-8")
    link_lines = [n for n, line in enumerate(text.splitlines(), 1) if line.startswith("link = ")]
    assert len(link_lines) == 3
    assert [w.line for w in placeholders] == link_lines
    text = summarise(report.config, source="demo.toml", warnings=report.warnings)
    assert "serial line /dev/null" in text and "warnings      " in text


def test_summary_tells_routing_gaps_as_warnings(tmp_path):
    path = tmp_path / "g.toml"
    path.write_text(
        (config_dir() / "demo.toml")
        .read_text(encoding="utf-8")
        .replace('messages = ["pcd01", "pcd10", "pcd04"]', 'messages = ["pcd01", "pcd10"]'),
        encoding="utf-8",
    )
    report = load_config_report(path)
    gaps = [w for w in report.warnings if "routed to no destination" in w.message]
    assert [w.message.split()[0] for w in gaps] == ["pcd04"]


def test_committed_config_reference_matches_the_schema():
    committed = (REPO / "docs" / "config-reference.md").read_text(encoding="utf-8")
    assert committed == render_config_reference(), (
        "docs/config-reference.md is stale: run `pumpgw schema --docs docs/config-reference.md`"
    )


def test_config_reference_lists_every_key_of_every_table():
    text = render_config_reference()
    for key in (
        "eui64",
        "baudrate",
        "pillar",
        "ack_timeout_s",
        "ttl_s",
        "max_backoff_s",
        "password_file",
        "delivered_retention_s",
        "sha256",
        "wire_trace",
        "shutdown_timeout_s",
    ):
        assert f"| {key} |" in text
    for table in (
        "`[gateway]`",
        "`[[pumps]]`",
        '`pumps.link` when type = "serial"',
        "`[destinations.tls]`",
        "`[mqtt.tls]`",
        "`[outbox]`",
        "`[library]`",
    ):
        assert f"## {table}" in text


def test_schema_command_writes_the_schema_and_the_reference(tmp_path, subprocess_env):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "gateway",
            "schema",
            "--out",
            str(tmp_path / "schema"),
            "--docs",
            str(tmp_path / "ref.md"),
        ],
        env=subprocess_env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "ref.md").read_text(encoding="utf-8") == render_config_reference()
    assert (tmp_path / "schema" / "gateway.schema.json").read_text(encoding="utf-8") == (
        config_dir() / "schema" / "gateway.schema.json"
    ).read_text(encoding="utf-8")
