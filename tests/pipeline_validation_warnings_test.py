"""The warnings of a valid pipeline (``validation_warnings``), through the real ``taskdaemon
validate`` and ``taskdaemon run`` processes."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli_support import taskdaemon, write

#: One warning of each kind, and a stage of each that must get none.
_WARNED = """\
    name: warned
    stages:
      - name: build
        command: "echo '{\\"count\\": 3}'"
        triggers: [{manual: {approval_required: false}}]
        outputs:
          count: result.count
      - name: typo
        command: "true"
        triggers:
          - on_condition: {expression: "stages.build.outputs.cuont > 1 && false"}
      - name: selfish
        command: "true"
        triggers:
          - on_condition: {expression: "stages.selfish.status == 'pending'"}
      - name: parked
        command: "true"
        triggers:
          - on_condition: {expression: "1 > 2"}
      - name: creds
        command: "true"
        triggers: [{on_completion: {stage: build}}]
        inputs:
          api_key: "'hunter2-literal'"
          n: stages.build.outputs.count
      - name: fine
        command: "true"
        triggers:
          - on_condition: {expression: "true"}
          - on_condition:
              expression: "has(stages.build.outputs.count) && stages.a.status == 'success'"
      - name: a
        command: "true"
        triggers: [{on_completion: {stage: build}}]
