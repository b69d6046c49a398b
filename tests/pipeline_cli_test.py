"""The ``taskdaemon run / validate / approve / publish / cancel`` commands, end to end.

Each command runs as a real subprocess of the installed console script, from the repository
root (so ``examples.loops`` imports), with its own ``TASKDAEMON_HOME``.
"""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from cli_support import ONE_STAGE_PIPELINE, ROOT, taskdaemon, write
from taskdaemon.pipeline.cli.inputs import parse_inputs
from taskdaemon.pipeline.control import ControlServer, send_request
from taskdaemon.pipeline.errors import RunNotFoundError

APPROVAL_PIPELINE = """\
    name: gated
    external_events: [deploy.requested]
    stages:
      - name: build
        command: "echo built"
        triggers: [{manual: {approval_required: false}}]
      - name: deploy
        command: "echo deployed"
        triggers:
          - on_completion: {stage: build}
          - manual: {approval_required: true}
        trigger_mode: all
      - name: announce
        loop: command
        command: "printf %s \\"$TASKDAEMON_INPUT_TARGET\\""
        triggers: [{on_event: {type: deploy.requested}}]
        inputs:
          target: event.target
"""


# -- run --------------------------------------------------------------------------------------


@pytest.mark.slow
def test_example_pipeline_runs_to_success(home: Path) -> None:
    """The shipped example runs to success with --auto-approve and prints the summary table."""
    done = taskdaemon(home, "run", "examples/feature_delivery.yaml", "--auto-approve")
    assert 0 == done.returncode, done.stderr
    header = done.stdout.splitlines()[0].split()
    expected = ["STAGE", "STATUS", "INSTANCES", "ATTEMPTS", "QUEUE", "DURATION", "ERROR"]
    assert expected == header
    statuses = {line.split()[0]: line.split()[1] for line in done.stdout.splitlines()[1:6]}
    expected_statuses = {
        "planning": "success",
        "specification": "success",
        "implementation": "success",
        "verification": "success",
        "release": "success",
    }
    assert expected_statuses == statuses
    assert "release                  approved by cli --auto-approve" in done.stderr
    run_id = done.stdout.split("run ")[-1].split()[0]
    workspace = home / "workspaces" / run_id
    expected_files = ["heavy.py", "parse.py", "render.py"]  # deploy_hook filtered out
    assert expected_files == sorted(p.name for p in (workspace / "src").glob("*.py"))
    assert not (home / "control" / f"{run_id}.sock").exists()


@pytest.mark.slow
def test_run_lands_in_the_embedded_span_store(home: Path) -> None:
    """`taskdaemon run` writes its spans to $TASKDAEMON_HOME/spans.db; history rebuilds the run."""
    done = taskdaemon(home, "run", "examples/feature_delivery.yaml", "--auto-approve", "-q")
    assert 0 == done.returncode, done.stderr
    run_id = done.stdout.split()[-1]
    assert (home / "spans.db").exists()
    listed = json.loads(taskdaemon(home, "runs", "list", "--json").stdout)
    assert [(run_id, "feature-delivery", "success")] == [
        (row["run_id"], row["pipeline"], row["status"]) for row in listed
    ]
    shown = json.loads(taskdaemon(home, "runs", "show", run_id, "--json").stdout)
    stages = {stage["name"]: stage["status"] for stage in shown["stages"]}
    assert {
        "planning": "success",
        "specification": "success",
        "implementation": "success",
        "verification": "success",
        "release": "success",
    } == stages


def test_invalid_file_exits_2_without_traceback(home: Path, tmp_path: Path) -> None:
    """An invalid pipeline file prints its issues, one per line, and exits 2."""
    path = write(
        tmp_path / "bad.yaml",
        """\
        name: bad
        stages:
          - name: a
            command: "true"
            triggers: [{on_completion: {stage: nowhere}}]
            retries: 3
        """,
    )
    done = taskdaemon(home, "run", str(path))
    assert 2 == done.returncode
    assert "Traceback" not in done.stderr
    assert f"{path}:6: stages[0].retries:" in done.stderr
    assert "nowhere" in done.stderr
    assert "" == done.stdout


