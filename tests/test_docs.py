"""The README and docs/ agree with the code: commands, options, links, the nav, the length.

Every `orch ...` command line and every `--option` the pages mention must exist in the CLI
(read from the click command tree, in this process); every command and option must be in
the CLI reference; relative links and their anchors must resolve; every page must be in
the nav of mkdocs.yml; and the README must stay short enough to finish.
"""

from __future__ import annotations

import re
import shlex
import sys
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from orchlite.cli import app
from orchlite.errors import ExitCode

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
README = REPO / "README.md"
CLI_REFERENCE = DOCS / "reference" / "cli.md"
PAGES = [README, *sorted(DOCS.rglob("*.md"))]
README_MAX_LINES = 300

ROOT = typer.main.get_command(app)
HELP_OPTIONS = {"-h", "--help"}
FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```[ \t]*$", re.M | re.S)
SHELL_BLOCKS = {"sh", "bash", "console", "text", ""}


def _name(page: Path) -> str:
    return str(page.relative_to(REPO))


def _option_names(command: Any) -> set[str]:
    names: set[str] = set()
    for param in command.params:
        if param.param_type_name == "option":
            names.update(param.opts, param.secondary_opts)
    return names


GLOBAL_OPTIONS = _option_names(ROOT)


def _commands(group: Any, prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    found = []
    for name, command in sorted(getattr(group, "commands", {}).items()):
        path = (*prefix, name)
        found.append((path, command))
        found.extend(_commands(command, path))
    return found


COMMANDS = _commands(ROOT)
ALL_OPTIONS = GLOBAL_OPTIONS | HELP_OPTIONS | {o for _, c in COMMANDS for o in _option_names(c)}


# -- reading the pages ---------------------------------------------------------------------


@dataclass(frozen=True)
class Mention:
    page: str
    text: str


def _prose(markdown: str) -> str:
    """`markdown` without its fenced code blocks."""
    return FENCE.sub("", markdown)


def _code_spans(markdown: str) -> list[str]:
    """Inline code in the prose, a span broken over two lines joined again."""
    return [" ".join(span.split()) for span in re.findall(r"`([^`]+)`", _prose(markdown))]


def _shell_lines(markdown: str) -> list[str]:
    lines = []
    for language, body in FENCE.findall(markdown):
        if language in SHELL_BLOCKS:
            lines += [line.removeprefix("$ ") for line in body.splitlines()]
    return lines


def _words(text: str) -> list[str]:
    try:
        return shlex.split(text, comments=True)
    except ValueError:  # an unbalanced quote in prose: whitespace will do
        return text.split()


def _orch_invocations(text: str) -> list[list[str]]:
    """The argument lists of the `orch` commands in one shell line or code span."""
    found: list[list[str]] = []
    segment: list[str] = []
    for word in [*_words(text), ";"]:
        if word in ("|", "||", "&&", ";") or word.startswith((">", "2>")):
            while segment and re.fullmatch(r"[A-Z_]+=\S*", segment[0]):  # VAR=value orch ...
                segment.pop(0)
            if segment and segment[0] == "orch":
                found.append(segment[1:])
            segment = []
        else:
            segment.append(word)
    return found


def _mentions() -> tuple[list[tuple[Mention, list[str]]], list[tuple[Mention, str]]]:
    """(`orch` invocations, inline `--option` spans) over every page."""
    invocations = []
    options = []
    for page in PAGES:
        markdown = page.read_text()
        for text in [*_code_spans(markdown), *_shell_lines(markdown)]:
            mention = Mention(_name(page), text)
            invocations += [(mention, args) for args in _orch_invocations(text)]
        for span in _code_spans(markdown):
            if re.match(r"--[a-z]", span):  # short ones (`-k`, `-m`) are often pytest's
                options.append((Mention(_name(page), span), span.split()[0].split("=")[0]))
    return invocations, options


INVOCATIONS, OPTION_SPANS = _mentions()


def _resolve(args: list[str]) -> tuple[Any, tuple[str, ...], list[str]]:
    """The command `orch ARGS` names, its path, and the arguments left for it."""
    rest = list(args)
    command, path = ROOT, ()
    while rest:
        word = rest[0]
        if word == "--home":
            rest = rest[2:]
        elif word in GLOBAL_OPTIONS:  # --debug, --version: flags, wherever they stand
            rest.pop(0)
        elif word.startswith("-") or not hasattr(command, "commands"):
            break
        elif word in getattr(command, "commands", {}):
            command = command.commands[word]
            path = (*path, word)
            rest.pop(0)
        else:
            break
    return command, path, rest


def _placeholder(word: str) -> bool:
    """`RUN`, `COMMAND`, `<id>`, `...`: a word standing for what the reader fills in."""
    return word == "..." or word.isupper() or word.startswith("<")


# -- commands and options that the pages mention --------------------------------------------


def test_the_pages_mention_commands() -> None:
    assert len(INVOCATIONS) > 100
    assert {tuple(_resolve(args)[1][:1]) for _, args in INVOCATIONS} >= {
        path[:1] for path, _ in COMMANDS
    }


def _problems_of(mention: Mention, args: list[str]) -> list[str]:
    """What is wrong with one `orch ARGS` line of the pages: no such command or option."""
    command, path, rest = _resolve(args)
    where = f"{mention.page}: {mention.text!r}"
    words = [w for w in rest if not w.startswith("-") and not _placeholder(w)]
    if path == () and words:
        return [f"{where}: `orch {words[0]}` is not a command"]
    is_group = hasattr(command, "commands")
    if is_group and words and rest[0] == words[0] and not command.invoke_without_command:
        return [f"{where}: `orch {' '.join(path)} {words[0]}` is not a command"]
    known = _option_names(command) | GLOBAL_OPTIONS | HELP_OPTIONS
    problems = []
    for word in rest:
        if word == "--":
            break
        option = word.strip("[]").split("=")[0]
        if re.fullmatch(r"--?[A-Za-z][\w-]*", option) and option not in known:
            problems.append(f"{where}: `orch {' '.join(path)}` has no option {option}")
    return problems


def test_every_orch_command_line_exists() -> None:
    problems = [p for mention, args in INVOCATIONS for p in _problems_of(mention, args)]
    assert problems == [], "\n".join(problems)


def test_every_option_mentioned_exists() -> None:
    problems = [
        f"{mention.page}: no `orch` command has the option {option} ({mention.text!r})"
        for mention, option in OPTION_SPANS
        if option.strip("[]") not in ALL_OPTIONS
    ]
    assert OPTION_SPANS, "no inline `--option` found in the pages"
    assert problems == [], "\n".join(problems)


# -- the CLI reference documents every command and option ----------------------------------


def _sections(markdown: str) -> dict[str, str]:
    """Heading text → the text under it, up to the next heading of any level."""
    parts = re.split(r"^#{1,6} (.+)$", _prose(markdown), flags=re.M)
    return {parts[i].strip(): parts[i + 1] for i in range(1, len(parts) - 1, 2)}


REFERENCE = _sections(CLI_REFERENCE.read_text())


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=[" ".join(p) for p, _ in COMMANDS])
def test_every_command_has_help_and_a_reference_entry(path: tuple[str, ...], command: Any) -> None:
    result = CliRunner().invoke(app, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output
    title = f"orch {' '.join(path)}"
    if hasattr(command, "commands") and not command.params:
        assert title in CLI_REFERENCE.read_text(), f"`{title}` is not in {_name(CLI_REFERENCE)}"
        return
    assert title in REFERENCE, f"{_name(CLI_REFERENCE)} has no '### {title}' section"
    for option in sorted(_option_names(command)):
        assert f"`{option}" in REFERENCE[title] or f" {option}`" in REFERENCE[title], (
            f"{_name(CLI_REFERENCE)}: the section '{title}' does not mention {option}"
        )


LEAVES = [(p, c) for p, c in COMMANDS if not hasattr(c, "commands") or c.params]


def _help_examples(output: str) -> list[list[str]]:
    """The `orch` lines a command's --help shows: its Examples block and `orch ...` spans."""
    texts = [line.strip() for line in output.splitlines() if line.strip().startswith("orch ")]
    texts += re.findall(r"`(orch [^`]+)`", " ".join(output.split()))
    return [args for text in texts for args in _orch_invocations(text)]


@pytest.mark.parametrize(("path", "command"), LEAVES, ids=[" ".join(p) for p, _ in LEAVES])
def test_every_command_shows_examples_that_work(path: tuple[str, ...], command: Any) -> None:
    output = CliRunner().invoke(app, [*path, "--help"], terminal_width=200).output
    examples = _help_examples(output)
    assert examples, f"`orch {' '.join(path)} --help` shows no example"
    mention = Mention(f"orch {' '.join(path)} --help", "")
    problems = [p for args in examples for p in _problems_of(mention, args)]
    assert problems == [], "\n".join(problems)
    assert any(_resolve(args)[1] == path for args in examples), (
        f"`orch {' '.join(path)} --help` shows no example of itself"
    )


def test_the_reference_lists_the_global_options() -> None:
    for option in GLOBAL_OPTIONS | HELP_OPTIONS:
        assert f"`{option}" in REFERENCE["Global options"], option


def test_every_exit_code_is_documented() -> None:
    table = (DOCS / "reference" / "exit-codes.md").read_text()
    for code in ExitCode:
        assert re.search(rf"^\| {int(code)} \|", table, re.M), f"exit code {int(code)}"


# -- links, the nav, the README ------------------------------------------------------------


def _slug(heading: str) -> str:
    """The anchor Python-Markdown's `toc` gives a heading (what mkdocs links to)."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).replace("`", "")
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    text = re.sub(r"[^\w\s-]", "", text).strip().lower()
    return re.sub(r"[-\s]+", "-", text)


def _anchors(page: Path) -> set[str]:
    return {_slug(h) for h in re.findall(r"^#{1,6} (.+)$", _prose(page.read_text()), re.M)}


LINKS = [
    (page, target)
    for page in PAGES
    for target in re.findall(r"\]\(([^)\s]+)\)", _prose(page.read_text()))
    if not re.match(r"[a-z]+:", target)
]


def test_the_pages_have_links() -> None:
    assert len(LINKS) > 50


def _link_problem(page: Path, target: str) -> str | None:
    path, _, anchor = target.partition("#")
    linked = (page.parent / path).resolve() if path else page
    where = f"{_name(page)}: {target}"
    if not linked.exists():
        return f"{where} does not exist"
    if page.is_relative_to(DOCS) and not linked.is_relative_to(DOCS):
        return f"{where} leaves docs/, which the site cannot link to"
    if anchor and linked.suffix != ".md":
        return f"{where} has an anchor on a file that is not a page"
    if anchor and anchor not in _anchors(linked):
        return f"{where}: no heading gives the anchor #{anchor}"
    return None


def test_every_relative_link_resolves() -> None:
    problems = [p for page, target in LINKS if (p := _link_problem(page, target))]
    assert problems == [], "\n".join(problems)


def test_every_page_is_in_the_nav() -> None:
    entry = re.compile(r"^\s*- (?:[^:\n]+: )?([\w./-]+\.md)\s*$", re.M)
    nav = set(entry.findall((REPO / "mkdocs.yml").read_text()))
    pages = {str(p.relative_to(DOCS)) for p in DOCS.rglob("*.md")}
    assert pages - nav == set(), "pages missing from the nav of mkdocs.yml"
    assert nav - pages == set(), "the nav of mkdocs.yml names pages that do not exist"


def test_the_readme_is_short() -> None:
    lines = README.read_text().count("\n")
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines (at most {README_MAX_LINES})"


def test_python_blocks_in_the_docs_compile() -> None:
    for page in PAGES[1:]:  # the README's are compiled by test_examples.py
        for number, (language, code) in enumerate(FENCE.findall(page.read_text())):
            if language == "python":
                compile(code, f"{_name(page)} block {number}", "exec")


def test_the_architecture_page_lists_the_layers_of_the_import_contract() -> None:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # the lowest-versions job runs on 3.10
        import tomli as tomllib

    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]
    (contract,) = [
        c for c in config["contracts"] if c["type"] == "layers" and "containers" not in c
    ]
    expected = [sorted(m.strip() for m in layer.split("|")) for layer in contract["layers"]]
    rows = re.findall(r"^\| \d+ \| ([^|]+) \|", (DOCS / "architecture.md").read_text(), re.M)
    documented = [sorted(f"orchlite.{m}" for m in re.findall(r"`(\w+)`", row)) for row in rows]
    assert documented == expected, "docs/architecture.md's layer table differs from pyproject.toml"
