"""What the documents tell a reader to type is what taskdaemon takes, and the other way round.

A reader copies a command from a page and runs it: a sub-command that does not exist, an option
its ``--help`` lacks or a misspelt variable fails them at once, and an option no page shows is
one they never learn of. The checker reads the Markdown files git knows and takes, from fenced
blocks (not those of a data or programming language; an indented line continues the line
before) and inline code spans, each ``taskdaemon COMMAND ...`` (and each inline span that
starts with a sub-command's name and gives it an option, ``runs show RUN --at T``), up to a
spaced ``|``, ``;``, ``&&`` or a redirection. It reports, one line each:

* a sub-command the parser does not have (``taskdaemon inspect``), or an action of ``runs``
  or ``debug`` that it does not have (``taskdaemon debug inspect``);
* an option (``--flag``, ``-f``) that the (sub-)command's parser does not take;
* the other way round, an option of a (sub-)command that no command of the README or of
  ``docs/`` gives it (by any of its names): ``docs/architecture.md``, "Command line" lists
  them all;
* a ``TASKDAEMON_*`` variable a document names that no source or test reads or sets, and one
  the sources read that no document names, nor the Settings table of
  ``docs/architecture.md`` (but the variables a command stage is given);
* a positional that ``--help`` names in lower case (``dag [file]``) where the synopses write
  an upper-case placeholder (``dag [FILE]``);
* a run named other than ``RUN`` (``RUN_ID``) in a ``--help`` or in the README or ``docs/``:
  three commands said ``RUN_ID`` and the rest ``RUN`` for the same argument.

Placeholders (``RUN``, ``FILE``), values and synopsis brackets are left alone: it checks names,
not whole command lines. What the README's commands print is ``tests/readme_test.py``'s
business.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest

from docs_support import repository_files
from taskdaemon.pipeline.cli import build_parser

ROOT = Path(__file__).resolve().parent.parent

#: Fenced blocks in these languages hold data or code, not commands a reader types.
_NOT_COMMANDS = frozenset({"yaml", "yml", "json", "toml", "python", "py", "promql", "text"})
_FENCE = re.compile(r"^(```|~~~)([\w-]*)[^\n]*\n(.*?)^\1[ \t]*$", re.MULTILINE | re.DOTALL)
_SPAN = re.compile(r"`([^`]+)`")
#: Where a command starts: in a block's line anywhere but in a comment (``docker compose exec
#: taskdaemon taskdaemon runs list`` names the service first); in an inline span at its start or
#: after a pipe or a wrapper, not inside a message quoted from the program.
_COMMAND = re.compile(r"(?<![\w./()-])taskdaemon[ \t]+(?!taskdaemon\b)(?=[a-z])")
_INLINE_COMMAND = re.compile(r"(?:^|[|;&]\s*|opentelemetry-instrument\s+)taskdaemon\s+(?=[a-z])")
_BLOCK_COMMENT = re.compile(r"(?:^|\s)#\s.*$")
#: A span the text says is not there: ``run --dry-run`` does not exist.
_MISSING = re.compile(r"\s+does not exist")
#: A command ends at a pipe (``\|`` in a Markdown table), ``;``, ``&&``, a redirection, a comment.
_END = re.compile(r"\s\\?\|\s|;|&&|\s\d?>|\s#\s|\)\s|$")
_OPTION = re.compile(r"^\[*(--?[A-Za-z][\w-]*)")
_WORD = re.compile(r"^[a-z][a-z-]*(?:\|[a-z][a-z-]*)*$")
#: A variable's name; ``TASKDAEMON_INPUT_<NAME>`` is read as its prefix ``TASKDAEMON_INPUT``.
_VARIABLE = re.compile(r"\bTASKDAEMON_[A-Z0-9_]*[A-Z0-9]")
#: The documents the backward checks read: what a user is pointed at.
_USER_DOCUMENTS = re.compile(r"README\.md|docs/[^/]+\.md")


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _options(parser: argparse.ArgumentParser) -> set[str]:
    return {option for action in parser._actions for option in action.option_strings}


def _actions_of(parser: argparse.ArgumentParser) -> set[str]:
    """The words a command takes in place of its first positional: its sub-commands, or the
    actions its positional's name lists (``debug``: ``FILE | attach|continue|step|skip RUN``)."""
    nested = _subcommands(parser)
    if nested:
        return set(nested)
    positional = [action for action in parser._actions if not action.option_strings]
    if positional and isinstance(positional[0].metavar, str) and "|" in positional[0].metavar:
        return set(re.findall(r"\b[a-z]+\b", positional[0].metavar))
    return set()


