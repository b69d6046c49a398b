"""What 0 means for the capture caps (``settings.py``'s docstring; docs/architecture.md,
"Settings"): ``TASKDAEMON_CAPTURE_MAX_BYTES`` (and its older name ``TASKDAEMON_PAYLOAD_MAX_BYTES``)
at 0 records no value for replay, only sizes and hashes, and ``replay`` says what to supply
instead; ``TASKDAEMON_LOG_CAPTURE_MAX_LINES`` or ``_BYTES`` at 0 keeps no command output, and
``logs`` says so once per stage. Real runs, replays and reads, each its own process."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli_support import taskdaemon, write

PIPELINE = """\
    name: zero
    stages:
      - name: say
        command: "echo said >&2; echo '{\\"x\\": 1}'"
        inputs: {goal: {from: request.goal}}
        triggers: [{manual: {approval_required: false}}]
"""


def _run(home: Path, tmp_path: Path, **env: str) -> str:
    """Run :data:`PIPELINE` with ``env``; the run id."""
    pipeline = write(tmp_path / "zero.yaml", PIPELINE)
    done = taskdaemon(home, "run", str(pipeline), "-i", "goal=ship", **env)
    assert done.returncode == 0, done.stderr
    listed = taskdaemon(home, "runs", "list", "--json")
    return str(json.loads(listed.stdout)[0]["run_id"])


@pytest.mark.parametrize(
    "variable", ["TASKDAEMON_CAPTURE_MAX_BYTES", "TASKDAEMON_PAYLOAD_MAX_BYTES"]
)
def test_no_capture_records_sizes_only_and_replay_says_what_to_supply(
    variable: str, home: Path, tmp_path: Path
) -> None:
    run_id = _run(home, tmp_path, **{variable: "0"})
    shown = json.loads(taskdaemon(home, "runs", "show", run_id, "--json").stdout)["attributes"]
    recorded = {key.rsplit(".", 1)[1]: value for key, value in shown.items() if "request" in key}
    assert (recorded["request"], recorded["request_size"], recorded["request_truncated"]) == (
        "",
        len('{"goal":"ship"}'),  # the request as recorded: compact JSON
        True,
    )
    refused = taskdaemon(home, "replay", run_id)
    assert refused.returncode == 2
    assert refused.stderr.splitlines()[1:] == [
        "  the definition: truncated at capture (0 of "
        f"{shown['taskdaemon.pipeline.definition_size']} bytes kept; TASKDAEMON_CAPTURE_MAX_BYTES "
        "sets the cap); supply it with the pipeline file: taskdaemon replay RUN FILE",
        "  the request: truncated at capture (0 of 15 bytes kept; TASKDAEMON_CAPTURE_MAX_BYTES "
        "sets the cap); supply it with --input KEY=VALUE for every request field",
    ]
    supplied = taskdaemon(home, "replay", run_id, str(tmp_path / "zero.yaml"), "-i", "goal=ship")
    assert supplied.returncode == 0, supplied.stderr
    assert f"replay of run {run_id}" in supplied.stdout


@pytest.mark.parametrize(
    ("variable", "bound"),
    [
        ("TASKDAEMON_LOG_CAPTURE_MAX_LINES", "0 lines / 1048576 bytes"),
        ("TASKDAEMON_LOG_CAPTURE_MAX_BYTES", "10000 lines / 0 bytes"),
    ],
)
def test_no_log_capture_keeps_no_output_and_says_so(
    variable: str, bound: str, home: Path, tmp_path: Path
) -> None:
    run_id = _run(home, tmp_path, **{variable: "0"})
    logs = taskdaemon(home, "logs", run_id, "--stage", "say")
    assert logs.returncode == 0, logs.stderr
    output = [line.split(" say.0.1 ", 1)[1] for line in logs.stdout.splitlines() if "[std" in line]
    assert output == [
        "[stderr] [taskdaemon] 2 output lines (12 bytes) dropped past the capture bound of "
        f"{bound} per stage"
    ]
