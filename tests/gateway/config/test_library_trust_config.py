"""[library] with trusted keys: what a configuration may say, and what it is told when wrong."""

from __future__ import annotations

import pytest

from gateway.config.load import load_config_text
from gateway.errors import ConfigError

BASE = """
[gateway]
site = "s"
ward = "w"
gateway_id = "g"
eui64 = "001BC50C0000AA09"

[outbox]
path = "o.sqlite"
"""


def _load(library: str):
    return load_config_text(BASE + library, source="gw.toml")


def test_trusted_keys_without_a_path_are_a_complete_library_section(tmp_path):
    cfg = load_config_text(
        BASE
        + """
[library]
watch_dir = "library"
[[library.trusted_keys]]
file = "keys/pharmacy.pub"
key_id = "3f2a9c0d41b7e852"
valid_from = "2027-01-01T00:00:00+01:00"
""",
        source="gw.toml",
        base_dir=tmp_path,
    )
    key = cfg.library.trusted_keys[0]
    assert cfg.library.path is None and key.file == tmp_path / "keys/pharmacy.pub"
    assert cfg.library.watch_dir == tmp_path / "library" and key.valid_from.utcoffset().total_seconds() == 3600
    assert cfg.library.max_release_bytes == 2 * 1024 * 1024 and cfg.library.allow_downgrade is False


@pytest.mark.parametrize(
    ("library", "expected"),
    [
        ("[library]\nallow_downgrade = true\n", "set path (a pinned library file), trusted_keys"),
        ('[library]\npath = "l.json"\nwatch_dir = "d"\n', "watch_dir needs trusted_keys"),
        (
            '[library]\ntrusted_keys = [{ file = "k.pub", valid_from = "2027-01-01T00:00:00Z", '
            'valid_until = "2026-01-01T00:00:00Z" }]\n',
            "valid_until must be after valid_from",
        ),
        ('[library]\ntrusted_keys = [{ file = "k.pub", valid_from = "2027-01-01T00:00:00" }]\n', "timezone"),
        (
            '[library]\ntrusted_keys = [{ file = "k.pub", valid_from = "2027-01-01T00:00:00Z", key_id = "XYZ" }]\n',
            "key_id",
        ),
    ],
)
def test_a_wrong_library_section_is_refused_naming_the_problem(library, expected):
    with pytest.raises(ConfigError) as info:
        _load(library)
    assert expected in str(info.value)
