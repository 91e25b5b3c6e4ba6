"""Broken configuration files are refused with one readable line per problem.

Each case is a whole file and the fragments its report must contain: the file and line
(``t.toml:12:``), the key path as the user wrote it, what was expected and what was found.
BASE fills lines 1-7, so a snippet appended to it starts on line 8.
"""

from __future__ import annotations

import pytest

from gateway.config import ConfigFileError, GatewayConfig, load_config
from gateway.errors import ConfigError

BASE = """\
[gateway]
site = "st-example"
ward = "icu-3"
gateway_id = "gw-1"
eui64 = "00-1B-C5-0C-00-00-00-01"
[outbox]
path = "outbox.sqlite"
"""

PUMP = """\
[[pumps]]
id = "{id}"
protocol = "{protocol}"
link = {link}
"""

SERIAL = '{ type = "serial", url = "rfc2217://10.42.16.21:4001", baudrate = 38400 }'


def pump(id: str = "bed01", protocol: str = "alaris", link: str = SERIAL) -> str:
    return PUMP.format(id=id, protocol=protocol, link=link)


DEST = """\
[[destinations]]
name = "ehr"
host = "10.10.5.20"
port = 6661
messages = ["pcd01", "pcd10"]
"""

CASES = [
    (
        "destination-name-is-a-reserved-lane",
        BASE + DEST.replace('name = "ehr"', 'name = "ehr.alarms"'),
        ["t.toml:9: destinations[0].name:", "reserved", "'.alarms'"],
    ),
    (
        "missing-gateway-table",
        '[outbox]\npath = "o.sqlite"\n',
        ["t.toml: gateway: required table [gateway] is missing"],
    ),
    ("missing-outbox-table", BASE.split("[outbox]")[0], ["t.toml: outbox: required table [outbox] is missing"]),
    (
        "bad-eui64",
        BASE.replace('"00-1B-C5-0C-00-00-00-01"', '"00-1B-C5"'),
        ["t.toml:5: gateway.eui64:", "expected an EUI-64", 'got "00-1B-C5"'],
    ),
    (
        "ward-with-space",
        BASE.replace('"icu-3"', '"icu 3"'),
        ["t.toml:3: gateway.ward:", "expected an identifier", 'got "icu 3"'],
    ),
    (
        "unknown-top-level-key",
        "pump_count = 3\n" + BASE,
        ["t.toml:1: pump_count: unknown key", "keys allowed here: gateway, pumps"],
    ),
    (
        "table-instead-of-array",
        BASE + '[pump]\nid = "x"\n',
        ['t.toml:8: pump: unknown key "pump"; did you mean pumps?'],
    ),
    (
        "unknown-key-in-pump-link",
        BASE + pump(link='{ type = "serial", url = "/dev/ttyUSB0", baud = 38400 }'),
        ['t.toml:11: pumps[0].link.baud: unknown key "baud"; did you mean baudrate?'],
    ),
    (
        "poll-interval-without-unit",
        BASE + pump() + "poll_interval = 5\n",
        ['t.toml:12: pumps[0].poll_interval: unknown key "poll_interval"; did you mean poll_interval_s?'],
    ),
    (
        "timeout-in-destination",
        BASE + DEST + "timeout_s = 10\n",
        ["t.toml:13: destinations[0].timeout_s:", "did you mean ack_timeout_s or connect_timeout_s?"],
    ),
    (
        "port-as-string",
        BASE + DEST.replace("6661", '"6661"'),
        ['t.toml:11: destinations[0].port: expected an integer; got "6661" (a string)'],
    ),
    (
        "bool-as-string",
        BASE + '[mqtt]\nenabled = "yes"\n',
        ['t.toml:9: mqtt.enabled: expected true or false; got "yes" (a string)'],
    ),
    (
        "baudrate-not-allowed",
        BASE + pump(link='{ type = "serial", url = "/dev/ttyUSB0", baudrate = 9601 }'),
        ["t.toml:11: pumps[0].link.baudrate: expected one of: 300, 1200", "got 9601"],
    ),
    (
        "duplicate-pump-id",
        BASE + pump() + pump(link=SERIAL.replace("4001", "4002")),
        ["t.toml:13: pumps[1].id: duplicate pump id 'bed01', already used by pumps[0] (line 9)"],
    ),
    (
        "duplicate-destination-name",
        BASE + DEST + DEST.replace("6661", "6662"),
        ["t.toml:14: destinations[1].name: duplicate destination name 'ehr'", "(line 9)"],
    ),
    (
        "pillar-without-slot",
        BASE + pump(protocol="bbraun-bcc", link='{ type = "tcp", host = "10.42.16.30", port = 4001, pillar = 1 }'),
        ["t.toml:11: pumps[0].link.pillar: pillar and slot must be given together", "slot is missing"],
    ),
    (
        "bbraun-on-serial",
        BASE + pump(protocol="bbraun-bcc"),
        ['t.toml:11: pumps[0].link: protocol "bbraun-bcc" needs a tcp link', 'got type = "serial"'],
    ),
    (
        "bbraun-without-rack-position",
        BASE + pump(protocol="bbraun-bcc", link='{ type = "tcp", host = "10.42.16.30", port = 4001 }'),
        ["t.toml:11: pumps[0].link: a bbraun-bcc pump is addressed by its rack position"],
    ),
    (
        "bbraun-pillar-out-of-range",
        BASE
        + pump(protocol="bbraun-bcc", link='{ type = "tcp", host = "10.42.16.30", port = 4001, pillar = 4, slot = 1 }'),
        ["t.toml:11: pumps[0].link: a SpaceCom rack has pillars 1-3; got pillar = 4"],
    ),
    (
        "ne1000-on-tcp",
        BASE + pump(protocol="ne1000", link='{ type = "tcp", host = "10.42.16.30", port = 4001 }'),
        ['t.toml:11: pumps[0].link: protocol "ne1000" needs a serial link', "rfc2217://"],
    ),
    (
        "unknown-link-type",
        BASE + pump(link='{ type = "usb", url = "/dev/ttyUSB0" }'),
        ["t.toml:11: pumps[0].link.type: expected one of: 'serial', 'tcp'; got \"usb\""],
    ),
    (
        "link-without-type",
        BASE + pump(link='{ url = "/dev/ttyUSB0" }'),
        ["t.toml:11: pumps[0].link.type: required key is missing; expected one of: 'serial', 'tcp'"],
    ),
    (
        "unsupported-url-scheme",
        BASE + pump(link='{ type = "serial", url = "tcp://10.42.16.21:4001" }'),
        ["t.toml:11: pumps[0].link.url: unsupported URL scheme 'tcp'", 'got "tcp://10.42.16.21:4001"'],
    ),
    (
        "rfc2217-without-port",
        BASE + pump(link='{ type = "serial", url = "rfc2217://10.42.16.21" }'),
        ["t.toml:11: pumps[0].link.url: rfc2217:// needs HOST:PORT"],
    ),
    (
        "missing-protocol",
        BASE + '[[pumps]]\nid = "bed01"\nlink = ' + SERIAL + "\n",
        ['t.toml:8: pumps[0].protocol: required key is missing; expected one of: "ne1000", "alaris"'],
    ),
    (
        "negative-poll-interval",
        BASE + pump() + "poll_interval_s = -1\n",
        ["t.toml:12: pumps[0].poll_interval_s: expected a value >= 0.2; got -1"],
    ),
    (
        "ttl-zero",
        BASE + DEST + "ttl_s = { pcd04 = 0 }\n",
        ["t.toml:13: destinations[0].ttl_s.pcd04: must be > 0 seconds", "got 0"],
    ),
    (
        "ttl-unknown-kind",
        BASE + DEST + "ttl_s = { pcd02 = 60 }\n",
        ["t.toml:13: destinations[0].ttl_s.pcd02: unknown key \"pcd02\"; expected one of: 'pcd01', 'pcd04'"],
    ),
    (
        "empty-messages-list",
        BASE + DEST.replace('["pcd01", "pcd10"]', "[]"),
        ["t.toml:12: destinations[0].messages: expected at least 1 item; got an empty array"],
    ),
    (
        "unknown-message-kind-in-multiline-array",
        BASE + DEST.replace('["pcd01", "pcd10"]', '[\n  "pcd01",\n  "pcd11",\n]'),
        ["t.toml:14: destinations[0].messages[1]: expected one of: 'pcd01', 'pcd04', 'pcd10' or 'dmc'; got \"pcd11\""],
    ),
    (
        "tls-cert-without-key",
        BASE + DEST + '[destinations.tls]\nenabled = true\ncert_file = "gw.crt"\n',
        [
            "t.toml:15: destinations[0].tls.cert_file: cert_file and key_file must be given together; "
            "key_file is missing"
        ],
    ),
    (
        "retry-max-below-initial",
        BASE + DEST + "retry = { initial_backoff_s = 10, max_backoff_s = 5 }\n",
        ["t.toml:13: destinations[0].retry.max_backoff_s: max_backoff_s must be >= initial_backoff_s (10); got 5"],
    ),
    (
        "library-hash-upper-case",
        BASE + '[library]\npath = "lib.json"\nsha256 = "' + "AB" * 32 + '"\n',
        ["t.toml:10: library.sha256: expected a SHA-256 as 64 lower-case hex digits"],
    ),
    (
        "date-where-string-expected",
        BASE + "[logging]\nlevel = 2026-01-01\n",
        ["t.toml:9: logging.level: expected a string, number or boolean; got the TOML date/time 2026-01-01"],
    ),
    (
        "shared-port-different-baud",
        BASE
        + pump(protocol="ne1000", link=SERIAL.replace("38400", "19200").replace("}", ", address = 1 }"))
        + pump(id="bed02", protocol="ne1000", link=SERIAL.replace("38400", "9600").replace("}", ", address = 2 }")),
        [
            "t.toml:15: pumps[1].link: serial settings 9600 8N1 differ from 19200 8N1 of pumps[0] ('bed01')",
            "rfc2217://10.42.16.21:4001",
            "(line 11)",
        ],
    ),
    (
        "shared-port-same-address",
        BASE
        + pump(protocol="ne1000", link=SERIAL.replace("}", ", address = 3 }"))
        + pump(id="bed02", protocol="ne1000", link=SERIAL.replace("}", ", address = 3 }")),
        [
            "t.toml:15: pumps[1].link.address: address 3 on rfc2217://10.42.16.21:4001 is already used by pumps[0]",
            "(line 11)",
        ],
    ),
    (
        "shared-port-without-addresses",
        BASE + pump(protocol="ne1000") + pump(id="bed02", protocol="ne1000"),
        [
            "t.toml:11: pumps[0].link: 2 pumps share rfc2217://10.42.16.21:4001: each needs a distinct address",
            "t.toml:15: pumps[1].link: 2 pumps share",
        ],
    ),
    (
        "two-alaris-on-one-port",
        BASE + pump() + pump(id="bed02"),
        ["t.toml:15: pumps[1].link.url: each alaris pump needs a serial port of its own", "(line 11)"],
    ),
    (
        "rack-slot-taken-twice",
        BASE
        + pump(protocol="bbraun-bcc", link='{ type = "tcp", host = "10.42.16.30", port = 4001, pillar = 1, slot = 2 }')
        + pump(
            id="bed02",
            protocol="bbraun-bcc",
            link='{ type = "tcp", host = "10.42.16.30", port = 4001, pillar = 1, slot = 2 }',
        ),
        [
            "t.toml:15: pumps[1].link.slot: pillar 1 slot 2 of rack 10.42.16.30:4001 is already used by pumps[0]",
            "(line 11)",
        ],
    ),
    (
        "pumps-as-inline-array",
        BASE.replace("[gateway]", 'pumps = [\n  { id = "a b", protocol = "alaris" },\n]\n[gateway]'),
        ["t.toml:2: pumps[0].id: expected an identifier", 'got "a b"', "t.toml:2: pumps[0].link: required key"],
    ),
    (
        "toml-syntax-error",
        BASE + DEST.replace("port = 6661", "port = "),
        ["t.toml:11:8: TOML syntax error: Invalid value"],
    ),
    (
        "toml-duplicate-key",
        BASE + 'path = "again.sqlite"\n',
        ["t.toml:8:", "TOML syntax error: Cannot overwrite a value"],
    ),
]