def test_a_workspace_that_cannot_be_made_is_one_line(home: Path, tmp_path: Path) -> None:
    """A workspace directory that cannot be created (a read-only home) is one line, exit 2."""
    path = write(
        tmp_path / "one.yaml",
        """\
        name: one
        stages:
          - name: a
            command: "true"
            triggers: [{manual: {approval_required: false}}]
        """,
    )
    (tmp_path / "file").write_text("not a directory")
    done = taskdaemon(home, "run", str(path), "--workspace", str(tmp_path / "file" / "ws"))
    lines = done.stderr.splitlines()
    assert (2, 1) == (done.returncode, len(lines)), done.stderr
    assert lines[0].startswith(f"taskdaemon run: cannot create the workspace {tmp_path}/file/ws")


def test_unresolvable_handler_exits_2(home: Path, tmp_path: Path) -> None:
    """A handler that cannot be imported is reported before the run starts, with exit 2."""
    path = write(
        tmp_path / "handler.yaml",
        """\
        name: handler
        stages:
          - name: a
            handler: "no_such_module_abc:run"
            triggers: [{manual: {approval_required: false}}]
        """,
    )
    done = taskdaemon(home, "run", str(path))
    assert 2 == done.returncode
    expected = (
        f"{path}: stage 'a': cannot import module 'no_such_module_abc': "
        "ModuleNotFoundError: No module named 'no_such_module_abc' (handler modules are "
        f"imported from the current directory, {ROOT}, and PYTHONPATH)\n"
    )
    assert expected == done.stderr


def test_an_example_run_from_another_directory_says_where_handlers_are_looked_for(
    home: Path, tmp_path: Path
) -> None:
    """The example's four stages whose handler module is not found from another directory
    share one line, which names the directory handler modules are imported from."""
    done = taskdaemon(home, "validate", str(ROOT / "examples/feature_delivery.yaml"), cwd=tmp_path)
    assert 2 == done.returncode
    expected = (
        f"{ROOT / 'examples/feature_delivery.yaml'}: stages 'planning', 'specification', "
        "'implementation' and 1 more: cannot import module 'examples.loops': "
        "ModuleNotFoundError: No module named 'examples' (handler modules are imported from "
        f"the current directory, {tmp_path}, and PYTHONPATH)\n"
    )
    assert expected == done.stdout


def test_a_handler_module_missing_a_dependency_is_not_blamed_on_the_directory(
    home: Path, tmp_path: Path
) -> None:
    """A handler module that is found but imports a missing package names that package, with
    no word about where handler modules are looked for."""
    (tmp_path / "needs_dep_mod.py").write_text("import no_such_dependency_xyz\n")
    path = write(
        tmp_path / "dep.yaml",
        """\
        name: dep
        stages:
          - name: a
            handler: "needs_dep_mod:run"
            triggers: [{manual: {approval_required: false}}]
        """,
    )
    done = taskdaemon(home, "validate", str(path), cwd=tmp_path)
    assert 2 == done.returncode
    expected = (
        f"{path}: stage 'a': cannot import module 'needs_dep_mod': "
        "ModuleNotFoundError: No module named 'no_such_dependency_xyz'\n"
    )
    assert expected == done.stdout


