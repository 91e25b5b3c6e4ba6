"""``pumpgw check-config`` as a biomedical engineer runs it: a real subprocess."""

from __future__ import annotations

import subprocess
import sys

import pytest

from common.resources import config_dir

pytestmark = pytest.mark.slow


def check_config(path, env, *options: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway", "check-config", str(path), *options],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_valid_ward_file_prints_pumps_grouped_by_wiring_and_exits_0(subprocess_env):
    result = check_config(config_dir() / "ward-example.toml", subprocess_env, "--file-only")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "host checks   skipped (--file-only)" in out
    assert "ward-example.toml: OK" in out
    assert "pumps         21 on 3 link(s)" in out
    server_a = out.index("serial device server 10.42.16.21 (RFC 2217)")
    server_b = out.index("serial device server 10.42.16.22 (RFC 2217)")
    rack = out.index("rack/TCP 10.42.16.30:4001")
    assert server_a < out.index("port 4008  icu3-bed08-alaris") < server_b
    assert server_b < out.index("port 4006 address 2  icu3-bed14-ne1000-b") < rack
    assert rack < out.index("pillar 2 slot 2  icu3-rack-p2s2")
    assert "alert-manager: mllp 10.10.5.40:6662 (TLS) <- pcd04" in out
    assert result.stderr == ""


def test_invalid_file_lists_every_problem_on_stderr_and_exits_1(tmp_path, subprocess_env):
    path = tmp_path / "ward.toml"
    path.write_text(
        "[gateway]\n"
        'site = "st-example"\n'
        'ward = "icu-3"\n'
        'gateway_id = "gw-1"\n'
        'eui64 = "xyz"\n'
        "[outbox]\n"
        'path = "outbox.sqlite"\n'
        "[[pumps]]\n"
        'id = "bed01"\n'
        'protocol = "alaris"\n'
        'link = { type = "serial", url = "/dev/ttyUSB0", baud = 38400 }\n',
        encoding="utf-8",
    )
    result = check_config(path, subprocess_env)
    assert result.returncode == 1
    assert result.stdout == ""
    assert f"{path}: configuration is invalid, 2 problems:" in result.stderr
    assert f"{path}:5: gateway.eui64: expected an EUI-64" in result.stderr
    assert f'{path}:11: pumps[0].link.baud: unknown key "baud"; did you mean baudrate?' in result.stderr
    assert "Traceback" not in result.stderr


def test_windows_line_endings_keep_line_numbers_right(tmp_path, subprocess_env):
    path = tmp_path / "ward.toml"
    text = (config_dir() / "ward-example.toml").read_text(encoding="utf-8")
    text = text.replace("baudrate = 19200, address = 2", "baudrate = 19200, address = 1")
    path.write_bytes(text.replace("\n", "\r\n").encode("utf-8"))
    line = next(i for i, l in enumerate(text.splitlines(), 1) if "ne1000-b" in l) + 4
    result = check_config(path, subprocess_env)
    assert result.returncode == 1
    assert f"{path}:{line}: pumps[14].link.address: address 1 on rfc2217://10.42.16.22:4006" in result.stderr


def test_missing_file_is_reported_and_exits_1(tmp_path, subprocess_env):
    result = check_config(tmp_path / "absent.toml", subprocess_env)
    assert result.returncode == 1
    assert f"{tmp_path / 'absent.toml'}: cannot read file: No such file or directory" in result.stderr
    assert "Traceback" not in result.stderr


def test_non_utf8_file_names_the_line_and_byte_and_exits_1(tmp_path, subprocess_env):
    path = tmp_path / "latin1.toml"
    path.write_bytes('[gateway]\nsite = "st-example"\nward = "Intensivstation Süd"\n'.encode("latin-1"))
    result = check_config(path, subprocess_env)
    assert result.returncode == 1
    assert f"{path}:3:26: not UTF-8 text: byte 0xFC at offset 55 (save the file as UTF-8)" in result.stderr
    assert "Traceback" not in result.stderr
