"""Stage code that misbehaves, run by the real ``taskdaemon run``: whatever a handler returns,
the run ends with a status and an exit code that say what happened, no traceback reaches the
user, and the store keeps the stage's end."""

from __future__ import annotations

import contextlib
import json
import os
import signal
from pathlib import Path

import pytest

from cli_support import pythonpath_with, taskdaemon, write

#: Handlers returning what no JSON can hold.
HANDLERS = """\
import os
import time


class BadRepr:
    def __repr__(self):
        raise RuntimeError("repr raises")


def cyclic(ctx):
    result = {"n": 1}
    result["self"] = result
    return result


async def cyclic_async(ctx):
    return cyclic(ctx)


def shared(ctx):
    n = [1]
    for _ in range(40):
        n = [n, n]
    return {"n": n}


def bad_repr(ctx):
    return {"r": BadRepr()}


def bad_repr_alone(ctx):
    return BadRepr()


def closes_stdout(ctx):
    os.close(1)


async def blocks_the_loop(ctx):
    time.sleep(2)
    return {"late": True}


async def forks(ctx):
    pid = os.fork()
    if pid:
        with open("CHILD", "w") as file:
            file.write(str(pid))
    return {"pid": pid}


def reads(ctx):
    return {"x": ctx.inputs["x"]}
"""


def _pipeline(tmp_path: Path, handler: str, read: str = "stages.s.outputs.n") -> Path:
    """A stage returning ``handler``'s result and one reading ``read`` (an output of it)."""
    (tmp_path / "misbehaving.py").write_text(HANDLERS.replace("CHILD", str(tmp_path / "child")))
    return write(
        tmp_path / "p.yaml",
        f"""\
        name: misbehaving
        timeout: 30s
        stages:
          - name: s
            handler: "misbehaving:{handler}"
            triggers: [{{manual: {{approval_required: false}}}}]
          - name: t
            handler: "misbehaving:reads"
            triggers: [{{on_completion: {{stage: s}}}}]
            inputs: {{x: "{read}"}}
        """,
    )


def _stored_stages(home: Path, run_id: str) -> dict[str, dict[str, object]]:
    shown = taskdaemon(home, "runs", "show", run_id, "--json")
    assert 0 == shown.returncode, shown.stderr
    return {stage["name"]: stage for stage in json.loads(shown.stdout)["stages"]}


#: What a result that holds itself fails with.
_ENDLESS = "nests deeper than 100 levels (a value that holds itself does without end)"


@pytest.mark.slow
@pytest.mark.parametrize(
    ("handler", "error"),
    [
        ("cyclic", _ENDLESS),
        ("cyclic_async", _ENDLESS),
        ("shared", "holds more than 16,777,216 values, a shared one counted each time it is held"),
    ],
)
def test_a_result_that_holds_itself_fails_its_stage_in_one_line(
    home: Path, tmp_path: Path, handler: str, error: str
) -> None:
    """It walked the secret look-up for ever on the engine's loop (deaf to SIGTERM), and once
    past that, the CEL binding converting it for the next stage crashed the process. A result
    sharing a list at each of 40 levels (81 objects) unfolds to 2**41 values: the CEL binding
    ran out of memory in native code, and the run never ended."""
    ran = taskdaemon(
        home, "run", str(_pipeline(tmp_path, handler)), "-q", PYTHONPATH=pythonpath_with(tmp_path)
    )
    assert 1 == ran.returncode, ran.stderr
    assert "Traceback" not in ran.stderr + ran.stdout
    run_id = ran.stdout.strip()
    said = f"stage 's' failure: the handler's result {error}"
    assert f"taskdaemon run: run {run_id} failure: {said}\n" == ran.stderr
    stages = _stored_stages(home, run_id)
    assert "failure" == stages["s"]["status"]
    assert "skipped" == stages["t"]["status"]