def test_stages_that_share_a_resolution_problem_share_one_line(home: Path, tmp_path: Path) -> None:
    """Five stages whose handler module is missing give one line naming three and counting two
    more; a stage with another problem keeps its own line, in file order."""
    stages = "".join(
        f"""
          - name: s{i}
            handler: "no_such_module_grp:run"
            triggers: [{{manual: {{approval_required: false}}}}]"""
        for i in range(5)
    )
    path = tmp_path / "many.yaml"
    path.write_text(
        "name: many\nstages:"
        + stages
        + """
          - name: odd
            handler: "os:no_such_function"
            triggers: [{manual: {approval_required: false}}]
        """.rstrip()
        + "\n"
    )
    done = taskdaemon(home, "validate", str(path))
    assert 2 == done.returncode
    assert [
        f"{path}: stages 's0', 's1', 's2' and 2 more: cannot import module "
        "'no_such_module_grp': ModuleNotFoundError: No module named 'no_such_module_grp' "
        f"(handler modules are imported from the current directory, {ROOT}, "
        "and PYTHONPATH)",
        f"{path}: stage 'odd': loop type 'python': handler 'os:no_such_function': "
        "module 'os' has no attribute 'no_such_function'",
    ] == done.stdout.splitlines()


THREADS_AT_EXIT = """\
import atexit, runpy, sys, threading

def report():
    names = sorted(t.name for t in threading.enumerate() if t is not threading.main_thread())
    print("threads at exit:", names, file=sys.stderr)

atexit.register(report)
sys.argv = ["taskdaemon", *sys.argv[1:]]
runpy.run_module("taskdaemon.pipeline.cli", run_name="__main__")
"""


@pytest.mark.slow
def test_run_leaves_no_thread_of_its_own_at_exit(home: Path, tmp_path: Path) -> None:
    """When ``run`` returns, none of its threads is left: the monitor's worker thread, which
    a run of sync handlers starts, used to outlive the command."""
    (tmp_path / "sync_steps.py").write_text(
        "import time\n\ndef step(ctx):\n    time.sleep(0.2)  # telemetry loads meanwhile\n"
    )
    path = write(
        tmp_path / "sync.yaml",
        """\
        name: sync
        stages:
          - name: a
            handler: "sync_steps:step"
            triggers: [{manual: {approval_required: false}}]
          - name: b
            handler: "sync_steps:step"
            triggers: [{on_completion: {stage: a}}]
          - name: c
            handler: "sync_steps:step"
            triggers: [{on_completion: {stage: b}}]
        """,
    )
    launcher = (sys.executable, "-c", THREADS_AT_EXIT)
    done = taskdaemon(home, "run", "-q", str(path), cwd=tmp_path, launcher=launcher)
    assert 0 == done.returncode, done.stderr
    assert "threads at exit: []" in done.stderr.splitlines()


def test_failing_pipeline_exits_1(home: Path, tmp_path: Path) -> None:
    """A run whose stage fails exits 1 and shows the stage's error and stderr in the table."""
    path = write(
        tmp_path / "fail.yaml",
        """\
        name: failing
        stages:
          - name: first
            command: "echo oops >&2; exit 4"
            triggers: [{manual: {approval_required: false}}]
          - name: second
            command: "echo never"
            triggers: [{on_completion: {stage: first}}]
        """,
    )
    done = taskdaemon(home, "run", str(path))
    assert 1 == done.returncode
    rows = {line.split()[0]: line.split()[1] for line in done.stdout.splitlines()[1:3]}
    expected = {"first": "failure", "second": "skipped"}
    assert expected == rows
    assert "exited with code 4" in done.stdout
    assert "oops" in done.stdout


@pytest.mark.slow
def test_inputs_reach_the_request(home: Path, tmp_path: Path) -> None:
    """--input-file then --input (JSON when it parses) make the request the stages read."""
    path = write(
        tmp_path / "inputs.yaml",
        """\
        name: inputs
        stages:
          - name: echo
            command: "cat"
            triggers: [{manual: {approval_required: false}}]
            inputs:
              n: request.n
              name: request.name
              tags: request.tags
        """,
    )
    (tmp_path / "request.yaml").write_text("name: from-file\nn: 1\ntags: [a]\n")
    done = taskdaemon(
        home,
        "run",
        str(path),
        "--input-file",
        str(tmp_path / "request.yaml"),
        "--input",
        "n=41",
        "--input",
        "name=ada",
        "--quiet",
    )
    assert 0 == done.returncode, done.stderr
    [run_id] = done.stdout.split()
    assert 32 == len(run_id)
    assert "" == done.stderr


