"""The control socket in-process: where it lives, the requests it answers, and the client.

The CLI's end-to-end tests (``pipeline_cli_approve_served_test.py``) reach the socket through
a ``taskdaemon`` subprocess; these drive ``ControlServer`` and ``send_request`` in one process,
the client in a thread (it is synchronous) while the event loop serves.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import stat
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from cli_faults_support import listening
from taskdaemon.pipeline import control
from taskdaemon.pipeline.control import ControlServer, send_request
from taskdaemon.pipeline.errors import PipelineError, RunNotFoundError

RUN = "f" * 32


class Target:
    """A run handle stand-in that records what reaches it."""

    def __init__(self, refusal: Exception | None = None) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.refusal = refusal

    def approve(self, stage: str, *, by: str = "") -> None:
        self.calls.append(("approve", stage, by))

    def reject(self, stage: str, *, by: str = "") -> None:
        self.calls.append(("reject", stage, by))

    def publish(self, event_type: str, payload: Any) -> None:
        self.calls.append(("publish", event_type, payload))

    async def cancel(self, *, by: str = "") -> None:
        if self.refusal is not None:
            raise self.refusal
        self.calls.append(("cancel", by))


async def _ask(server: ControlServer, request: Any) -> Any:
    """The answer ``server`` gives to one request line (a JSON value, or raw text)."""
    reader, writer = await asyncio.open_unix_connection(str(server.path))
    line = request if isinstance(request, str) else json.dumps(request)
    writer.write(line.encode() + b"\n")
    await writer.drain()
    answer = json.loads(await reader.readline())
    writer.close()
    await writer.wait_closed()
    return answer


@asynccontextmanager
async def _answering(path: Path, answer: bytes | None) -> AsyncIterator[None]:
    """A foreign server on ``path`` that reads one line, writes ``answer`` and closes (None:
    it never answers, and waits for the client to leave)."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readline()
        if answer is None:
            await reader.read()
        else:
            writer.write(answer)
            await writer.drain()
        writer.close()

    path.parent.mkdir(parents=True, exist_ok=True)
    server = await asyncio.start_unix_server(serve, path=str(path), limit=4 << 20)
    try:
        yield
    finally:
        server.close()
        await server.wait_closed()


def _in_thread(function: Callable[..., Any], *args: Any, **kwargs: Any) -> Awaitable[Any]:
    return asyncio.to_thread(function, *args, **kwargs)


# -- where the socket lives --------------------------------------------------------------------


def test_the_control_directory_is_under_the_given_home(tmp_path: Path) -> None:
    """``control_dir(home)`` is ``<home>/control``, whatever TASKDAEMON_HOME says."""
    assert tmp_path / "control" == control.control_dir(tmp_path)


def test_the_control_directory_follows_taskdaemon_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without a home, the directory is ``$TASKDAEMON_HOME/control``."""
    monkeypatch.setenv("TASKDAEMON_HOME", str(tmp_path))
    assert tmp_path / "control" == control.control_dir()


def test_the_control_directory_defaults_to_the_working_directory(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without a home nor TASKDAEMON_HOME, it is ``.taskdaemon/control``, relative."""
    monkeypatch.delenv("TASKDAEMON_HOME", raising=False)
    assert Path(".taskdaemon/control") == control.control_dir()


def test_a_run_s_socket_is_named_after_its_id(tmp_path: Path) -> None:
    """The run ``<id>`` is served on ``<home>/control/<id>.sock``."""
    assert tmp_path / "control" / f"{RUN}.sock" == control.socket_path(RUN, tmp_path)


def test_no_control_directory_means_no_served_runs(tmp_path: Path) -> None:
    """A home without a control directory serves no run."""
    assert [] == control.served_runs(tmp_path)


def test_a_home_holding_control_characters_is_named_escaped(tmp_path: Path) -> None:
    """``TASKDAEMON_HOME`` may hold any byte: the error naming its control folder wrote an
    escape sequence and a carriage return raw to whoever read it. They are shown escaped."""
    home = tmp_path / "h\x1b[31mX\rY"
    with pytest.raises(RunNotFoundError) as caught:
        send_request(RUN, {"op": "status"}, home=home)
    shown = str(caught.value)
    assert (True, False, False) == (
        "h\\x1b[31mX\\x0dY/control" in shown,
        "\x1b" in shown,
        "\r" in shown,
    )


