"""`pumpgw fleet --demo` refuses cleanly when PostgreSQL or the broker is away, naming the
address and how to start one; `pumpgw fleet passwd` prints a verifiable argon2id hash."""

from __future__ import annotations

import socket
import subprocess
import tomllib

from fleet.web.auth import verify_password
from fleet.web.settings import WebSettings


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when the block ends: nothing listens there


def test_demo_names_the_unreachable_addresses_without_a_traceback(pumpgw_cmd, subprocess_env):
    pg, mq = _closed_port(), _closed_port()
    r = subprocess.run([*pumpgw_cmd, "fleet", "--demo", "--pg", f"host=127.0.0.1 port={pg} user=postgres",
                        "--broker", f"127.0.0.1:{mq}"], capture_output=True, text=True, env=subprocess_env, timeout=60)
    assert r.returncode == 1
    assert f"PostgreSQL is not reachable at 127.0.0.1:{pg}" in r.stderr and "systemctl start postgresql" in r.stderr
    assert f"MQTT broker is not reachable at 127.0.0.1:{mq}" in r.stderr and "mosquitto" in r.stderr
    assert "Traceback" not in r.stderr + r.stdout


def test_fleet_without_command_or_demo_says_what_is_missing(pumpgw_cmd, subprocess_env):
    r = subprocess.run([*pumpgw_cmd, "fleet"], capture_output=True, text=True, env=subprocess_env, timeout=60)
    assert r.returncode == 1 and "FLEET_COMMAND or --demo" in r.stderr and "Traceback" not in r.stderr


def test_passwd_prints_a_users_entry_whose_hash_verifies(pumpgw_cmd, subprocess_env):
    r = subprocess.run([*pumpgw_cmd, "fleet", "passwd", "--stdin", "--user", "anna", "--role", "pharmacy"],
                       input="a long secret\n", capture_output=True, text=True, env=subprocess_env, timeout=60)
    assert r.returncode == 0, r.stderr
    entry = tomllib.loads(r.stdout)["web"]["users"][0]
    assert entry["name"] == "anna" and entry["role"] == "pharmacy"
    assert verify_password(entry["password_hash"], "a long secret")
    WebSettings.model_validate({"users": [entry]})
    short = subprocess.run([*pumpgw_cmd, "fleet", "passwd", "--stdin"], input="short\n", capture_output=True,
                           text=True, env=subprocess_env, timeout=60)
    assert short.returncode == 1 and "at least 8" in short.stderr