def test_parse_inputs_json_or_text(tmp_path: Path) -> None:
    """--input values are JSON when they parse, text otherwise; --input wins over the file."""
    (tmp_path / "r.json").write_text('{"a": 1, "b": "file"}')
    expected = {"a": 1, "b": "cli", "n": 3, "flags": [1, 2], "text": "hello world", "empty": ""}
    actual = parse_inputs(
        ["b=cli", "n=3", "flags=[1,2]", "text=hello world", "empty="], str(tmp_path / "r.json")
    )
    assert expected == actual


def test_parse_inputs_reads_a_json_file_by_jsons_rules(tmp_path: Path) -> None:
    """A ``.json`` input file's ``1e3`` is a number, as ``--input n=1e3`` is (YAML 1.1 would
    read it as text)."""
    (tmp_path / "r.json").write_text('{"n": 1e3}')
    assert {"n": 1000.0, "m": 1000.0} == parse_inputs(["m=1e3"], str(tmp_path / "r.json"))


def test_parse_inputs_names_a_json_files_syntax_error(tmp_path: Path) -> None:
    """A ``.json`` input file that is not JSON is one line naming the file and JSON's reason."""
    path = tmp_path / "r.json"
    path.write_text('{"n": 1,}')
    with pytest.raises(ValueError, match="not JSON") as caught:
        parse_inputs([], str(path))
    assert str(caught.value).startswith(f"--input-file {path}: not JSON: Expecting property")


def test_parse_inputs_rejects_pairs_without_equals() -> None:
    """A --input without '=' is refused with its text."""
    with pytest.raises(ValueError, match="--input 'oops' has no '=': expected KEY=VALUE"):
        parse_inputs(["oops"])


@pytest.mark.parametrize(
    ("pair", "reason"),
    [
        ("password", "--input 'password' has no '=': expected KEY=VALUE"),
        ("token", "--input 'token' has no '=': expected KEY=VALUE"),
        ("=hunter2", "--input has no key before its '=': expected KEY=VALUE"),
    ],
)
def test_a_secret_s_name_without_a_value_keeps_its_reason(
    home: Path, tmp_path: Path, pair: str, reason: str
) -> None:
    """``run -i password`` (the value forgotten) says what is wrong: the line goes through
    redaction on its way out, and ``'password': expected KEY=VALUE`` read as a secret's key and
    value, so the user saw ``--input 'password': [REDACTED] KEY=VALUE``. A value with no key is
    not echoed (it may be the secret)."""
    path = write(tmp_path / "one.yaml", ONE_STAGE_PIPELINE)
    ran = taskdaemon(home, "run", str(path), "-i", pair)
    assert (2, f"taskdaemon run: {reason}\n") == (ran.returncode, ran.stderr)


# -- approvals, events, cancel across processes -----------------------------------------------


@pytest.mark.slow
def test_approve_reaches_a_run_in_another_process(home: Path, tmp_path: Path, serve: Any) -> None:
    """`taskdaemon approve RUN STAGE` grants the approval a served run waits for."""
    path = write(tmp_path / "gated.yaml", APPROVAL_PIPELINE)
    served = serve(str(path))
    served.wait_for_line("deploy                   waiting for approval")
    status = taskdaemon(home, "status", served.run_id)
    assert 0 == status.returncode, status.stderr
    assert "waiting" == json.loads(status.stdout)["stages"]["deploy"]

    published = taskdaemon(
        home, "publish", served.run_id[:8], "deploy.requested", "--payload", '{"target": "prod"}'
    )
    assert 0 == published.returncode, published.stderr
    served.wait_for_line("announce#0               success")

    approved = taskdaemon(home, "approve", served.run_id, "deploy", "--by", "alice")
    assert 0 == approved.returncode, approved.stderr
    assert "approved deploy (by alice)\n" == approved.stdout
    code, stdout, stderr = served.finish()
    assert 0 == code, stderr
    assert "deploy                   approved by alice" in stderr
    rows = {line.split()[0]: line.split()[1] for line in stdout.splitlines()[1:4]}
    expected = {"build": "success", "deploy": "success", "announce": "success"}
    assert expected == rows
    assert not (home / "control" / f"{served.run_id}.sock").exists()


