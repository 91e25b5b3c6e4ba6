"""``check-config`` security warnings, as a reviewer would trigger them: real files, real CLI."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow

BASE = (
    '[gateway]\nsite = "st-example"\nward = "icu-3"\ngateway_id = "gw-1"\neui64 = "0011223344556677"\n'
    '[[pumps]]\nid = "bed01"\nprotocol = "alaris"\nlink = {{ type = "serial", url = "/dev/ttyUSB0" }}\n'
    '[outbox]\npath = "{outbox}"\n'
)


def check(tmp_path, env, extra: str = "", outbox: str | None = None) -> str:
    path = tmp_path / "gw.toml"
    path.write_text(BASE.format(outbox=outbox or str(tmp_path / "outbox.sqlite")) + extra, encoding="utf-8")
    # --file-only: these files are deliberately not deployable (no destination, outbox folders
    # that do not exist here); the warnings under test come from the file check
    r = subprocess.run(
        [sys.executable, "-m", "gateway", "check-config", str(path), "--file-only"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    return r.stdout


def mqtt(host: str, secret, tls: bool = False) -> str:
    return f'[mqtt]\nenabled = true\nhost = "{host}"\nusername = "gw1"\npassword_file = "{secret}"\n' + (
        "tls = { enabled = true }\n" if tls else ""
    )


def test_a_world_readable_password_file_is_flagged_and_a_private_one_is_not(tmp_path, subprocess_env):
    secret = tmp_path / "mqtt.secret"
    secret.write_text("s3cret\n")
    secret.chmod(0o644)
    out = check(tmp_path, subprocess_env, mqtt("127.0.0.1", secret))
    assert f"{secret} is world-readable (mode 0644): it holds a secret" in out
    secret.chmod(0o600)
    assert "it holds a secret" not in check(tmp_path, subprocess_env, mqtt("127.0.0.1", secret))


def test_a_world_readable_tls_key_of_a_destination_is_flagged(tmp_path, subprocess_env):
    key = tmp_path / "client.key"
    key.write_text("-----BEGIN PRIVATE KEY-----\n")
    key.chmod(0o604)
    dest = (
        '[[destinations]]\nname = "doc"\nhost = "10.0.0.5"\nport = 6661\nmessages = ["pcd01"]\n'
        f'tls = {{ enabled = true, cert_file = "{tmp_path / "c.pem"}", key_file = "{key}" }}\n'
    )
    assert f"{key} is world-readable (mode 0604)" in check(tmp_path, subprocess_env, dest)


def test_plaintext_mqtt_with_a_password_to_another_host_is_flagged_but_not_on_loopback_or_with_tls(
    tmp_path, subprocess_env
):
    secret = tmp_path / "mqtt.secret"
    secret.write_text("s3cret\n")
    secret.chmod(0o600)
    assert "MQTT credentials go to 10.1.2.3 in plain text" in check(tmp_path, subprocess_env, mqtt("10.1.2.3", secret))
    assert "in plain text" not in check(tmp_path, subprocess_env, mqtt("127.0.0.1", secret))
    assert "in plain text" not in check(tmp_path, subprocess_env, mqtt("broker.example.org", secret, tls=True))


@pytest.mark.parametrize(
    ("where", "what"),
    [
        ("/tmp/pumpgw/outbox.sqlite", "volatile"),
        ("/var/tmp/outbox.sqlite", "volatile"),
        ("/etc/pumpgw/outbox.sqlite", "read-only under the unit"),
    ],
)
def test_an_outbox_the_unit_makes_volatile_or_read_only_is_flagged(tmp_path, subprocess_env, where, what):
    out = check(tmp_path, subprocess_env, outbox=where)
    assert f"outbox.path: {where} is {what}" in out


def test_an_outbox_under_var_lib_is_not_flagged(tmp_path, subprocess_env):
    assert "outbox.path" not in check(tmp_path, subprocess_env, outbox="/var/lib/pumpgw/outbox.sqlite")


def test_a_world_readable_outbox_file_is_flagged(tmp_path, subprocess_env):
    db = tmp_path / "outbox.sqlite"
    db.write_bytes(b"")
    os.chmod(db, 0o644)
    assert "it holds raw HL7 with patient data" in check(tmp_path, subprocess_env)


def test_systemd_credentials_are_not_flagged_and_not_reported_missing(tmp_path, subprocess_env):
    out = check(tmp_path, subprocess_env, mqtt("127.0.0.1", "credential:mqtt-password"))
    assert "credential:mqtt-password" not in out
