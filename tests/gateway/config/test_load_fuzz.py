"""Whatever a hand edit does to a valid file, the loader answers with problems, never a crash."""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from common.resources import config_dir
from gateway.config import ConfigFileError, load_config_text

WARD = (config_dir() / "ward-example.toml").read_text(encoding="utf-8")
LINES = WARD.split("\n")
VALUE_LINES = [i for i, line in enumerate(LINES) if " = " in line and not line.lstrip().startswith("#")]

REPLACEMENTS = st.one_of(
    st.sampled_from(
        [
            '""',
            "0",
            "-1",
            "1e9",
            "nan",
            "inf",
            "true",
            '"x y"',
            "[]",
            "{}",
            '{ type = "tcp" }',
            "2026-01-01",
            '"rfc2217://10.42.16.21:4001"',
            "[1, 2]",
            '"pcd04"',
            "19200",
        ]
    ),
    st.integers(-(2**40), 2**40).map(str),
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E, exclude_characters='"\\'), max_size=8).map(
        lambda s: f'"{s}"'
    ),
)


@st.composite
def edited_ward_files(draw) -> str:
    lines = list(LINES)
    for _ in range(draw(st.integers(1, 4))):
        index = draw(st.sampled_from(VALUE_LINES))
        key, _, _ = lines[index].partition(" = ")
        action = draw(st.sampled_from(["value", "key", "delete", "duplicate"]))
        if action == "value":
            lines[index] = f"{key} = {draw(REPLACEMENTS)}"
        elif action == "key":  # a misspelt key: a unit dropped, or a letter added
            name = key.strip()
            renamed = name.removesuffix("_s") if name.endswith("_s") else name + draw(st.sampled_from(["s", "_x"]))
            lines[index] = lines[index].replace(name, renamed, 1)
        elif action == "delete":
            lines[index] = "# deleted"
        else:
            lines.insert(draw(st.sampled_from(VALUE_LINES)), lines[index])
    return "\n".join(lines)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(edited_ward_files())
def test_edited_ward_file_loads_or_lists_located_problems(text):
    try:
        load_config_text(text, source="ward.toml", base_dir=Path("/etc/pumpgw"))
    except ConfigFileError as exc:
        assert exc.issues, "an invalid file must name at least one problem"
        line_count = text.count("\n") + 1
        for issue in exc.issues:
            assert issue.file == "ward.toml" and issue.message
            assert issue.line is None or 1 <= issue.line <= line_count
            assert str(issue).startswith("ward.toml")