@pytest.mark.slow
def test_a_running_run_is_in_the_history_of_another_process(
    home: Path, tmp_path: Path, serve: Any
) -> None:
    """While a run waits for an approval, `runs list` and `runs show` in another process see
    it running, with the stages that already finished. The span writer commits a running run's
    rows within its flush interval (``tracking/writer.py``), which may end after the approval
    line is printed: the listing is asked again until the run is there (at most 30 s)."""
    path = write(tmp_path / "gated.yaml", APPROVAL_PIPELINE)
    served = serve(str(path))
    served.wait_for_line("deploy                   waiting for approval")
    deadline = time.monotonic() + 30
    listed = json.loads(taskdaemon(home, "runs", "list", "--json").stdout)
    while not listed and time.monotonic() < deadline:
        time.sleep(0.05)
        listed = json.loads(taskdaemon(home, "runs", "list", "--json").stdout)
    assert [(served.run_id, "gated", "running")] == [
        (row["run_id"], row["pipeline"], row["status"]) for row in listed
    ]
    shown = json.loads(taskdaemon(home, "runs", "show", served.run_id, "--json").stdout)
    assert "success" == {s["name"]: s["status"] for s in shown["stages"]}["build"]
    assert 0 == taskdaemon(home, "approve", served.run_id, "deploy").returncode
    assert 0 == served.finish()[0]


@pytest.mark.slow
def test_reject_skips_the_stage(home: Path, tmp_path: Path, serve: Any) -> None:
    """`taskdaemon approve --reject` refuses the approval: the stage is skipped."""
    text = APPROVAL_PIPELINE.split("      - name: announce", maxsplit=1)[0]
    path = write(tmp_path / "gated.yaml", text.replace("[deploy.requested]", "[]"))
    served = serve(str(path))
    served.wait_for_line("waiting for approval")
    rejected = taskdaemon(home, "approve", served.run_id, "deploy", "--reject", "--by", "bob")
    assert 0 == rejected.returncode, rejected.stderr
    code, stdout, stderr = served.finish()
    assert "deploy                   rejected by bob" in stderr
    assert "skipped" == stdout.splitlines()[2].split()[1]
    assert 0 == code


@pytest.mark.slow
def test_approving_a_stage_not_waiting_is_refused(home: Path, tmp_path: Path, serve: Any) -> None:
    """Approving a stage that waits for no approval exits 1 with the run's reason."""
    path = write(tmp_path / "gated.yaml", APPROVAL_PIPELINE)
    served = serve(str(path))
    served.wait_for_line("waiting for approval")
    refused = taskdaemon(home, "approve", served.run_id, "build")
    assert 1 == refused.returncode
    assert refused.stderr.startswith("taskdaemon approve: ")
    assert "build" in refused.stderr
    assert 0 == taskdaemon(home, "cancel", served.run_id).returncode
    code, _stdout, _stderr = served.finish()
    assert 1 == code


def test_commands_on_an_unknown_run_exit_3(home: Path) -> None:
    """approve/publish/cancel for a run no process serves say so and exit 3."""
    done = taskdaemon(home, "approve", "0" * 32, "deploy")
    assert 3 == done.returncode
    expected = (
        f"taskdaemon approve: no run '{'0' * 32}' is served here (no socket under "
        f"{home / 'control'}): is its 'taskdaemon run' (or 'serve') still running, with "
        "the same TASKDAEMON_HOME?\n"
    )
    assert expected == done.stderr
    assert 3 == taskdaemon(home, "cancel", "abc").returncode