def test_served_runs_are_the_sorted_stems_of_the_sockets(tmp_path: Path) -> None:
    """Each ``*.sock`` socket listened on under the control directory names a run, sorted;
    other files do not (a file named ``*.sock`` neither: it is no socket)."""
    directory = tmp_path / "control"
    with listening(directory, "b2.sock", "a1.sock", "c3.sock.old"):
        for name in ("notes.txt", "d4.sock"):
            (directory / name).touch()
        assert ["a1", "b2"] == control.served_runs(tmp_path)


def test_a_server_serves_on_its_run_s_socket_path(home: Path) -> None:
    """``ControlServer(run_id, home=...)`` takes the run's socket path under that home."""
    assert control.socket_path(RUN, home) == ControlServer(RUN, Target(), home=home).path


# -- starting and closing ----------------------------------------------------------------------


async def test_start_creates_a_private_home_control_directory_and_socket(home: Path) -> None:
    """A home that does not exist yet (its parent neither) is created 0700, as is its
    control directory, and the socket is 0600: no other user reaches the run."""
    new_home = home / "a" / "b"
    async with ControlServer(RUN, Target(), home=new_home) as server:
        modes = [
            stat.S_IMODE(path.stat().st_mode)
            for path in (new_home, new_home / "control", server.path)
        ]
    assert [0o700, 0o700, 0o600] == modes


