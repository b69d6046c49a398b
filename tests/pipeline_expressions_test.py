"""``expressions``: how an evaluation error reads where a pipeline's author meets it."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli_support import taskdaemon, write


@pytest.mark.slow
def test_a_condition_comparing_a_number_with_a_string_says_what_to_write(
    home: Path, tmp_path: Path
) -> None:
    """A newcomer's ``count > "3"`` over a command's ``{"count":5}`` skips its stage with the
    type mismatch and the hint to convert, whole: the binding's 400 characters of advice were
    cut to 200 in the skip reason, in the middle of its "common causes"."""
    write(
        tmp_path / "first.yaml",
        """\
        name: first
        stages:
          - name: fetch
            command: echo '{"count":5}'
            triggers: [{manual: {approval_required: false}}]
          - name: big
            command: "true"
            triggers: [{on_condition: {expression: 'stages.fetch.outputs.count > "3"'}}]
        """,
    )
    done = taskdaemon(home, "run", "-q", "first.yaml", cwd=tmp_path)
    assert 0 == done.returncode, done.stderr
    logs = taskdaemon(home, "logs", done.stdout.strip(), "--stage", "big")
    expected = (
        "stage big skipped: triggers can no longer fire: on condition "
        'stages.fetch.outputs.count > "3" (its last evaluation failed: No such overload: the '
        "operation is not defined for the given operand types (CEL converts no type: compare "
        "like with like, or convert with int(x), double(x) or string(x)))"
    )
    assert [expected] == [line.split("INFO    ", 1)[1] for line in logs.stdout.splitlines()]


@pytest.mark.slow
def test_a_key_a_stage_s_outputs_lack_names_the_keys_they_have(home: Path, tmp_path: Path) -> None:
    """A command that prints ``{count: 5}`` (the shell ate the quotes of ``echo {"count":5}``)
    gives no JSON object, so its outputs are ``stdout`` and ``exit_code``; the stage reading
    ``count`` from them fails naming the keys there are, which "no such key 'count'" alone
    left to be guessed."""
    write(
        tmp_path / "first.yaml",
        """\
        name: first
        stages:
          - name: fetch
            command: echo {"count":5}
            triggers: [{manual: {approval_required: false}}]
          - name: after
            command: "true"
            inputs: {n: stages.fetch.outputs.count}
            triggers: [{on_completion: {stage: fetch}}]
        """,
    )
    done = taskdaemon(home, "run", "-q", "first.yaml", cwd=tmp_path)
    expected = (
        f"taskdaemon run: run {done.stdout.strip()} failure: stage 'after' failure: missing "
        "required input 'n': 'stages.fetch.outputs.count': no such key 'count' "
        "(stages.fetch.outputs has: 'stdout', 'exit_code')"
    )
    assert (1, [expected]) == (done.returncode, done.stderr.splitlines())
