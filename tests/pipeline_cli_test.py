"""The ``taskdaemon run`` command, end to end: a run to its summary and its store, the one-line
errors of a file, a handler or an option that cannot be used, its threads at exit, Ctrl-C.

Each command runs as a real subprocess of the installed console script, from the repository
root (so ``examples.loops`` imports), with its own ``TASKDAEMON_HOME``. The other commands'
end-to-end tests are beside it: ``approve`` and its siblings on a served run
(``pipeline_cli_approve_served_test.py``), ``validate`` (``pipeline_cli_validate_test.py``),
``--input`` (``pipeline_cli_inputs_test.py``); the control socket those commands speak is
``pipeline_control_test.py`` and ``pipeline_control_protocol_test.py``.
"""

from __future__ import annotations

import json
import signal
import socket
import sys
from pathlib import Path
from typing import Any

import psutil
import pytest

from cli_support import ONE_STAGE_PIPELINE, ROOT, taskdaemon, write


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
        f"{path}:4: stages[0].handler: cannot import module 'no_such_module_abc': "
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
        f"{ROOT / 'examples/feature_delivery.yaml'}:16: loops.plan.handler: stages 'planning', "
        "'specification', "
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
        f"{path}:4: stages[0].handler: cannot import module 'needs_dep_mod': "
        "ModuleNotFoundError: No module named 'no_such_dependency_xyz' "
        "(raised at needs_dep_mod.py:1)\n"
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
        f"{path}:4: stages[0].handler: stages 's0', 's1', 's2' and 2 more: cannot import module "
        "'no_such_module_grp': ModuleNotFoundError: No module named 'no_such_module_grp' "
        f"(handler modules are imported from the current directory, {ROOT}, "
        "and PYTHONPATH)",
        f"{path}:19: stages[5].handler: loop type 'python': handler 'os:no_such_function': "
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


def test_a_serve_port_in_use_is_one_line_before_the_run(home: Path, tmp_path: Path) -> None:
    """``run --serve PORT`` on a taken port said ``taskdaemon: invalid setting --serve: [Errno
    98] Address already in use``: no setting was wrong. Now it says what ``serve`` says, with
    the exit code ``serve`` and ``ui`` give a taken address (1; it was 2, the code of a wrong
    command line), and nothing ran."""
    path = write(tmp_path / "p.yaml", ONE_STAGE_PIPELINE)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = taskdaemon(home, "run", str(path), "--serve", str(port))
    said = f"taskdaemon run: cannot serve on 127.0.0.1:{port}: Address already in use"
    assert (done.returncode, done.stderr.splitlines(), done.stdout) == (1, [said], "")
