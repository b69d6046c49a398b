"""The control socket's answers to each op, to a request that is not JSON or nests too deep, and
to an empty run id: ``ControlServer`` in-process over a target that records what reaches it
(``pipeline_control_test.py`` has the socket's place and the client)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from taskdaemon.pipeline.control import ControlServer, send_request
from taskdaemon.pipeline.errors import RunNotFoundError


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

    async def cancel(self, *, by: str = "") -> None:
        self.calls.append(("cancel", by))


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
            {"op": "cancel", "by": "bob"},
            {"op": "cancel", "by": ["bob"]},
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
        {"ok": True},
        {"ok": False, "error": "by must be a string"},
        {"ok": True, "run_id": "f" * 32, "status": {"x": 1}},
        {"ok": False, "error": "unknown op 'explode' (approve, reject, publish, cancel, status)"},
        {"ok": False, "error": "not JSON: Expecting value: line 1 column 1 (char 0)"},
    ]
    assert expected_answers == answers
    expected_calls = [
        ("approve", "release", "ann"),
        ("reject", "release", "control socket"),
        ("publish", "spec.ready", '{"n": 1}'),
        ("cancel", "control socket"),
        ("cancel", "bob"),
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


async def test_an_unknown_op_is_quoted_short_and_redacted(home: Path) -> None:
    """An op of 70,000 characters, or holding a credential, is named by its start, redacted:
    the answer used to send the whole op back (the socket fuzzer, seed 35)."""
    target = RecordingTarget()
    async with ControlServer("f" * 32, target, home=home) as server:
        answers = [
            await server.handle(json.dumps({"op": op}).encode())
            for op in ("x" * 70_000, "password=hunter2", ["a"] * 1000)
        ]
    tail = " (approve, reject, publish, cancel, status)"
    expected = [
        {"ok": False, "error": f"unknown op '{'x' * 39}…'{tail}"},
        {"ok": False, "error": f"unknown op 'password=[REDACTED]'{tail}"},
        {"ok": False, "error": f"unknown op {str(['a'] * 8)[:39]}…{tail}"},
    ]
    assert expected == answers


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
