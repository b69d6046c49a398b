"""A value typed at the debugger that the user marks as secret (``set --secret``, the HTTP
``set``'s ``"secret": true``) or sets on an input of a secret name (``api_token``) reaches no
output: not the prompt's echo or answers, its history, the run's spans, logs and captured
output, a dump, ``runs show``, a replay's notes, nor serve's API (``debug_ops.py``,
``cli/_debug_prompt.py``, ``secret_values.unmaskable``)."""

from __future__ import annotations

import tarfile
import textwrap
from pathlib import Path

import pytest

from cli_support import taskdaemon
from schedule_support import scheduled_serve
from terminal_support import on_a_terminal_of

#: No known shape: only being marked secret (or its input's name) masks it.
TYPED = "pw-Zq8vR2mN4pL6tY1wX3cB"
NAMED = "tk-Hh5sQ9dF2gJ7kL3zX8cV"

PIPELINE = """\
    name: dbgsecret
    stages:
      - name: a
        command: "echo '{\\"x\\": \\"plain-value-1\\", \\"t\\": \\"plain-value-2\\"}'"
        triggers: [{manual: {approval_required: false}}]
      - name: b
        command: "echo got $TASKDAEMON_INPUT_X $TASKDAEMON_INPUT_API_TOKEN"
        triggers: [{on_completion: {stage: a}}]
        inputs: {x: stages.a.outputs.x, api_token: stages.a.outputs.t}
"""


def _pipeline(home: Path) -> Path:
    path = home / "dbgsecret.yaml"
    path.write_text(textwrap.dedent(PIPELINE))
    return path


def _files_holding(folder: Path, *texts: str) -> list[str]:
    """The files under ``folder`` (the home: the span store and its WAL, the history, the
    dumps, each dump's members) holding one of ``texts``."""
    found = []
    for path in folder.rglob("*"):
        if not path.is_file():
            continue
        contents = [path.read_bytes()]
        if path.name.endswith(".tar.gz"):
            with tarfile.open(path) as archive:
                for member in archive.getmembers():
                    extracted = archive.extractfile(member)
                    if extracted is not None:
                        contents.append(extracted.read())
        if any(text.encode() in content for text in texts for content in contents):
            found.append(str(path))
    return found


@pytest.mark.slow
def test_a_value_set_as_secret_or_on_a_secret_name_is_masked_everywhere(home: Path) -> None:
    """``set --secret x …`` and ``set api_token …`` at ``debug FILE``'s prompt (on a pipe),
    then ``inputs``, ``env``, ``dump``: the echo, the answers, stderr, the store, the dump,
    ``logs``, ``runs show`` and ``replay --dry-run`` hold neither value, while the stage ran
    with both. Before: ``--secret`` was read as the INPUT; ``set x …``'s value was in the
    echo, every answer, the spans, the logs and the dump; ``api_token``'s in the echo."""
    done = taskdaemon(
        home,
        "debug",
        str(_pipeline(home)),
        "--break",
        "b",
        stdin=f'set --secret x "{TYPED}"\nset b api_token "{NAMED}"\ninputs\nenv\ndump\n'
        "outputs b\ncontinue\n",
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert '(taskdaemon) set --secret x [REDACTED]\nb: input x = "[REDACTED]"' in done.stdout
    assert '(taskdaemon) set b api_token [REDACTED]\nb: input api_token = "[REDACTED]"' in (
        done.stdout
    )
    assert '{"api_token": "[REDACTED]", "x": "[REDACTED]"}' in done.stdout
    assert "    TASKDAEMON_INPUT_X=[REDACTED]" in done.stdout
    run_id = done.stdout.split("debugging run ", 1)[1].split()[0]
    shown = [done.stdout, done.stderr]
    for args in (
        ("logs", run_id),
        ("runs", "show", run_id, "--json"),
        ("replay", run_id, str(home / "dbgsecret.yaml"), "--dry-run"),
    ):
        answered = taskdaemon(home, *args)
        shown += [answered.stdout, answered.stderr]
    everything = "\n".join(shown)
    assert "got [REDACTED] [REDACTED]" in everything  # b ran with both, masked in its output
    assert "input x overridden" in everything  # the replay's note and the log record
    assert (TYPED not in everything, NAMED not in everything) == (True, True), everything
    assert _files_holding(home, TYPED, NAMED) == []


@pytest.mark.slow
def test_a_secret_too_short_to_mask_is_refused_in_one_line(home: Path) -> None:
    """``set --secret x "abc"``: a text under 8 characters cannot be masked by value (it is
    a common word), so it is not set, said in one line that does not quote it; the input
    keeps its value."""
    done = taskdaemon(
        home,
        "debug",
        str(_pipeline(home)),
        "--break",
        "b",
        stdin='set --secret x "abc"\ninputs\ncontinue\n',
    )
    assert (
        "error: not set: a secret is masked by its text wherever it goes, texts of 8 to 4096 "
        "characters and whole numbers of as many digits, and this value holds a text of 3 "
        "characters\n"
    ) in done.stdout
    assert '"x": "plain-value-1"' in done.stdout
    assert '"abc"' not in done.stdout


@pytest.mark.slow
def test_the_history_keeps_no_secret_typed_on_a_terminal(home: Path) -> None:
    """Typed at a real terminal's prompt, ``set --secret`` is saved to the history masked,
    with the command and its input kept for recall."""
    code, _shown = on_a_terminal_of(
        120,
        home,
        "debug",
        str(_pipeline(home)),
        "--break",
        "b",
        "-q",
        keys=f'set --secret x "{TYPED}"\ncontinue\n\x04'.encode(),
    )
    history = (home / "debug_history").read_text()
    assert (code, TYPED in history) == (0, False), history
    assert "set --secret x [REDACTED]" in history


@pytest.mark.slow
def test_http_set_with_secret_true_is_masked_in_the_api(home: Path) -> None:
    """``POST /api/runs/{id}/debug/set`` with ``"secret": true`` on ``serve``: the answer,
    ``GET …/debug/env/b``, the run's record and its logs over the API and serve's stderr hold
    no trace of the value; a ``secret`` that is not a boolean is 400."""
    with scheduled_serve(home, _pipeline(home), "--break", "b") as served:
        served.wait_paused("b")
        base = f"/api/runs/{served.run_id}"
        try:
            served.api("POST", f"{base}/debug/set", {"input": "x", "value": TYPED, "secret": 1})
        except OSError as exc:  # urllib's HTTPError
            refused = str(exc)
        answer = served.api(
            "POST", f"{base}/debug/set", {"input": "x", "value": TYPED, "secret": True}
        )
        env = served.api("GET", f"{base}/debug/env/b")
        served.api("POST", f"{base}/debug/continue", {})
        served.line(f"run {served.run_id} of dbgsecret ended ")
        record = served.api("GET", base)
        logs = served.api("GET", f"{base}/logs?stage=b")
    assert "400" in refused
    assert answer["inputs"] == {"x": "[REDACTED]"}
    assert env["env"]["set"]["TASKDAEMON_INPUT_X"] == "[REDACTED]"
    assert "got [REDACTED]" in repr(logs)
    assert TYPED not in repr((answer, env, record, logs)) + "\n".join(served.passed)
    assert _files_holding(home, TYPED) == []
