"""Stage code whose handlers, hooks or objects raise into taskdaemon's own path, run by the real
``taskdaemon run``: a logging handler on the root logger that raises, a result whose ``__repr__``,
``__eq__`` or ``__hash__`` raises, an error whose ``__str__`` raises, an object whose ``__del__``
raises. The run ends, at most one line says it, and its record is whole."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli_support import pythonpath_with, taskdaemon, write

HANDLERS = """\
import logging


class Raises(logging.Handler):
    def emit(self, record):
        raise ValueError("a handler that raises")


class ReprRaises:
    def __repr__(self):
        raise RuntimeError("repr")

    __str__ = __repr__


class EqRaises:
    def __eq__(self, other):
        raise RuntimeError("eq")

    def __hash__(self):
        raise RuntimeError("hash")


class DelRaises:
    def __del__(self):
        raise RuntimeError("del")


class StrRaises(Exception):
    def __str__(self):
        raise RuntimeError("str")


def adds_a_handler(ctx):
    logging.getLogger().addHandler(Raises())
    return {"kept": 1}


async def adds_a_handler_async(ctx):
    logging.getLogger().addHandler(Raises())
    return {"kept": 1}


def adds_a_handler_and_fails(ctx):
    logging.getLogger().addHandler(Raises())
    raise ValueError("its own failure")


def repr_raises(ctx):
    return {"r": ReprRaises(), "kept": 1}


def eq_raises(ctx):
    return {"r": EqRaises(), "kept": 1}


def del_raises(ctx):
    return {"r": DelRaises(), "kept": 1}


def str_raises(ctx):
    raise StrRaises()
"""

#: The line a raising logging handler gets, once (``run_log_emit``).
SAID = (
    "WARNING taskdaemon.pipeline.run_log_emit: a logging handler raised ValueError on a record "
    "of the run log: the handlers after it miss that record and any other it raises on; the "
    "run goes on"
)


def _ended(logs: str, code: int) -> bool:
    """Whether the stored log of the run ends with its end, ``t`` run when ``s`` succeeded."""
    status = "failure" if code else "success"
    last = logs.splitlines()[-1] if logs else ""
    return f"finished: {status}" in last and (code != 0 or "stage t.0.1 finished: success" in logs)


def _run(home: Path, tmp_path: Path, handler: str) -> tuple[int, str, str]:
    """``taskdaemon run -q`` of stage ``s`` (``handler``), then command stage ``t``: the exit
    code, stderr, and the stored ``logs`` of the run."""
    (tmp_path / "hostile.py").write_text(HANDLERS)
    pipeline = write(
        tmp_path / "p.yaml",
        f"""\
        name: hostile
        timeout: 20s
        stages:
          - name: s
            handler: "hostile:{handler}"
            triggers: [{{manual: {{approval_required: false}}}}]
          - name: t
            command: "echo next"
            triggers: [{{on_completion: {{stage: s}}}}]
        """,
    )
    ran = taskdaemon(
        home, "run", str(pipeline), "-q", timeout=40, PYTHONPATH=pythonpath_with(tmp_path)
    )
    logs = taskdaemon(home, "logs", ran.stdout.strip())
    return ran.returncode, ran.stderr, logs.stdout


@pytest.mark.slow
@pytest.mark.parametrize(
    ("handler", "code"),
    [("adds_a_handler", 0), ("adds_a_handler_async", 0), ("adds_a_handler_and_fails", 1)],
)
def test_a_logging_handler_that_raises_is_said_once_and_the_run_ends_whole(
    home: Path, tmp_path: Path, handler: str, code: int
) -> None:
    """Before: the monitor's worker logged the hook's failure through the same handler, which
    raised again, out of the thread that forwards ``run``'s kept records: the run never ended
    (40 s TimeoutExpired here)."""
    returncode, stderr, logs = _run(home, tmp_path, handler)
    lines = [line for line in stderr.splitlines() if "taskdaemon run: run " not in line]
    assert (code, 1, True, True) == (
        returncode,
        len(lines),
        SAID in lines[0],
        _ended(logs, code),
    ), stderr


@pytest.mark.slow
@pytest.mark.parametrize(
    ("handler", "code", "said"),
    [
        ("repr_raises", 0, ""),
        ("eq_raises", 0, ""),
        ("str_raises", 1, "stage 's' failure: <StrRaises: str() failed>"),
    ],
)
def test_a_result_or_error_whose_methods_raise_keeps_the_run_whole(
    home: Path, tmp_path: Path, handler: str, code: int, said: str
) -> None:
    """A result whose ``__repr__``, ``__eq__`` or ``__hash__`` raises is stored; an error whose
    ``__str__`` raises is named by its type: no traceback, the next stage runs."""
    returncode, stderr, logs = _run(home, tmp_path, handler)
    assert (code, True, "Traceback" in stderr, True) == (
        returncode,
        said in stderr,
        False,
        _ended(logs, code),
    ), stderr


@pytest.mark.slow
def test_a_result_whose_del_raises_is_python_s_line_alone(home: Path, tmp_path: Path) -> None:
    """``__del__`` raising is Python's "Exception ignored" report (stage code's own object): the
    run and its record are untouched, and nothing of taskdaemon's adds to it."""
    returncode, stderr, logs = _run(home, tmp_path, "del_raises")
    assert (0, True, True) == (
        returncode,
        "taskdaemon" not in stderr.replace("taskdaemon run: run ", ""),
        _ended(logs, 0),
    ), stderr