def test_stale_socket_is_reported(home: Path) -> None:
    """A socket file left by a crashed run is reported as not served any more."""
    (home / "control").mkdir()
    stale = home / "control" / f"{'a' * 32}.sock"
    with socket.socket(socket.AF_UNIX) as listener:
        listener.bind(str(stale))  # bound, never listening, then closed: a dead socket file
    done = taskdaemon(home, "cancel", "a" * 32)
    assert 3 == done.returncode
    assert "is not served any more" in done.stderr


@pytest.mark.slow
def test_ctrl_c_cancels_the_run_and_its_processes(home: Path, tmp_path: Path, serve: Any) -> None:
    """SIGINT cancels the run cleanly: its command's processes die and the exit code is 130."""
    pids = tmp_path / "pids"
    path = write(
        tmp_path / "slow.yaml",
        f"""\
        name: slow
        stages:
          - name: wait
            command: "sleep 60 & echo $! > {pids}; wait"
            triggers: [{{manual: {{approval_required: false}}}}]
        """,
    )
    served = serve(str(path))
    served.wait_for_line("wait                     running")
    served.process.send_signal(signal.SIGINT)
    code, stdout, stderr = served.finish()
    assert 130 == code, stderr
    assert "cancelled" == stdout.splitlines()[1].split()[1]
    if pids.exists() and pids.read_text().strip():
        sleeper = int(pids.read_text())
        assert not psutil.pid_exists(sleeper) or (
            psutil.Process(sleeper).status() == psutil.STATUS_ZOMBIE
        )


# -- validate ---------------------------------------------------------------------------------


def test_validate_reports_each_file(home: Path, tmp_path: Path) -> None:
    """validate prints OK for valid files, the issues of invalid ones, and exits 2 if any."""
    bad = write(tmp_path / "bad.yaml", "name: Bad Name\nstages: []\n")
    done = taskdaemon(home, "validate", "examples/feature_delivery.yaml", str(bad))
    assert 2 == done.returncode
    lines = done.stdout.splitlines()
    assert "OK examples/feature_delivery.yaml (5 stages)" == lines[0]
    assert all(line.startswith(f"{bad}:") for line in lines[1:])
    assert len(lines) > 1
    assert "Traceback" not in done.stderr


def test_validate_ok_exits_0(home: Path) -> None:
    """validate exits 0 when every file is valid."""
    done = taskdaemon(home, "validate", "examples/feature_delivery.yaml")
    assert (0, "OK examples/feature_delivery.yaml (5 stages)\n") == (done.returncode, done.stdout)


# -- the control protocol ---------------------------------------------------------------------


