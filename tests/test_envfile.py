"""The env file parser (`[project] env_file`): dotenv's common syntax, errors naming file:line."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchlite.envfile import env_file_path, parse_env, read_env_file, run_environment
from orchlite.errors import UsageError

NAMES = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,20}", fullmatch=True)
TEXT = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=40
)


def test_the_forms_of_a_line() -> None:
    text = """
# a comment

PLAIN=value
export EXPORTED=yes
SPACED = padded value   # a comment after
HASH=a#b
EMPTY=
DOUBLE="a \\"quoted\\" line\\nnext\\t$NOT_EXPANDED"
SINGLE='literal \\n $x'
QUOTED_COMMENT="x" # after
URL=https://example.com/a?b=c
"""
    assert parse_env(text) == {
        "PLAIN": "value",
        "EXPORTED": "yes",
        "SPACED": "padded value",
        "HASH": "a#b",
        "EMPTY": "",
        "DOUBLE": 'a "quoted" line\nnext\t$NOT_EXPANDED',
        "SINGLE": "literal \\n $x",
        "QUOTED_COMMENT": "x",
        "URL": "https://example.com/a?b=c",
    }


def test_a_later_line_wins() -> None:
    assert parse_env("A=1\nA=2\n") == {"A": "2"}


@pytest.mark.parametrize(
    ("text", "line", "why"),
    [
        ("OK=1\njust words\n", 2, "expected KEY=value"),
        ("1BAD=x\n", 1, "invalid variable name '1BAD'"),
        ("=x\n", 1, "invalid variable name ''"),
        ('OK=1\n\nA="open\n', 3, 'no closing "'),
        ("A='x' y\n", 1, "unexpected text after the closing quote"),
        ("A-B=1\n", 1, "invalid variable name 'A-B'"),
    ],
)
def test_a_bad_line_is_named_by_file_and_line(text: str, line: int, why: str) -> None:
    with pytest.raises(UsageError) as info:
        parse_env(text, "/p/.env")
    assert str(info.value) == f"/p/.env:{line}: {why}"


@given(st.dictionaries(NAMES, TEXT, max_size=8))
def test_double_quoted_values_read_back_as_written(values: dict[str, str]) -> None:
    def quote(value: str) -> str:
        escaped = value.replace("\\", "\\\\").replace('"', '\\"')
        return escaped.replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")

    lines = [f'{name}="{quote(value)}"' for name, value in values.items()]
    assert parse_env("\n".join(lines)) == values


@given(
    st.dictionaries(
        NAMES, TEXT.filter(lambda v: "'" not in v and "\n" not in v and "\r" not in v), max_size=8
    ),
    st.booleans(),
)
def test_single_quoted_values_are_literal(values: dict[str, str], export: bool) -> None:
    prefix = "export " if export else ""
    lines = [f"{prefix}{name}='{value}'" for name, value in values.items()]
    assert parse_env("\n".join(lines)) == values


@given(TEXT)
def test_any_text_parses_or_fails_with_one_located_line(text: str) -> None:
    try:
        parse_env(text, "f")
    except UsageError as exc:
        message = str(exc)
        assert message.startswith("f:") and message.split(":")[1].isdigit()


def test_the_project_file_names_it_relative_to_the_root(tmp_path: Path) -> None:
    assert env_file_path(tmp_path) is None
    assert run_environment(tmp_path, {"X": "1"}) == {"X": "1"}
    (tmp_path / "orch.toml").write_text('[project]\nenv_file = "conf/app.env"\n')
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "app.env").write_text("A=file\nB=file\n")
    assert env_file_path(tmp_path) == tmp_path / "conf" / "app.env"
    assert run_environment(tmp_path, {"B": "entry"}) == {"A": "file", "B": "entry"}


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="env file not found"):
        read_env_file(tmp_path / "nope.env")
    (tmp_path / "orch.toml").write_text('[project]\nenv_file = ""\n')
    with pytest.raises(UsageError, match="env_file must be a file name"):
        env_file_path(tmp_path)


def test_an_unreadable_orch_toml_means_no_env_file(tmp_path: Path) -> None:
    """Its schedules' readers report it; runs go on, as with every other setting."""
    (tmp_path / "orch.toml").write_text("[project\n")
    assert env_file_path(tmp_path) is None
