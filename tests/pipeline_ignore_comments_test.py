"""``# taskdaemon: ignore[CODE]`` is read in comments only (``ignore_comments``): the same text in
a string of any form is the string's, and a real comment after it is still read, on its line
and column. Before, a text match found the directive in strings too: one there naming an
unknown code failed the file, one naming a real code hid a warning on its line or was reported
as an unused suppression, and in TOML any such string was an error (a TOML comment is read as
a YAML one now: ``pipeline_ignore_comments_toml_test.py``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli_support import taskdaemon
from operation_count_support import growth
from taskdaemon.pipeline.config import parse_pipeline
from taskdaemon.pipeline.errors import ConfigError
from taskdaemon.pipeline.ignore_comments import ignore_comments
from taskdaemon.pipeline.validation_warnings import ValidationWarning, comment_issues

#: A real comment: no own-status warning in these files, so it is reported as unused.
_REAL = "# taskdaemon: ignore[own-status]"
_UNUSED = "own-status suppresses nothing on this line or its stage (remove it)"
#: Each YAML string form holding the directive (naming an unknown code, which a comment may
#: not), as a stage's ``command``, then the real comment on the line it ends on (a block
#: scalar's header line, where a comment may follow its indicator).
_FORMS = {
    "plain": "command: echo x#taskdaemon:ignore[bogus]  " + _REAL,
    "single quoted": "command: 'echo # taskdaemon: ignore[bogus] done'  " + _REAL,
    "double quoted": 'command: "echo # taskdaemon: ignore[bogus] done"  ' + _REAL,
    "literal block": "command: |  " + _REAL + "\n      # taskdaemon: ignore[bogus]\n      true",
    "folded block": "command: >-  " + _REAL + "\n      # taskdaemon: ignore[bogus]\n      true",
    "kept literal": "command: |+\n      # taskdaemon: ignore[bogus]\n\n    " + _REAL,
    "flow mapping": "{description: '# taskdaemon: ignore[bogus] ', command: x#taskdaemon:ignore}  "
    + _REAL,
    "multi-line double": 'command: "echo\n      # taskdaemon: ignore[bogus]\n      done"  ' + _REAL,
    "multi-line single": "command: 'echo\n      # taskdaemon: ignore[bogus]\n      done'  " + _REAL,
}


def _pipeline(field: str) -> str:
    """A one-stage pipeline with ``field`` in its stage (a flow mapping: the stage itself)."""
    if field.startswith("{"):
        return f"name: p\nstages:\n  - {{name: a, triggers: [{{manual: {{}}}}], {field[1:]}\n"
    return f"name: p\nstages:\n  - name: a\n    triggers: [{{manual: {{}}}}]\n    {field}\n"


def _warnings(text: str, fmt: str = "yaml") -> list[ValidationWarning]:
    found: list[ValidationWarning] = []
    parse_pipeline(text, fmt=fmt, source="p", warnings=found)  # type: ignore[arg-type]
    return found


@pytest.mark.parametrize("form", _FORMS)
def test_a_string_of_any_form_holds_no_directive_and_a_comment_after_it_is_one(form: str) -> None:
    """The unknown code in the string is no error, and the real comment after it is the only
    directive: reported unused at its line and its ``#``'s column."""
    text = _pipeline(_FORMS[form])
    lines = text.splitlines()
    line = next(n for n, each in enumerate(lines, 1) if each.endswith(_REAL))
    column = lines[line - 1].index(_REAL) + 1
    unused = ValidationWarning("ignore comment", _UNUSED, "unused-ignore", "p", line, column)
    assert [unused] == _warnings(text)


def test_a_directive_in_a_string_hides_no_warning() -> None:
    """A stage on one line (a flow mapping) with the directive in its command, in YAML and in
    JSON (which has no comments at all): its constant-condition warning is still reported."""
    stage = {
        "name": "parked",
        "command": "echo # taskdaemon: ignore[constant-condition] done",
        "triggers": [{"on_condition": {"expression": "1 > 2"}}],
    }
    yaml_text = f"name: p\nstages:\n  - {json.dumps(stage)}\n"
    json_text = f'{{"name": "p",\n "stages": [\n  {json.dumps(stage)}]}}\n'
    codes = [
        [(w.code, w.line) for w in _warnings(text, fmt)]
        for text, fmt in ((yaml_text, "yaml"), (json_text, "json"))
    ]
    assert [[("constant-condition", 3)], [("constant-condition", 3)]] == codes