"""


def _expected(path: Path) -> list[str]:
    return [
        f"{path}:11:24: warning: stages[1].triggers[0].on_condition.expression: reads output "
        "'cuont' of stage 'build', which never has it (did you mean 'count'?) [unknown-output]",
        f"{path}:15:24: warning: stages[2].triggers[0].on_condition.expression: reads the "
        "stage's own status: it has not started while its condition waits, so the condition "
        "sees only that (wait for another stage's status) [own-status]",
        f"{path}:19:24: warning: stages[3].triggers[0].on_condition.expression: '1 > 2' reads "
        "no variable and is never true: the stage never starts [constant-condition]",
        f"{path}:24:7: warning: stages[4].inputs.api_key.from: a string literal that looks like "
        "a credential, which the file and every run's recorded definition then hold (pass it "
        "at run time with --input NAME=VALUE and read request.NAME) [secret-literal]",
    ]


@pytest.mark.slow
def test_validate_prints_each_warning_with_its_place_and_exits_0(
    home: Path, tmp_path: Path
) -> None:
    """A valid file's warnings are one line each, ``FILE:LINE:COLUMN: warning: PATH: REASON
    [CODE]``, then its OK line counts them, and the exit code stays 0. Before, the file was
    ``OK`` with nothing said: the typo's condition (``&&`` absorbs the missing key) and the
    secret went unseen."""
    path = write(tmp_path / "warned.yaml", _WARNED)
    done = taskdaemon(home, "validate", str(path))
    expected = [*_expected(path), f"OK {path} (7 stages, 4 warnings)"]
    assert (0, expected, "") == (done.returncode, done.stdout.splitlines(), done.stderr)


@pytest.mark.slow
def test_strict_makes_warnings_errors(home: Path, tmp_path: Path) -> None:
    """``--strict``: the same lines, no OK line, exit 2; a file without warnings stays OK."""
    path = write(tmp_path / "warned.yaml", _WARNED)
    done = taskdaemon(home, "validate", "--strict", str(path), "examples/feature_delivery.yaml")
    expected = [*_expected(path), "OK examples/feature_delivery.yaml (5 stages)"]
    assert (2, expected) == (done.returncode, done.stdout.splitlines()), done.stderr


@pytest.mark.slow
def test_a_comment_suppresses_a_code_on_its_line_or_its_whole_stage(
    home: Path, tmp_path: Path
) -> None:
    """``# taskdaemon: ignore[CODE]`` on the stage's first line suppresses that code in the
    stage, on the warning's own line that warning; other codes still show, and the comment
    for a code its stage does not have is itself a warning (docs/validation.md, "Unused
    suppressions")."""
    text = (
        _WARNED.replace(
            "- name: parked", "- name: parked  # taskdaemon: ignore[constant-condition]"
        )
        .replace("'pending'\"}", "'pending'\"}  # taskdaemon: ignore[own-status]")
        .replace("- name: creds", "- name: creds  # taskdaemon: ignore[unknown-output]")
    )
    path = write(tmp_path / "quiet.yaml", text)
    done = taskdaemon(home, "validate", "--strict", str(path))
    unused = (
        f"{path}:20:18: warning: ignore comment: unknown-output suppresses nothing on this "
        "line or its stage (remove it) [unused-ignore]"
    )
    expected = [_expected(path)[0], _expected(path)[3], unused]
    assert (2, expected) == (done.returncode, done.stdout.splitlines()), done.stderr


@pytest.mark.slow
def test_run_shows_the_warnings_first_and_runs_anyway(home: Path, tmp_path: Path) -> None:
    """``run`` prints the warnings on stderr before the run starts and runs the pipeline (exit
    0, the run id alone on stdout with ``-q``); the secret literal is not quoted. Before, the
    run said nothing of them."""
    path = write(tmp_path / "warned.yaml", _WARNED)
    done = taskdaemon(home, "run", "-q", str(path))
    lines = done.stderr.splitlines()
    assert (0, _expected(path)) == (done.returncode, lines[:4]), done.stderr
    assert 1 == len(done.stdout.split())
    assert "hunter2" not in done.stderr + done.stdout


@pytest.mark.slow
def test_json_and_toml_files_get_warnings_too(home: Path, tmp_path: Path) -> None:
    """A JSON file's warning has its line and column (read as YAML reads it); a TOML file's
    has none, as its errors have none. A field no stage has gets a "did you mean"."""
    json_file = write(
        tmp_path / "j.json",
        """\
        {"name": "j", "stages": [
          {"name": "build", "command": "true", "triggers": [{"manual": {}}]},
          {"name": "check", "command": "true",
           "triggers": [{"on_condition": {"expression": "stages.build.stauts == 'success'"}}]}
        ]}
        """,
    )
    toml_file = write(
        tmp_path / "t.toml",
        """\
        name = "t"
        [[stages]]
        name = "build"
        command = "true"
        triggers = [{manual = {}}]
        [[stages]]
        name = "check"
        command = "true"
        triggers = [{on_condition = {expression = "stages.build.stauts == 'success'"}}]
        """,
    )
    done = taskdaemon(home, "validate", str(json_file), str(toml_file))
    warning = (
        "warning: stages[1].triggers[0].on_condition.expression: reads stages.build.stauts, "
        "which a stage does not have (did you mean 'status'?) [unknown-stage-field]"
    )
    expected = [
        f"{json_file}:4:36: {warning}",
        f"OK {json_file} (2 stages, 1 warning)",
        f"{toml_file}:9:30: {warning}",
        f"OK {toml_file} (2 stages, 1 warning)",
    ]
    assert (0, expected) == (done.returncode, done.stdout.splitlines()), done.stderr


@pytest.mark.slow
def test_a_secret_in_a_command_is_warned_and_a_secret_file_name_keeps_its_lines(
    home: Path, tmp_path: Path
) -> None:
    """A token written in a command, where a newcomer writes one, is a ``secret-literal``,
    never quoted. A file named like a secret's key (``secrets.yaml``, ``api-token.yaml``)
    keeps the line and column of its warnings and errors. Before, the command said nothing,
    and ``secrets.yaml:4:5: ...`` was shown as ``secrets.yaml:[REDACTED] ...``."""
    token = "ghp_" + "a1b2c3d4e5" * 4
    warned = write(
        tmp_path / "secrets.yaml",
        f"""\
        name: notify
        stages:
          - name: post
            command: "curl -H 'Authorization: Bearer {token}' https://example.invalid"
            triggers: [{{manual: {{}}}}]
        """,
    )
    broken = write(
        tmp_path / "api-token.yaml",
        """\
        name: notify
        stages:
          - name: post
            comand: "true"
            triggers: [{manual: {}}]
        """,
    )
    done = taskdaemon(home, "validate", "--no-resolve", str(warned), str(broken))
    assert 2 == done.returncode
    assert [
        f"{warned}:4:5: warning: stages[0].command: holds what looks like a credential, which "
        "the file and every run's recorded definition then hold (read it from the environment "
        "instead: a command gets taskdaemon's, so export it and write $NAME) [secret-literal]",
        f"OK {warned} (1 stage, 1 warning)",
        f"{broken}:4: stages[0].comand: unknown key (did you mean 'command'?)",
    ] == done.stdout.splitlines()
    assert token not in done.stdout + done.stderr


@pytest.mark.slow
def test_a_status_no_stage_has_is_warned(home: Path, tmp_path: Path) -> None:
    """``stages.S.status == 'succeeded'`` (either way round, ``stages["S"]`` too) never holds:
    its stage would end skipped without a word. Before, the file was ``OK`` with nothing said;
    a real status, ``success`` or ``skipped``, gets no warning."""
    path = write(
        tmp_path / "statuses.yaml",
        """\
        name: statuses
        stages:
          - name: collect
            command: "true"
            triggers: [{manual: {}}]
          - name: summarize
            command: "true"
            triggers:
              - on_condition: {expression: "'failed' == stages[\\"collect\\"].status"}
          - name: fine
            command: "true"
            triggers:
              - on_condition: {expression: "stages.collect.status == 'success'"}
              - on_condition: {expression: "stages.summarize.status != 'skipped'"}
        """,
    )
    done = taskdaemon(home, "validate", "--no-resolve", str(path))
    assert (0, "") == (done.returncode, done.stderr)
    assert [
        f"{path}:9:24: warning: stages[1].triggers[0].on_condition.expression: compares the "
        "status of stage 'collect' with 'failed', which no status is (did you mean "
        "'failure'?) [unknown-status]",
        f"OK {path} (3 stages, 1 warning)",
    ] == done.stdout.splitlines()