async def test_the_socket_is_never_at_its_path_before_it_is_private(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The socket is made 0600 before it appears at its path (bound elsewhere, then renamed),
    so no one can find it there with the umask's mode, even for a moment; it leaves nothing
    else in the control directory."""
    server = ControlServer(RUN, Target(), home=home)
    seen_at_chmod: list[bool] = []
    chmod = os.chmod

    def watched(path: Any, mode: int) -> None:
        seen_at_chmod.append(server.path.exists())
        chmod(path, mode)

    monkeypatch.setattr(os, "chmod", watched)
    async with server:
        listed = sorted(p.name for p in server.path.parent.iterdir())
        answer = await _ask(server, {"op": "status"})
    assert ([False], [f"{RUN}.sock"], True) == (seen_at_chmod, listed, answer["ok"])


async def test_a_server_starts_again_where_an_earlier_one_served(home: Path) -> None:
    """The control directory an earlier run left is reused, and its socket is served."""
    async with ControlServer(RUN, Target(), home=home):
        pass
    async with ControlServer(RUN, Target(), status=lambda: {"n": 2}, home=home) as server:
        answer = await _ask(server, {"op": "status"})
    assert {"ok": True, "run_id": RUN, "status": {"n": 2}} == answer


def _run_id_for_path_length(home: Path, length: int) -> str:
    """A run id whose socket path under ``home`` is ``length`` bytes long."""
    return "r" * (length - len(os.fsencode(control.socket_path("", home).absolute())))


async def test_a_socket_path_of_107_bytes_is_served(home: Path) -> None:
    """107 bytes is the longest path a Unix socket takes on Linux: it is served."""
    run_id = _run_id_for_path_length(home, 107)
    async with ControlServer(run_id, Target(), home=home) as server:
        answer = await _ask(server, {"op": "cancel"})
    assert {"ok": True} == answer


async def test_a_socket_path_of_108_bytes_is_refused_in_one_line(home: Path) -> None:
    """A longer path is refused before binding, naming the path and the way out."""
    run_id = _run_id_for_path_length(home, 108)
    server = ControlServer(run_id, Target(), home=home)
    with pytest.raises(PipelineError, match="too long") as refused:
        await server.start()
    expected = (
        f"control socket path too long ({server.path.absolute()}): "
        "set TASKDAEMON_HOME to a shorter directory"
    )
    assert expected == str(refused.value)


async def test_closing_after_the_socket_was_removed_is_quiet(home: Path) -> None:
    """A socket file someone else removed is no error when the server closes."""
    server = ControlServer(RUN, Target(), home=home)
    await server.start()
    server.path.unlink()
    await server.aclose()
    assert not server.path.exists()


async def test_closing_does_not_wait_for_a_client_that_stays_connected(home: Path) -> None:
    """A client that keeps its connection open does not hold the run's exit: ``aclose``
    returns (after its grace period) while the client is still connected."""
    server = ControlServer(RUN, Target(), home=home)
    await server.start()
    reader, writer = await asyncio.open_unix_connection(str(server.path))
    writer.write(b'{"op": "status"}\n')
    await reader.readline()
    await asyncio.wait_for(server.aclose(), timeout=30)
    socket_left = server.path.exists()
    writer.close()
    await writer.wait_closed()
    assert not socket_left


async def test_closing_waits_for_a_departed_client_s_connection_to_end(home: Path) -> None:
    """A connection whose client has just left is finished by ``aclose``: no task of the
    server is left pending for the event loop to cancel at exit."""
    server = ControlServer(RUN, Target(), home=home)
    await server.start()
    reader, writer = await asyncio.open_unix_connection(str(server.path))
    writer.write(b'{"op": "status"}\n')
    await reader.readline()
    writer.close()
    await writer.wait_closed()
    await server.aclose()
    pending = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
    assert [] == pending


def test_closing_mid_request_ends_its_connection_quietly(home: Path) -> None:
    """A run that ends while a request is in progress (a debugger's ``wait``) ends its
    connection in ``aclose``: nothing is left for the loop's end to cancel, which Python 3.11's
    stream server reported as an "Exception in callback" with a traceback."""
    reported: list[str] = []

    async def run() -> None:
        asyncio.get_running_loop().set_exception_handler(
            lambda loop, context: reported.append(context["message"])
        )
        held = asyncio.Event()

        async def waits(request: dict[str, Any]) -> dict[str, Any]:
            held.set()
            await asyncio.Event().wait()  # a pause that never comes
            return {"ok": True}

        server = ControlServer(RUN, Target(), home=home, extra_ops={"debug": waits})
        await server.start()
        _, writer = await asyncio.open_unix_connection(str(server.path))
        writer.write(b'{"op": "debug", "action": "wait"}\n')
        await held.wait()
        await server.aclose()
        writer.close()
        await writer.wait_closed()

    asyncio.run(run())
    assert [] == reported


# -- the requests ------------------------------------------------------------------------------


async def test_a_request_that_is_no_object_is_answered_in_one_line(home: Path) -> None:
    """A JSON value other than an object is refused, naming what a request is."""
    async with ControlServer(RUN, Target(), home=home) as server:
        answer = await _ask(server, ["op", "cancel"])
    assert {"ok": False, "error": "a request is a JSON object with an 'op'"} == answer


@pytest.mark.parametrize("op", ["approve", "reject"])
async def test_an_approval_without_a_stage_name_is_refused(home: Path, op: str) -> None:
    """``approve`` or ``reject`` with a stage that is not a name (a number) is refused, and
    nothing reaches the run."""
    target = Target()
    async with ControlServer(RUN, target, home=home) as server:
        answer = await _ask(server, {"op": op, "stage": 5})
    assert ({"ok": False, "error": f"{op} needs a 'stage'"}, []) == (answer, target.calls)


async def test_a_publish_without_a_type_name_is_refused(home: Path) -> None:
    """``publish`` with a type that is not a name (a number) is refused, and nothing is
    published."""
    target = Target()
    async with ControlServer(RUN, target, home=home) as server:
        answer = await _ask(server, {"op": "publish", "type": 5, "payload": {}})
    assert ({"ok": False, "error": "publish needs a 'type'"}, []) == (answer, target.calls)


async def test_a_publish_without_a_payload_publishes_an_empty_one(home: Path) -> None:
    """The payload is optional: the event is published with an empty mapping."""
    target = Target()
    async with ControlServer(RUN, target, home=home) as server:
        answer = await _ask(server, {"op": "publish", "type": "spec.ready"})
    assert ({"ok": True}, [("publish", "spec.ready", {})]) == (answer, target.calls)


async def test_a_request_line_of_half_a_mebibyte_is_answered(home: Path) -> None:
    """A request line up to 1 MiB is read (asyncio's default limit is 64 KiB): a large
    payload is published."""
    target = Target()
    payload = {"text": "x" * (512 * 1024)}
    async with ControlServer(RUN, target, home=home) as server:
        answer = await _ask(server, {"op": "publish", "type": "big", "payload": payload})
    assert ({"ok": True}, [("publish", "big", payload)]) == (answer, target.calls)


async def test_a_refusal_without_a_message_is_named_by_its_type(home: Path) -> None:
    """When the run refuses with an exception that has no message, the error is its type."""
    async with ControlServer(RUN, Target(refusal=RuntimeError()), home=home) as server:
        answer = await _ask(server, {"op": "cancel"})
    assert {"ok": False, "error": "RuntimeError"} == answer


async def test_an_extra_op_answers_with_the_whole_request(home: Path) -> None:
    """An op given in ``extra_ops`` receives the request mapping and its answer is sent."""

    async def echo(request: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "seen": request}

    request = {"op": "debug", "action": "state"}
    async with ControlServer(RUN, Target(), home=home, extra_ops={"debug": echo}) as server:
        answer = await _ask(server, request)
    assert {"ok": True, "seen": request} == answer


async def test_a_status_value_json_cannot_write_is_sent_as_text(home: Path) -> None:
    """A status holding a value JSON has no type for (a path) is answered with its text."""
    status = {"home": Path("/x/y")}
    async with ControlServer(RUN, Target(), status=lambda: status, home=home) as server:
        answer = await _ask(server, {"op": "status"})
    assert {"ok": True, "run_id": RUN, "status": {"home": "/x/y"}} == answer


# -- the client ----------------------------------------------------------------------------------


async def test_approve_reaches_the_run_with_the_approver(home: Path) -> None:
    """``control.approve`` grants the stage's approval in the serving process, by name."""
    target = Target()
    async with ControlServer(RUN, target, home=home):
        await _in_thread(control.approve, RUN, "release", by="ann", home=str(home))
    assert [("approve", "release", "ann")] == target.calls


async def test_reject_reaches_the_run_with_the_approver(home: Path) -> None:
    """``control.reject`` refuses the stage's approval in the serving process, by name."""
    target = Target()
    async with ControlServer(RUN, target, home=home):
        await _in_thread(control.reject, RUN, "release", by="bob", home=str(home))
    assert [("reject", "release", "bob")] == target.calls


@pytest.mark.parametrize("op", ["approve", "reject"])
async def test_an_approval_without_an_approver_is_by_the_control_socket(
    home: Path, op: str
) -> None:
    """``control.approve`` and ``control.reject`` without ``by`` name no one: the run records
    the approval as given by the control socket."""
    target = Target()
    async with ControlServer(RUN, target, home=home):
        await _in_thread(getattr(control, op), RUN, "release", home=str(home))
    assert [(op, "release", "control socket")] == target.calls


def _audit(caplog: pytest.LogCaptureFixture) -> list[tuple[str, dict[str, Any]]]:
    """The audit records logged: each message and its fields."""
    fields = ("run_id", "stage", "by", "reason", "comment")
    return [
        (r.getMessage(), {name: getattr(r, name) for name in fields if hasattr(r, name)})
        for r in caplog.records
        if r.name == "taskdaemon.audit"
    ]


@pytest.mark.parametrize(
    ("comment", "message"),
    [
        ("ok", "approval of release granted by ann (ok)"),
        ("", "approval of release granted by ann"),
        ("x" * 4096, f"approval of release granted by ann ({'x' * 4096})"),
    ],
)
async def test_an_approval_is_audited_with_its_comment(
    home: Path, caplog: pytest.LogCaptureFixture, comment: str, message: str
) -> None:
    """A granted approval is logged as the HTTP API logs it: message and fields; no comment
    leaves no empty brackets, and a comment of the most characters allowed is taken whole."""
    caplog.set_level("INFO", logger="taskdaemon.audit")
    async with ControlServer(RUN, Target(), home=home):
        await _in_thread(control.approve, RUN, "release", by="ann", comment=comment, home=str(home))
    fields = {"run_id": RUN, "stage": "release", "by": "ann", "comment": comment}
    assert [(message, fields)] == _audit(caplog)


@pytest.mark.parametrize(
    ("reason", "message"),
    [
        ("red", "approval of release rejected by bob: red"),
        ("", "approval of release rejected by bob: no reason given"),
    ],
)
async def test_a_rejection_is_audited_with_its_reason_and_comment(
    home: Path, caplog: pytest.LogCaptureFixture, reason: str, message: str
) -> None:
    """A rejection is logged with its reason in the message (or that none was given), reason
    and comment as fields."""
    caplog.set_level("INFO", logger="taskdaemon.audit")
    async with ControlServer(RUN, Target(), home=home):
        await _in_thread(
            control.reject, RUN, "release", by="bob", reason=reason, comment="c", home=str(home)
        )
    fields = {"run_id": RUN, "stage": "release", "by": "bob", "reason": reason, "comment": "c"}
    assert [(message, fields)] == _audit(caplog)


class _Refusing(Target):
    def approve(self, stage: str, *, by: str = "") -> None:
        raise PipelineError(f"stage {stage} is not waiting for an approval")


@pytest.mark.parametrize(
    ("target", "request_", "error"),
    [
        (
            _Refusing(),
            {"op": "approve", "stage": "s", "comment": "c"},
            "stage s is not waiting for an approval",
        ),
        (Target(), {"op": "approve", "stage": "s", "reason": "r"}, "a reason is for reject only"),
        (Target(), {"op": "reject", "stage": "s", "reason": 3}, "reason must be a string"),
        (
            Target(),
            {"op": "approve", "stage": "s", "comment": "x" * 4097},
            "comment is longer than 4096 characters",
        ),
    ],
)
async def test_a_refused_decision_is_not_audited(
    home: Path,
    caplog: pytest.LogCaptureFixture,
    target: Target,
    request_: dict[str, Any],
    error: str,
) -> None:
    """A decision the run refused, or a bad comment or reason, is answered in one line and
    logs no audit record (a bad note does not reach the run at all)."""
    caplog.set_level("INFO", logger="taskdaemon.audit")
    async with ControlServer(RUN, target, home=home) as server:
        answer = await _ask(server, request_)
    assert ({"ok": False, "error": error}, [], []) == (answer, target.calls, _audit(caplog))


async def test_publish_reaches_the_run_with_its_payload(home: Path) -> None:
    """``control.publish`` publishes the event, type and payload, in the serving process."""
    target = Target()
    async with ControlServer(RUN, target, home=home):
        await _in_thread(control.publish, RUN, "spec.ready", {"n": 1}, home=str(home))
    assert [("publish", "spec.ready", {"n": 1})] == target.calls


async def test_cancel_reaches_the_run(home: Path) -> None:
    """``control.cancel`` cancels the run in the serving process, for whom it names."""
    target = Target()
    async with ControlServer(RUN, target, home=home):
        await _in_thread(control.cancel, RUN, by="alice", home=str(home))
    assert [("cancel", "alice")] == target.calls


async def test_status_is_the_mapping_the_run_reports(home: Path) -> None:
    """``control.status`` returns the serving process's status mapping itself."""
    async with ControlServer(RUN, Target(), status=lambda: {"stages": 3}, home=home):
        status = await _in_thread(control.status, RUN, home=str(home))
    assert {"stages": 3} == status


async def test_a_unique_prefix_names_the_served_run(home: Path) -> None:
    """A prefix that only one served run starts with reaches that run."""
    (home / "control").mkdir()
    (home / "control" / "0123.sock").touch()  # another run (stale): no prefix match
    target = Target()
    async with ControlServer(RUN, target, home=home):
        await _in_thread(control.cancel, "fff", home=str(home))
    assert [("cancel", "control socket")] == target.calls


async def test_an_exact_id_wins_over_longer_ids_it_prefixes(home: Path) -> None:
    """A run id that is also the prefix of another served run names itself."""
    (home / "control").mkdir()
    (home / "control" / f"{RUN}0.sock").touch()
    target = Target()
    async with ControlServer(RUN, target, home=home):
        await _in_thread(control.cancel, RUN, home=str(home))
    assert [("cancel", "control socket")] == target.calls


def test_an_ambiguous_prefix_names_every_run_it_matches(home: Path) -> None:
    """A prefix two served runs start with is refused, listing both."""
    with (
        listening(home / "control", "ab2.sock", "ab1.sock", "cd3.sock"),
        pytest.raises(RunNotFoundError, match="ambiguous") as refused,
    ):
        send_request("ab", {"op": "cancel"}, home=home)
    assert "run id 'ab' is ambiguous here: ab1, ab2" == str(refused.value)


def test_a_run_no_socket_names_is_refused_naming_the_directory(home: Path) -> None:
    """A run id no served run starts with is refused, naming where sockets are looked for."""
    (home / "control").mkdir()
    (home / "control" / "ab1.sock").touch()
    with pytest.raises(RunNotFoundError, match="no run") as refused:
        send_request("cd", {"op": "cancel"}, home=home)
    expected = (
        f"no run 'cd' is served here (no socket under {home / 'control'}): is its "
        "'taskdaemon run' (or 'serve') still running, with the same TASKDAEMON_HOME?"
    )
    assert expected == str(refused.value)


def test_a_stale_socket_is_refused_as_not_served_any_more(home: Path) -> None:
    """A socket file no process listens on any more (a crashed run) is reported as such."""
    (home / "control").mkdir()
    stale = home / "control" / f"{RUN}.sock"
    with socket.socket(socket.AF_UNIX) as listener:
        listener.bind(str(stale))
    with pytest.raises(RunNotFoundError, match="not served") as refused:
        send_request(RUN, {"op": "cancel"}, home=home)
    expected = (
        f"run '{RUN}' is not served any more (stale socket {stale}): "
        "its 'taskdaemon run' (or 'serve') process has ended"
    )
    assert expected == str(refused.value)


async def test_a_refused_request_raises_the_run_s_error(home: Path) -> None:
    """An answer ``{"ok": false, "error": ...}`` is a PipelineError with that text."""
    async with ControlServer(RUN, Target(), home=home):
        with pytest.raises(PipelineError, match="needs") as refused:
            await _in_thread(send_request, RUN, {"op": "approve"}, home=home)
    assert "approve needs a 'stage'" == str(refused.value)


async def test_a_refusal_without_an_error_is_worded(home: Path) -> None:
    """An answer ``{"ok": false}`` without an error is a PipelineError all the same."""
    async with _answering(control.socket_path(RUN, home), b'{"ok": false}\n'):
        with pytest.raises(PipelineError, match="refused") as refused:
            await _in_thread(send_request, RUN, {"op": "cancel"}, home=home)
    assert "request refused" == str(refused.value)


async def test_a_run_that_closes_without_answering_is_one_line(home: Path) -> None:
    """A connection closed before any answer is a PipelineError naming the run."""
    async with _answering(control.socket_path(RUN, home), b""):
        with pytest.raises(PipelineError, match="without") as refused:
            await _in_thread(send_request, RUN, {"op": "cancel"}, home=home)
    assert f"run '{RUN}' closed the connection without answering" == str(refused.value)


async def test_a_run_that_never_answers_is_left_after_the_timeout(home: Path) -> None:
    """A run that reads the request and never answers is given up once the timeout has
    passed, with a one-line PipelineError (``debug`` and ``dump`` print it, no traceback)."""
    async with _answering(control.socket_path(RUN, home), None):
        with pytest.raises(PipelineError, match="did not answer") as refused:
            await _in_thread(send_request, RUN, {"op": "cancel"}, home=home, timeout=0.2)
    assert f"run '{RUN}' did not answer within 0.2 s" == str(refused.value)


async def test_an_answer_nested_past_the_decoder_is_one_line(home: Path) -> None:
    """An answer nested deeper than ``json`` decodes is the same one-line PipelineError as
    any answer that is not a JSON object, not a RecursionError."""
    async with _answering(control.socket_path(RUN, home), b"[" * 100_000 + b"\n"):
        with pytest.raises(PipelineError, match="JSON object"):
            await _in_thread(send_request, RUN, {"op": "cancel"}, home=home)


async def test_an_answer_over_a_mebibyte_is_refused_unread(home: Path) -> None:
    """An answer line past 1 MiB (a stage's large outputs in ``debug inspect``) is a one-line
    PipelineError, not a JSON error from its first mebibyte, and the rest is never read."""
    answer = json.dumps({"ok": True, "text": "x" * (2 << 20)}).encode() + b"\n"
    async with _answering(control.socket_path(RUN, home), answer):
        with pytest.raises(PipelineError, match="1 MiB") as refused:
            await _in_thread(send_request, RUN, {"op": "status"}, home=home)
    assert f"run '{RUN}' answered with more than 1 MiB: not read" == str(refused.value)


async def test_an_answer_just_under_a_mebibyte_is_read(home: Path) -> None:
    """An answer of exactly 1 MiB, its line feed included, is read whole."""
    empty = json.dumps({"ok": True, "text": ""}).encode()
    text = "x" * ((1 << 20) - len(empty) - 1)
    answer = json.dumps({"ok": True, "text": text}).encode() + b"\n"
    async with _answering(control.socket_path(RUN, home), answer):
        response = await _in_thread(send_request, RUN, {"op": "status"}, home=home)
    assert {"ok": True, "text": text} == response


@pytest.mark.parametrize("answer", [b"not json\n", b'["ok"]\n', b'{"ok": tr'])
async def test_an_answer_that_is_no_json_object_is_one_line(home: Path, answer: bytes) -> None:
    """Something other than a JSON object (another program on the socket, an answer cut
    short) is a one-line PipelineError naming the run."""
    async with _answering(control.socket_path(RUN, home), answer):
        with pytest.raises(PipelineError, match="JSON object") as refused:
            await _in_thread(send_request, RUN, {"op": "status"}, home=home)
    assert f"run '{RUN}' answered with something other than a JSON object" == str(refused.value)