def test_a_toml_string_is_no_comment() -> None:
    """In TOML the directive in a string of each form is the string's, and a comment after
    them is read, on its line: the one after the last string, naming an unknown code, is an
    error there, and no other is. Before, the same strings' directives were errors too."""
    text = (
        'name = "p"\ndescription = """\n# taskdaemon: ignore[bogus]\n"""""\n'
        '[[stages]]\nname = "a"\ntriggers = [{manual = {}}]\n'
        "command = \"echo '# taskdaemon: ignore[bogus]' # x\"\n"
        "description = '''\n# taskdaemon: ignore[bogus]'''\n"
        '[[stages]]\nname = "b"\ntriggers = [{manual = {}}]\n'
        "command = 'true'\ndescription = '# taskdaemon: ignore[bogus]'\n"
    )
    assert _warnings(text, "toml") == []
    with pytest.raises(ConfigError) as raised:
        parse_pipeline(text + "# taskdaemon: ignore[bogus]\n", fmt="toml", source="p")
    assert [len(text.splitlines()) + 1] == [issue.line for issue in raised.value.issues]


def test_comments_are_found_on_yaml_lines_and_columns() -> None:
    """Lines as YAML counts them (``\\r\\n`` one break, a lone ``\\r`` one too), columns in
    characters; several directives in one comment; a bare ``ignore``."""
    text = (
        "a: 'é # taskdaemon: ignore'  # taskdaemon: ignore[x, y]\r\n"
        "b: 1\rc: 2 # n # taskdaemon: ignore\n"
    )
    assert [(1, 30, ("x", "y")), (3, 10, None)] == [tuple(c) for c in ignore_comments(text, "yaml")]


@pytest.mark.slow
def test_validate_reads_comments_not_strings(home: Path, tmp_path: Path) -> None:
    """The real command: a file whose block scalar holds an unknown code's directive is valid,
    and the real comment after its header is the one warning."""
    path = tmp_path / "p.yaml"
    path.write_text(_pipeline(_FORMS["literal block"]))
    done = taskdaemon(home, "validate", str(path))
    assert (0, [f"{path}:5:17: warning: ignore comment: {_UNUSED} [unused-ignore]"]) == (
        done.returncode,
        done.stdout.splitlines()[:-1],
    ), done.stderr


def test_the_work_on_a_file_of_comments_is_bounded() -> None:
    """A file of comments naming unknown codes: the issues stop at their cap, and the scan
    with them (ten times the comments, about the same work). A file whose directives are all
    at its top: the scan stops after the last (ten times the stages, about the same work)."""

    def many_comments(n: int) -> object:
        return comment_issues("# taskdaemon: ignore[bogus]\n" * n + "a: 1\n", "p", "yaml")

    def many_stages(n: int) -> object:
        return list(ignore_comments("# taskdaemon: ignore\n" + "- a: 1\n" * n, "yaml"))

    assert growth(many_comments, 1_000, 10_000) < 1.5
    assert growth(many_stages, 1_000, 10_000) < 1.5


def test_directives_at_a_gap_s_edges_keep_their_lines_and_columns() -> None:
    """A directive on a YAML file's first line (before its first token), two in one gap on
    lines of their own (the second indented), one on a block scalar's header when it is the
    file's last directive, and one on a header the file ends on, with no line break after."""
    texts = [
        "# taskdaemon: ignore[x]\na: 1\n",
        "a: 1\n# taskdaemon: ignore[x]\n  # taskdaemon: ignore[y]\nb: 2\n",
        "a: |  # taskdaemon: ignore[x]\n  text\nb: 1\n",
        "a: |  # taskdaemon: ignore[x]",
    ]
    assert [
        [(1, 1, ("x",))],
        [(2, 1, ("x",)), (3, 3, ("y",))],
        [(1, 7, ("x",))],
        [(1, 7, ("x",))],
    ] == [[tuple(found) for found in ignore_comments(text, "yaml")] for text in texts]


def test_no_directive_is_read_outside_a_comment_of_its_format() -> None:
    """JSON has no comments, whatever its strings hold; in TOML a comment before a string
    holding the directive's text does not reach into the string."""
    assert ([], []) == (
        list(ignore_comments('{"a": "# taskdaemon: ignore"}', "json")),
        list(ignore_comments('a = 1 # x\nb = "# taskdaemon: ignore[y]"\n', "toml")),
    )
