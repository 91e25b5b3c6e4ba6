"""One way to use every command: the configuration as FILE or --config, options before or
after an action, a written --help for every sub-command, --duration 0 meaning the same."""

from __future__ import annotations

import argparse
import json
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request

import pytest

from common.resources import config_dir
from gateway.cli import build_parser
from gateway.outbox import Outbox


def _walk(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _walk(sub, path + (name,))


def test_every_sub_command_has_a_description_and_every_option_a_help_text():
    missing = []
    for path, parser in _walk(build_parser()):
        if not path:
            continue
        if not parser.description:
            missing.append(" ".join(path) + ": no description")
        for action in parser._actions:
            if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
                continue
            if not action.help:
                missing.append(" ".join(path) + f": {action.option_strings or action.dest} has no help")
    assert missing == []


def test_config_may_be_given_as_file_or_option_but_not_two_different_ones(tmp_path, pumpgw_cmd, subprocess_env):
    demo = str(config_dir() / "demo.toml")

    def run(*args):
        return subprocess.run([*pumpgw_cmd, *args], env=subprocess_env, capture_output=True, text=True, timeout=60)

    positional, option = run("check-config", demo, "--file-only"), run("check-config", "--file-only", "--config", demo)
    assert positional.returncode == option.returncode == 0 and positional.stdout == option.stdout
    both = run("run", demo, "--config", str(tmp_path / "other.toml"))
    assert both.returncode == 2 and "two configurations given" in both.stderr
    none = run("run")
    assert none.returncode == 2 and "no configuration given" in none.stderr


async def test_outbox_options_work_before_and_after_the_action(tmp_path, pumpgw_cmd, subprocess_env):
    db = tmp_path / "outbox.sqlite"
    ob = Outbox.open(db)
    await ob.enqueue(lane="ehr", kind="pcd10", control_id="C1", payload=b"MSH|", ttl_s=60)
    ob.close()
    before = subprocess.run(
        [*pumpgw_cmd, "outbox", "--db", str(db), "stats", "--json"],
        env=subprocess_env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    after = subprocess.run(
        [*pumpgw_cmd, "outbox", "stats", "--json", "--db", str(db)],
        env=subprocess_env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert before.returncode == after.returncode == 0, after.stderr
    first, second = json.loads(before.stdout), json.loads(after.stdout)
    for stats in (first, second):
        stats["ehr"].pop("oldest_pending_age_s")  # grows between the two runs
    assert first == second and first["ehr"]["pending"] == 1


@pytest.mark.slow
def test_demo_duration_0_runs_until_stopped_like_simulate(tmp_path, pumpgw_cmd, subprocess_env):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen(
        [
            *pumpgw_cmd,
            "demo",
            "--duration",
            "0",
            "--no-story",
            "--health-port",
            str(port),
            "--state-dir",
            str(tmp_path),
        ],
        env=subprocess_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 90
        while True:  # its health listener answering means it did not stop at once ("0 seconds")
            assert proc.poll() is None, "demo --duration 0 exited by itself"
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5):
                    break
            except urllib.error.HTTPError:  # 503 "not ready yet" is an answer too
                break
            except OSError:
                pass
            assert time.monotonic() < deadline, "demo never answered on its health port"
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_audit_options_work_after_the_action_too(tmp_path, pumpgw_cmd, subprocess_env):
    """Same convention as `outbox`: --db/--config before or after the action."""
    before = subprocess.run(
        [*pumpgw_cmd, "audit", "--db", str(tmp_path / "absent.sqlite"), "verify"],
        env=subprocess_env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    after = subprocess.run(
        [*pumpgw_cmd, "audit", "verify", "--db", str(tmp_path / "absent.sqlite")],
        env=subprocess_env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert before.returncode == after.returncode == 1
    assert before.stderr == after.stderr and "absent.sqlite" in after.stderr