def check_command(parser: argparse.ArgumentParser, words: list[str]) -> Iterator[str]:
    """What is wrong with ``taskdaemon WORDS...`` (``words`` cut at the command's end)."""
    commands = _subcommands(parser)
    if not words or words[0] not in commands:
        yield f"no sub-command {words[0] if words else ''!r}"
        return
    name, command, rest = words[0], commands[words[0]], words[1:]
    actions = _actions_of(command)
    # A lower-case bare word in an action's place names one (a file has a '.' or a '/').
    if actions and rest and _WORD.match(rest[0]):
        if any(word not in actions for word in rest[0].split("|")):
            yield f"{name} has no action {rest[0]!r}"
            return
        nested = _subcommands(command)
        if rest[0] in nested:
            name, command, rest = f"{name} {rest[0]}", nested[rest[0]], rest[1:]
    known = _options(command)
    for word in rest:
        option = _OPTION.match(word)
        if option and option.group(1) not in known:
            yield f"{name} has no option {option.group(1)}"


def command_texts(markdown: str) -> Iterator[tuple[int, str, bool]]:
    """``(line, text, inline)`` of every command-like text of a Markdown document: the lines of
    its command blocks (a console block's ``$`` lines only) and its inline code spans."""
    for fence in _FENCE.finditer(markdown):
        language = fence.group(2).lower()
        if language in _NOT_COMMANDS:
            continue
        first = markdown.count("\n", 0, fence.start(3)) + 1
        lines: list[tuple[int, str]] = []
        body = fence.group(3).splitlines()
        base = len(body[0]) - len(body[0].lstrip()) if body else 0
        for offset, line in enumerate(body):
            if language == "console" and not line.startswith("$ "):
                continue
            text = _BLOCK_COMMENT.sub("", line.removeprefix("$ "))
            if lines and len(line) - len(line.lstrip()) > base and language != "console":
                lines[-1] = (lines[-1][0], f"{lines[-1][1]} {text.strip()}")
            else:
                lines.append((first + offset, text))
        yield from ((number, text, False) for number, text in lines)
    prose = _FENCE.sub(lambda match: "\n" * match.group(0).count("\n"), markdown)
    line, counted = 1, 0  # lines counted as the spans go: a count from the start is quadratic
    for span in _SPAN.finditer(prose):
        line += prose.count("\n", counted, span.start())
        counted = span.start()
        if "\n\n" not in span.group(1) and not _MISSING.match(prose, span.end()):
            yield line, " ".join(span.group(1).split()), True


def commands_in(text: str, names: Iterable[str], inline: bool) -> Iterator[list[str]]:
    """The words of each ``taskdaemon`` command in ``text``; with ``inline``, also of a text
    that starts with one of ``names`` and gives it an option (``run --watch``)."""
    starts = [match.end() for match in (_INLINE_COMMAND if inline else _COMMAND).finditer(text)]
    words = text.split()
    if inline and not starts and words and words[0] in names:
        starts = [0] if any(_OPTION.match(word) for word in words[1:]) else []
    for start in starts:
        end = _END.search(text, start)
        yield text[start : end.start() if end else len(text)].split()


def markdown_files(root: Path) -> list[str]:
    """The Markdown files git knows under ``root``."""
    return repository_files(root, "*.md")


def find_unknown_commands(root: Path, names: Iterable[str]) -> list[str]:
    """``FILE:LINE: reason`` for every command of the documents ``names`` (paths under
    ``root``) that the parser does not take."""
    parser = build_parser()
    commands = set(_subcommands(parser))
    problems: list[str] = []
    for name in names:
        for line, text, inline in command_texts((root / name).read_text()):
            for words in commands_in(text, commands, inline):
                problems.extend(f"{name}:{line}: {issue}" for issue in check_command(parser, words))
    return problems


