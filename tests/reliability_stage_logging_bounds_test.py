"""Stage code whose log message has no text, or far too much, run by the real ``taskdaemon
run``: an int past Python's 4,300 digits as a ``%d``/``%s`` argument, a ``__str__`` returning
megabytes, a ``%*d`` of a huge width. The stage goes on and succeeds, each record is one
bounded line in the store, a secret at the cut is not shown, the record after them is kept."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli_support import pythonpath_with, taskdaemon
from taskdaemon.pipeline.foreign_text import MESSAGE_MAX_CHARS

HANDLERS = """\
import logging

log = logging.getLogger("bounds")


class Huge:
    def __str__(self):
        return "x" * 3_000_000


def f(ctx):
    log.info("digits %d", 10**5000)
    log.info("digits %s", [10**5000])
    log.info("object %s", Huge())
    log.info("wide %*d", 2_000_000, 7)
    log.info("%s password=hunter2-hunter2-hunter2 %s", "y" * 65_470, "z" * 100)
    log.info("after")
    return {"kept": 1}
"""


@pytest.mark.slow
def test_messages_without_text_or_with_megabytes_are_one_bounded_line(
    home: Path, tmp_path: Path
) -> None:
    """Before, the int's ``ValueError`` raised out of the log filter into ``log.info`` and
    failed the stage; a message of megabytes was printed and stored whole."""
    (tmp_path / "bounds.py").write_text(HANDLERS)
    entry = "[{manual: {approval_required: false}}]"
    pipeline = tmp_path / "p.yaml"
    pipeline.write_text(
        f'name: bounds\nstages:\n  - {{name: s, handler: "bounds:f", triggers: {entry}}}\n'
    )
    ran = taskdaemon(home, "run", str(pipeline), "-q", PYTHONPATH=pythonpath_with(tmp_path))
    assert 0 == ran.returncode, ran.stderr[-2000:]
    logged = taskdaemon(home, "logs", ran.stdout.strip(), "--json")
    assert 0 == logged.returncode, logged.stderr
    messages = [
        entry["msg"]
        for entry in map(json.loads, logged.stdout.splitlines())
        if entry["logger"] == "bounds"
    ]
    too_long = "Exceeds the limit (4300 digits) for integer string conversion"
    assert [
        f"digits %d <its format does not fit its arguments <values of types int>: "
        f"ValueError: {too_long}",
        f"digits %s <its format does not fit its arguments <values of types list>: "
        f"ValueError: {too_long}",
    ] == [message.partition(";")[0] for message in messages[:2]]
    assert [MESSAGE_MAX_CHARS] * 3 == [len(message) for message in messages[2:5]]
    assert messages[2].endswith("x… <a message of 3,000,007 characters, cut>")
    assert messages[3].endswith("  … <a message of 2,000,005 characters, cut>")
    assert messages[4].endswith("… <a message of 65,604 characters, cut>")
    assert "password=[REDACTED]" in messages[4]
    assert "hunter" not in logged.stdout + ran.stderr
    assert "after" == messages[5]
    assert "Traceback" not in ran.stderr
    assert len(ran.stderr) < 5 * MESSAGE_MAX_CHARS + 10_000