class RecordingTarget:
    """A run handle stand-in that records what reaches it and refuses unknown stages."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, ...]] = []

    def approve(self, stage: str, *, by: str = "") -> None:
        if stage != "release":
            raise ValueError(f"stage {stage!r} is not waiting for an approval")
        self.calls.append(("approve", stage, by))

    def reject(self, stage: str, *, by: str = "") -> None:
        self.calls.append(("reject", stage, by))

    def publish(self, event_type: str, payload: Any) -> None:
        self.calls.append(("publish", event_type, json.dumps(payload)))

    async def cancel(self) -> None:
        self.calls.append(("cancel",))


async def test_control_protocol_answers_every_op(home: Path) -> None:
    """Each op reaches the target; bad requests get one-line errors on the same connection."""
    target = RecordingTarget()
    async with ControlServer("f" * 32, target, status=lambda: {"x": 1}, home=home) as server:
        reader, writer = await asyncio.open_unix_connection(str(server.path))
        requests = [
            {"op": "approve", "stage": "release", "by": "ann"},
            {"op": "approve", "stage": "build"},
            {"op": "reject", "stage": "release"},
            {"op": "publish", "type": "spec.ready", "payload": {"n": 1}},
            {"op": "publish", "type": "spec.ready", "payload": [1]},
            {"op": "cancel"},
            {"op": "status"},
            {"op": "explode"},
        ]
        answers = []
        for request in [*requests, "not json"]:
            line = request if isinstance(request, str) else json.dumps(request)
            writer.write(line.encode() + b"\n")
            await writer.drain()
            answers.append(json.loads(await reader.readline()))
        writer.close()
        await writer.wait_closed()
    expected_answers = [
        {"ok": True},
        {"ok": False, "error": "stage 'build' is not waiting for an approval"},
        {"ok": True},
        {"ok": True},
        {"ok": False, "error": "publish needs a JSON object as 'payload'"},
        {"ok": True},
        {"ok": True, "run_id": "f" * 32, "status": {"x": 1}},
        {"ok": False, "error": "unknown op 'explode' (approve, reject, publish, cancel, status)"},
        {"ok": False, "error": "not JSON: Expecting value: line 1 column 1 (char 0)"},
    ]
    assert expected_answers == answers
    expected_calls = [
        ("approve", "release", "ann"),
        ("reject", "release", "control socket"),
        ("publish", "spec.ready", '{"n": 1}'),
        ("cancel",),
    ]
    assert expected_calls == target.calls
    assert not server.path.exists()


async def test_an_empty_run_id_names_no_served_run(home: Path) -> None:
    """An empty RUN (an unset shell variable, say) reaches no run, even the only one served:
    every run id starts with the empty prefix, so it would pick that run."""
    target = RecordingTarget()
    async with ControlServer("f" * 32, target, status=lambda: {"x": 1}, home=home):
        with pytest.raises(RunNotFoundError) as refused:
            await asyncio.to_thread(send_request, "", {"op": "cancel"}, home=home)
    expected = ("no run id given: name a run in progress by its id or a prefix of it", [])
    assert expected == (str(refused.value), target.calls)


async def test_a_deeply_nested_control_request_is_a_one_line_answer(home: Path) -> None:
    """A request line nested 10,000 deep is answered with the depth limit on the same
    connection, which then still answers (json's recursion no longer kills the handler)."""
    target = RecordingTarget()
    async with ControlServer("f" * 32, target, status=lambda: {"x": 1}, home=home) as server:
        reader, writer = await asyncio.open_unix_connection(str(server.path))
        answers = []
        for line in ["[" * 10_000 + "]" * 10_000, json.dumps({"op": "cancel"})]:
            writer.write(line.encode() + b"\n")
            await writer.drain()
            answers.append(json.loads(await reader.readline()))
        writer.close()
        await writer.wait_closed()
    expected = [{"ok": False, "error": "nested deeper than 100 levels"}, {"ok": True}]
    assert expected == answers


def test_a_serve_port_in_use_is_one_line_before_the_run(home: Path, tmp_path: Path) -> None:
    """``run --serve PORT`` on a taken port said ``taskdaemon: invalid setting --serve: [Errno
    98] Address already in use``: no setting was wrong. Now it says what ``serve`` says, exit
    2, and nothing ran."""
    path = write(tmp_path / "p.yaml", ONE_STAGE_PIPELINE)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = taskdaemon(home, "run", str(path), "--serve", str(port))
    said = f"taskdaemon run: cannot serve on 127.0.0.1:{port}: Address already in use"
    assert (done.returncode, done.stderr.splitlines(), done.stdout) == (2, [said], "")


def test_acting_on_a_run_that_has_ended_says_it_ended(home: Path, tmp_path: Path) -> None:
    """``approve`` (``publish``, ``cancel``, ``status``) of a run that ended asked whether its
    ``taskdaemon run`` was still running, with the same home: a user who just ran it could not
    tell. A run the home's store has as ended is now said to have ended; exit 3 still."""
    path = write(tmp_path / "p.yaml", ONE_STAGE_PIPELINE)
    run_id = taskdaemon(home, "run", str(path), "-q").stdout.split()[0]
    for args in (("approve", run_id[:6], "only"), ("status", run_id)):
        done = taskdaemon(home, *args)
        said = f"taskdaemon {args[0]}: run {run_id} has ended (success): no process serves it"
        assert (done.returncode, done.stderr.startswith(said)) == (3, True), done.stderr
    unknown = taskdaemon(home, "cancel", "ffff")
    assert "no run 'ffff' is served here" in unknown.stderr