def documented_options(root: Path, names: Iterable[str]) -> dict[str, set[str]]:
    """The options the commands of the documents ``names`` give each (sub-)command, by its
    name (``runs list``)."""
    parser = build_parser()
    commands = _subcommands(parser)
    given: dict[str, set[str]] = {}
    for name in names:
        for _, text, inline in command_texts((root / name).read_text()):
            for words in commands_in(text, set(commands), inline):
                if not words or words[0] not in commands:
                    continue
                key, rest = words[0], words[1:]
                nested = _subcommands(commands[key])
                if rest and rest[0] in nested:
                    key, rest = f"{key} {rest[0]}", rest[1:]
                options = (_OPTION.match(word) for word in rest)
                given.setdefault(key, set()).update(match.group(1) for match in options if match)
    return given


def _each_command(parser: argparse.ArgumentParser) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    """Each command a reader types, by its name (``runs list``, not ``runs``), and its parser."""
    for name, command in _subcommands(parser).items():
        nested = _subcommands(command)
        yield from ({f"{name} {k}": v for k, v in nested.items()} or {name: command}).items()


def parser_options(parser: argparse.ArgumentParser) -> dict[str, list[tuple[str, ...]]]:
    """Each (sub-)command's options, each as the tuple of its names (``("-o", "--output")``)."""
    return {
        name: [
            tuple(action.option_strings)
            for action in command._actions
            if action.option_strings and not isinstance(action, argparse._HelpAction)
        ]
        for name, command in _each_command(parser)
    }


def lower_case_positionals(parser: argparse.ArgumentParser) -> list[str]:
    """``COMMAND NAME`` of each positional that ``--help`` shows in lower case (``dag file``),
    where the documents' synopses write a placeholder in upper case (``dag [FILE]``); a name
    that lists actions (``debug``'s ``attach|continue|...``) is words, not a placeholder."""
    return [
        f"{name} {shown}"
        for name, command in _each_command(parser)
        for action in command._actions
        if not action.option_strings
        for shown in [action.metavar if isinstance(action.metavar, str) else action.dest]
        if "|" not in shown and shown != shown.upper()
    ]


#: What a run was called beside ``RUN``, the one name every command and document gives it.
_OTHER_RUN_NAME = re.compile(r"\bRUN_ID\b")


def other_run_names(parser: argparse.ArgumentParser, root: Path, names: Iterable[str]) -> list[str]:
    """``COMMAND --help`` of each command whose help names a run ``RUN_ID``, and ``FILE:LINE``
    of each line of the documents ``names`` (paths under ``root``) that does."""
    helps = [
        f"{name} --help"
        for name, command in _each_command(parser)
        if _OTHER_RUN_NAME.search(command.format_help())
    ]
    lines = [
        f"{name}:{number}"
        for name in names
        for number, line in enumerate((root / name).read_text().splitlines(), 1)
        if _OTHER_RUN_NAME.search(line)
    ]
    return helps + lines


def test_documents_name_only_commands_and_options_that_exist() -> None:
    """Every sub-command, action and option a document gives ``taskdaemon`` is in its parser."""
    assert [] == find_unknown_commands(ROOT, markdown_files(ROOT))


def test_every_option_is_shown_in_a_command() -> None:
    """Each option of each (sub-)command appears, by one of its names, in a command of the
    README or of ``docs/``."""
    given = documented_options(ROOT, [n for n in markdown_files(ROOT) if _USER_DOCUMENTS.match(n)])
    missing = [
        f"{command} {'/'.join(names)}"
        for command, options in parser_options(build_parser()).items()
        for names in options
        if not set(names) & given.get(command, set())
    ]
    assert [] == missing


def test_help_shows_positionals_as_the_documents_write_them() -> None:
    """Every positional is an upper-case placeholder in ``--help``'s usage, as in the synopses of
    ``docs/architecture.md``, "Command line"."""
    assert [] == lower_case_positionals(build_parser())


def test_a_run_has_one_name_in_every_help_and_document() -> None:
    """Every ``--help`` and every page a user reads call a run ``RUN`` (``runs show RUN``,
    ``watch RUN``, ``dag --run RUN``), as ``logs``, ``replay``, ``dump`` and ``debug`` do."""
    documents = [n for n in markdown_files(ROOT) if _USER_DOCUMENTS.match(n)]
    assert [] == other_run_names(build_parser(), ROOT, documents)


def _variables(root: Path, names: Iterable[str]) -> set[str]:
    return {match for name in names for match in _VARIABLE.findall((root / name).read_text())}