@pytest.mark.parametrize(("text", "fragments"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_malformed_config_is_refused_with_file_line_key_and_expectation(tmp_path, text, fragments):
    path = tmp_path / "t.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigFileError) as caught:
        load_config(path)
    report = "\n".join(str(p).replace(str(tmp_path) + "/", "") for p in caught.value.issues)
    for fragment in fragments:
        assert fragment in report, f"{fragment!r} not in:\n{report}"
    assert all(p.file == str(path) for p in caught.value.issues)
    assert isinstance(caught.value, ConfigError)  # callers catch the base class


def test_every_problem_in_a_file_is_reported_in_one_pass(tmp_path):
    text = (
        BASE.replace('"icu-3"', '"icu 3"')
        + pump(link='{ type = "serial", url = "/dev/ttyUSB0", baud = 38400 }')
        + pump(id="bed01", link=SERIAL.replace("4001", "4002"))
        + DEST.replace('["pcd01", "pcd10"]', "[]")
    )
    path = tmp_path / "t.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigFileError) as caught:
        load_config(path)
    keys = [p.key for p in caught.value.issues]
    assert keys == [
        ("gateway", "ward"),
        ("pumps", 0, "link", "baud"),
        ("pumps", 1, "id"),
        ("destinations", 0, "messages"),
    ]
    assert [p.line for p in caught.value.issues] == [3, 11, 13, 20]


def test_models_built_in_code_still_refuse_duplicate_pump_ids():
    data = {
        "gateway": {"site": "s", "ward": "w", "gateway_id": "g", "eui64": "001BC50C00000001"},
        "outbox": {"path": "o.sqlite"},
        "pumps": [
            {"id": "p", "protocol": "alaris", "link": {"type": "serial", "url": "/dev/ttyUSB0"}},
            {"id": "p", "protocol": "alaris", "link": {"type": "serial", "url": "/dev/ttyUSB1"}},
        ],
    }
    with pytest.raises(ValueError, match="duplicate pump id 'p'"):
        GatewayConfig.model_validate(data)