@pytest.mark.slow
@pytest.mark.parametrize("handler", ["bad_repr", "bad_repr_alone"])
def test_a_result_whose_repr_raises_is_stored_with_its_stage(
    home: Path, tmp_path: Path, handler: str
) -> None:
    """The monitor's capture of the outputs raised: a traceback on stderr, and the stage's span
    lost (stored ``interrupted``). The value is written by its type: the capture never calls a
    handler's own ``__repr__`` (``payloads.value_text``)."""
    pipeline = _pipeline(tmp_path, handler, read="stages.s.status")
    ran = taskdaemon(home, "run", str(pipeline), "-q", PYTHONPATH=pythonpath_with(tmp_path))
    assert 0 == ran.returncode, ran.stderr
    assert "" == ran.stderr
    stages = _stored_stages(home, ran.stdout.strip())
    assert "success" == stages["s"]["status"]
    (attempt,) = stages["s"]["attempts"]  # type: ignore[misc]
    assert '"<misbehaving.BadRepr object>"}' in attempt["outputs"]


@pytest.mark.slow
def test_a_handler_that_closes_stdout_leaves_a_stored_run_and_one_line(
    home: Path, tmp_path: Path
) -> None:
    """The summary's write then failed with EBADF: a traceback, though the run had ended."""
    pipeline = _pipeline(tmp_path, "closes_stdout", read="stages.s.status")
    ran = taskdaemon(home, "run", str(pipeline), PYTHONPATH=pythonpath_with(tmp_path))
    assert 1 == ran.returncode, ran.stderr
    assert "Traceback" not in ran.stderr
    assert ran.stderr.endswith("\ntaskdaemon: cannot write the output: Bad file descriptor\n")
    run_id = ran.stderr.split()[1]  # ``run <id> of misbehaving started``
    stages = _stored_stages(home, run_id)
    assert ["success", "success"] == [stages["s"]["status"], stages["t"]["status"]]


@pytest.mark.slow
def test_an_async_handler_that_blocks_the_loop_past_its_timeout_times_out(
    home: Path, tmp_path: Path
) -> None:
    """Its cancellation had no await to reach, so the stage ended ``success`` 2 s into a
    0.5 s timeout, with what it returned late as its outputs."""
    pipeline = _pipeline(tmp_path, "blocks_the_loop", read="stages.s.status")
    pipeline.write_text(pipeline.read_text().replace("timeout: 30s", "timeout: 500ms"))
    ran = taskdaemon(home, "run", str(pipeline), "-q", PYTHONPATH=pythonpath_with(tmp_path))
    assert 1 == ran.returncode, ran.stderr
    run_id = ran.stdout.strip()
    expected = f"taskdaemon run: run {run_id} failure: stage 's' timeout: timed out after 0.5s\n"
    assert expected == ran.stderr
    stages = _stored_stages(home, run_id)
    assert "timeout" == stages["s"]["status"]
    (attempt,) = stages["s"]["attempts"]  # type: ignore[misc]
    assert attempt["outputs"] is None


@pytest.mark.slow
def test_an_async_handler_that_forks_and_returns_twice_leaves_one_run(
    home: Path, tmp_path: Path
) -> None:
    """The child carried on as a copy of the engine and hung on a lock of a thread the fork
    left behind, holding the command's stdout and stderr open: the caller reading them waited
    for ever."""
    pipeline = _pipeline(tmp_path, "forks", read="stages.s.status")
    try:
        ran = taskdaemon(
            home, "run", str(pipeline), "-q", timeout=30, PYTHONPATH=pythonpath_with(tmp_path)
        )
        assert 0 == ran.returncode, ran.stderr
        assert "" == ran.stderr
        stages = _stored_stages(home, ran.stdout.strip())
        assert ["success", "success"] == [stages["s"]["status"], stages["t"]["status"]]
    finally:
        child = int((tmp_path / "child").read_text())
        with contextlib.suppress(ProcessLookupError):
            os.kill(child, signal.SIGKILL)