def test_documented_variables_exist_and_read_variables_are_documented() -> None:
    """Every ``TASKDAEMON_*`` variable the documents name is one the code or tests use, and
    every one the package reads is in the README or ``docs/``."""
    documents = markdown_files(ROOT)
    code = repository_files(ROOT, "*.py")
    named = _variables(ROOT, documents)
    used = _variables(ROOT, code)
    read = _variables(ROOT, [name for name in code if name.startswith("src/")])
    shown = _variables(ROOT, [name for name in documents if _USER_DOCUMENTS.match(name)])
    assert ([], []) == (sorted(named - used), sorted(read - shown))


def _section(text: str, title: str) -> str:
    return text.split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]


def test_settings_table_lists_every_variable_taskdaemon_reads() -> None:
    """Every ``TASKDAEMON_*`` variable the package names is a row of the Settings table of
    ``docs/architecture.md``, but those a command stage is given (``TASKDAEMON_RUN_ID``...,
    which "Run semantics" lists) and the prefixes of rows (``TASKDAEMON_RETENTION_*``): the
    table is where a reader looks for what can be set. ``TASKDAEMON_SOURCE_TIMEOUT`` and
    ``TASKDAEMON_SOURCE_MAX_BYTES``, checked with the settings, were only in
    ``docs/span-store.md``."""
    text = (ROOT / "docs" / "architecture.md").read_text()
    rows = set(re.findall(r"^\| `(TASKDAEMON_\w+)` \|", _section(text, "Settings"), re.MULTILINE))
    given = set(_VARIABLE.findall(_section(text, "Run semantics"))) - rows
    read = _variables(
        ROOT, [name for name in repository_files(ROOT, "*.py") if name.startswith("src/")]
    )
    missing = {
        name
        for name in read - rows
        if not name.startswith("TASKDAEMON_INPUT")
        and name not in given
        and not any(row.startswith(f"{name}_") for row in rows)
    }
    assert ([], True) == (sorted(missing), "TASKDAEMON_HOME" in rows)


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        ("taskdaemon runs show RUN --at T", []),
        ("taskdaemon debug continue|step|skip RUN [STAGE]", []),
        ("taskdaemon report [--format table|markdown|json|html] [-o FILE]", []),
        ("taskdaemon inspect RUN", ["no sub-command 'inspect'"]),
        ("taskdaemon debug inspect RUN", ["debug has no action 'inspect'"]),
        ("taskdaemon runs delete RUN", ["runs has no action 'delete'"]),
        ("taskdaemon watch RUN --follow", ["watch has no option --follow"]),
        ("taskdaemon runs list [--stage S]", ["runs list has no option --stage"]),
    ],
)
def test_checker_tells_known_from_unknown(command: str, expected: list[str]) -> None:
    """The checker accepts real commands and synopses, and names what a wrong one lacks."""
    parser = build_parser()
    (words,) = commands_in(command, set(_subcommands(parser)), inline=False)
    assert expected == list(check_command(parser, words))


def test_checker_reads_blocks_spans_and_continued_lines() -> None:
    """Commands come from command blocks (indented lines continuing the one before, comments
    dropped), console ``$`` lines and inline spans (up to a pipe, escaped in a table or not),
    never from a data block or a quoted message."""
    markdown = (
        "Run `taskdaemon watch RUN --follow` or `runs list --bogus`, not `not a taskdaemon"
        " span store`.\n\n```\ntaskdaemon report [-p P]\n    [--nope]  # taskdaemon x\n```\n\n"
        "| `taskdaemon dag --run R \\| dot -Tpng` |\n\n"
        "```console\n$ taskdaemon validate --pedantic f.yaml\nOK taskdaemon y\n```\n\n"
        "```yaml\ncommand: taskdaemon frob\n```\n"
    )
    parser = build_parser()
    names = set(_subcommands(parser))
    found = [
        (line, issue)
        for line, text, inline in command_texts(markdown)
        for words in commands_in(text, names, inline)
        for issue in check_command(parser, words)
    ]
    expected = [
        (4, "report has no option --nope"),
        (11, "validate has no option --pedantic"),
        (1, "watch has no option --follow"),
        (1, "runs list has no option --bogus"),
    ]
    assert expected == found
