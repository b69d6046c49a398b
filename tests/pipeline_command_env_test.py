"""A command stage's environment is the user's, without opentelemetry-instrument's bootstrap."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.instrumentation import auto_instrumentation

from cli_support import TASKDAEMON, taskdaemon, write
from pipeline_engine_support import plain_context
from taskdaemon.pipeline.command_env import command_environment
from taskdaemon.pipeline.loops import command_handler

#: The directory whose ``sitecustomize`` opentelemetry-instrument puts first on PYTHONPATH.
BOOTSTRAP = str(Path(auto_instrumentation.__file__).parent)
#: The interpreter this virtualenv was made from, which has no OpenTelemetry of its own.
FOREIGN_PYTHON = getattr(sys, "_base_executable", sys.executable)
INSTRUMENT = str(Path(TASKDAEMON).with_name("opentelemetry-instrument"))


async def _run(command: str) -> Any:
    """Run ``command`` as a command stage; its result."""
    return await command_handler(command)(plain_context("command"))


async def test_a_command_does_not_inherit_the_bootstrap_directory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The bootstrap directory leaves a command's PYTHONPATH; the user's entries stay, in order."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([BOOTSTRAP, str(tmp_path), "/opt/lib"]))
    result = await _run('printf \'{"path": "%s"}\' "$PYTHONPATH"')
    assert {"path": os.pathsep.join([str(tmp_path), "/opt/lib"])} == result


async def test_a_python_without_opentelemetry_starts_without_an_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An interpreter without OpenTelemetry, started by a command under the bootstrap, writes
    nothing on stderr."""
    monkeypatch.setenv("PYTHONPATH", BOOTSTRAP)
    result = await _run(f"{FOREIGN_PYTHON} -c 'print(1)' 2>&1")
    assert {"stdout": "1", "exit_code": 0} == result


def test_pythonpath_of_the_bootstrap_alone_is_left_out() -> None:
    """A PYTHONPATH holding only the bootstrap directory is not set for the command at all."""
    env = command_environment({"PYTHONPATH": BOOTSTRAP + os.sep, "HOME": "/h"})
    assert {"HOME": "/h"} == env


def test_an_environment_without_the_bootstrap_is_copied_as_it_is() -> None:
    """PYTHONPATH without the bootstrap (empty entries included) and every other variable stay."""
    environ = {"PYTHONPATH": f"/a{os.pathsep}{os.pathsep}/b", "OTEL_SERVICE_NAME": "svc"}
    assert environ == command_environment(environ)


@pytest.mark.slow
def test_a_stage_under_opentelemetry_instrument_runs_a_foreign_python_cleanly(
    tmp_path: Path,
) -> None:
    """`opentelemetry-instrument taskdaemon run`: a command stage starting the system Python
    sees no sitecustomize error (the stage fails on any output of it)."""
    write(
        tmp_path / "foreign.yaml",
        f"""\
        name: foreign
        stages:
          - name: sys
            command: 'test -z "$({FOREIGN_PYTHON} -c pass 2>&1)"'
            triggers: [{{manual: {{approval_required: false}}}}]
        """,
    )
    done = taskdaemon(
        tmp_path / "home",
        "run",
        "foreign.yaml",
        cwd=tmp_path,
        launcher=(INSTRUMENT, TASKDAEMON),
    )
    assert 0 == done.returncode, done.stderr
