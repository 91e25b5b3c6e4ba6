"""The key locator finds the line of every key, however the TOML was written."""

from __future__ import annotations

import json
import tomllib

from hypothesis import given, settings
from hypothesis import strategies as st

from common.tomlpos import key_lines

KEYS = st.text("abcdefghijklmnopqrstuvwxyz0123456789_-", min_size=1, max_size=8)
# TOML basic strings: no surrogates, no DEL (TOML forbids it unescaped; JSON leaves it raw).
TEXT = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x7f"), max_size=12)


def basic(s: str) -> str:
    return json.dumps(s, ensure_ascii=False)


ONE_LINE = st.one_of(
    st.integers(-(10**6), 10**6).map(str),
    st.floats(-1e6, 1e6, allow_nan=False).map(repr),
    st.booleans().map(lambda b: "true" if b else "false"),
    TEXT.map(basic),
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E, exclude_characters="'"), max_size=10).map(
        lambda s: f"'{s}'"
    ),
    st.just("1979-05-27T07:32:00Z"),
)
MULTI_LINE = st.text(st.characters(exclude_categories=("Cs", "Cc"), exclude_characters='"\\\x7f'), max_size=12).map(
    lambda s: f'"""\n{s}\n"""'
)
SCALARS = st.one_of(ONE_LINE, MULTI_LINE)

FILLER = st.sampled_from(["", "# a comment", "   ", "# [[not.a.table]]", "\t# key = 1"])


@st.composite
def documents(draw):
    """A document of [[pumps]] entries, each with scalar keys, an inline table and a
    multi-line array, with blank and comment lines between; returns (text, {path: line})."""
    lines: list[str] = []
    expected: dict[tuple, int] = {}

    def emit(path: tuple, text: str) -> None:
        expected[path] = len(lines) + 1
        lines.extend(text.split("\n"))
        lines.extend(draw(FILLER) for _ in range(draw(st.integers(0, 2))))

    for index in range(draw(st.integers(1, 4))):
        emit(("pumps", index), "[[pumps]]")
        for key in draw(st.lists(KEYS, min_size=1, max_size=4, unique=True)):
            emit(("pumps", index, "k" + key), f"k{key} = {draw(SCALARS)}")
        inline = draw(st.lists(KEYS, min_size=1, max_size=3, unique=True))
        values = [draw(ONE_LINE) for _ in inline]
        for key in inline:
            expected[("pumps", index, "link", key)] = len(lines) + 1
        emit(("pumps", index, "link"), "link = { " + ", ".join(f"{k} = {v}" for k, v in zip(inline, values)) + " }")
        emit(("pumps", index, "list_x"), "list_x = [")
        for position, item in enumerate(draw(st.lists(SCALARS, max_size=3))):
            emit(("pumps", index, "list_x", position), item + ",")
        lines.append("]")
    return "\n".join(lines) + "\n", expected


@settings(max_examples=100, deadline=None)
@given(documents())
def test_every_key_is_found_on_the_line_it_was_written(doc):
    text, expected = doc
    tomllib.loads(text)  # the generator writes valid TOML
    found = key_lines(text)
    for path, line in expected.items():
        assert found.get(path) == line, (path, text)


def test_tables_dotted_keys_quoted_keys_and_nested_arrays_of_tables():
    text = (
        "top = 1\n"  # 1
        '[a."b.c" . d]\n'  # 2
        'x.y = "z"\n'  # 3
        "[[t.u]]\n"  # 4
        "v = '''\n"  # 5
        "[[t.u]]\n"  # 6 (inside a literal string, not a header)
        "'''\n"  # 7
        "[[t.u]]\n"  # 8
        'w = """a""""\n'  # 9 (two quotes before the closing delimiter)
        "[t.u.sub]\n"  # 10
        "k = [{ m = 1 }, [2, 3]]\n"  # 11
    )
    tomllib.loads(text)
    found = key_lines(text)
    assert found[("top",)] == 1
    assert found[("a", "b.c", "d")] == 2
    assert found[("a", "b.c", "d", "x", "y")] == 3
    assert found[("t", "u", 0)] == 4
    assert found[("t", "u", 0, "v")] == 5
    assert found[("t", "u", 1)] == 8
    assert found[("t", "u", 1, "w")] == 9
    assert found[("t", "u", 1, "sub")] == 10
    assert found[("t", "u", 1, "sub", "k", 0, "m")] == 11
    assert found[("t", "u", 1, "sub", "k", 1, 1)] == 11
    assert ("t", "u", 2) not in found


def test_text_the_scanner_does_not_understand_yields_what_was_found_so_far():
    found = key_lines('a = 1\nb = "unterminated\n')
    assert found == {("a",): 1, ("b",): 2}
