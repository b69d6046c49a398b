"""``taskdaemon serve`` says where to sign in: the token to a terminal only, never to a log."""

from __future__ import annotations

import io
import logging
import os
import pty
import re
import select
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from cli_support import without_settings
from taskdaemon.pipeline.cli.sign_in import announce_sign_in, publish_sign_in
from taskdaemon.pipeline.http_security import ApiAuth
from taskdaemon.pipeline.redaction import redact_text

_URL = re.compile(r"API: (http://127\.0\.0\.1:\d+)/ \(token in (\S+)\)")
_UI_URL = re.compile(r"taskdaemon ui: (http://127\.0\.0\.1:\d+)/ \(token in (\S+)\)")
#: Up to the line's end: a read of the terminal can end inside the token, and a match of the
#: part read said a token the file did not hold.
_SIGN_IN = re.compile(r"sign in: (http://127\.0\.0\.1:\d+)/\?token=([0-9a-f]+)\r?\n")


def _environment(home: Path) -> dict[str, str]:
    return without_settings(TASKDAEMON_HOME=str(home), OTEL_METRICS_EXPORTER="none")


def _serve(
    home: Path, stderr: int, command: str = "serve", **variables: str
) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "taskdaemon.pipeline.cli", command, "--port", "0"],
        env={**_environment(home), **variables},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=stderr,
    )


def _read_until(fd: int, pattern: re.Pattern[str], seconds: float = 60) -> str:
    """What ``fd`` gave until ``pattern`` matched (AssertionError with all of it if not)."""
    seen = b""
    deadline = time.monotonic() + seconds
    while not pattern.search(seen.decode(errors="replace")):
        left = deadline - time.monotonic()
        ready, _, _ = select.select([fd], [], [], max(left, 0))
        chunk = os.read(fd, 4096) if ready else b""
        if not chunk:
            raise AssertionError(f"no {pattern.pattern!r} in:\n{seen.decode(errors='replace')}")
        seen += chunk
    return seen.decode(errors="replace")


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGINT)
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def test_a_configured_token_is_named_in_a_line_the_logs_keep_whole(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """With TASKDAEMON_API_TOKEN configured, the line naming where the token is reads the same
    after the logs' redaction: it holds no secret, so nothing in it looks hidden."""
    with caplog.at_level(logging.INFO, logger="qa21.sign_in"):
        announce_sign_in(logging.getLogger("qa21.sign_in"), "API", "http://127.0.0.1:1", None, None)
    (message,) = [record.getMessage() for record in caplog.records]
    assert redact_text(message) == message


class _HangUpOnRecord(logging.Handler):
    """Closes the terminal's other end as the record is logged: a hang-up as the server's
    line is read (the test that hangs up ``serve`` on reading it met this)."""

    def __init__(self, primary: int) -> None:
        super().__init__()
        self.primary = primary
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())
        os.close(self.primary)


def test_a_terminal_that_hangs_up_at_the_log_line_does_not_fail_the_announce() -> None:
    """The URL with the token goes to a terminal that hung up as the line naming the token's
    file was read: nothing raises (the write's EIO was the server's exit 1)."""
    primary, secondary = pty.openpty()
    log = logging.getLogger("qa41.sign_in")
    hang_up = _HangUpOnRecord(primary)
    log.addHandler(hang_up)
    log.setLevel(logging.INFO)
    try:
        # Unbuffered, as stderr writes through: a failed write keeps nothing to flush later.
        with io.TextIOWrapper(io.FileIO(secondary, "w"), write_through=True) as terminal:
            announce_sign_in(
                log, "API", "http://127.0.0.1:1", "ab" * 16, Path("t"), stream=terminal
            )
            with pytest.raises(OSError, match="Input/output error"):  # the terminal is gone
                os.write(secondary, b"\n")
    finally:
        log.removeHandler(hang_up)
        log.setLevel(logging.NOTSET)
    assert ["API: http://127.0.0.1:1/ (token in t)"] == hang_up.messages


def test_a_token_neither_in_a_file_nor_on_a_terminal_is_said_to_be_nowhere(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A token that could not be written to its file (a home this user may not write), with
    stderr captured, is said to be shown nowhere, with the way out; never "on the terminal"
    of a server that has none."""
    captured = io.StringIO()
    with caplog.at_level(logging.INFO, logger="user47.sign_in"):
        announce_sign_in(
            logging.getLogger("user47.sign_in"),
            "API",
            "http://127.0.0.1:1",
            "ab" * 16,
            None,
            stream=captured,
        )
    expected = [
        "API: http://127.0.0.1:1/ (token shown nowhere: set TASKDAEMON_API_TOKEN to sign in)"
    ]
    assert (expected, "") == (caplog.messages, captured.getvalue())


@pytest.mark.slow
def test_a_terminal_gets_the_sign_in_url_with_the_token(tmp_path: Path) -> None:
    """On a terminal the server shows the URL with its generated token (the one in the 0600
    token file), beside a log line naming only the file."""
    controller, terminal = pty.openpty()
    process = _serve(tmp_path / "home", terminal)
    os.close(terminal)
    try:
        text = _read_until(controller, _SIGN_IN)
        token_file = Path(_URL.search(text).group(2))  # type: ignore[union-attr]
        stored = token_file.read_text().strip()
        mode = token_file.stat().st_mode & 0o777
    finally:
        _stop(process)
        os.close(controller)
    shown = _SIGN_IN.search(text)
    assert shown is not None
    assert (shown.group(2), mode, len(stored)) == (stored, 0o600, 48)


@pytest.mark.slow
@pytest.mark.parametrize("command", ["serve", "ui"])
def test_behind_a_proxy_the_sign_in_names_the_public_url(tmp_path: Path, command: str) -> None:
    """With ``TASKDAEMON_API_PUBLIC_URL`` (a proxy ending TLS in front of the server), the
    sign-in showed ``http://127.0.0.1:PORT/``, which a browser elsewhere cannot open. The line
    and the sign-in URL now name the public address; the line keeps the local one after it."""
    controller, terminal = pty.openpty()
    public = "https://tasks.example.org"
    process = _serve(tmp_path / "home", terminal, command, TASKDAEMON_API_PUBLIC_URL=public)
    os.close(terminal)
    sign_in = re.compile(r"sign in: (\S+)/\?token=([0-9a-f]+)\r?\n")
    try:
        text = _read_until(controller, sign_in)
    finally:
        _stop(process)
        os.close(controller)
    label = "API" if command == "serve" else "taskdaemon ui"
    line = re.search(
        rf"{label}: (\S+)/ \(listening on http://127\.0\.0\.1:(\d+)/; token in (\S+)\)", text
    )
    shown = sign_in.search(text)
    assert line is not None, text
    assert shown is not None
    token_file = Path(line.group(3))
    assert (line.group(1), shown.group(1), token_file.name.endswith(f".{line.group(2)}")) == (
        public,
        public,
        True,
    ), text


@pytest.mark.slow
def test_captured_stderr_names_the_token_file_but_never_holds_the_token(tmp_path: Path) -> None:
    """With stderr captured (a pipe, as in CI or a service manager) the token is nowhere in
    it, and the log line still says where to find it."""
    read, write = os.pipe()
    process = _serve(tmp_path / "home", write)
    os.close(write)
    try:
        text = _read_until(read, _URL)
        token = Path(_URL.search(text).group(2)).read_text().strip()  # type: ignore[union-attr]
    finally:
        _stop(process)
        with os.fdopen(read, "rb") as rest:
            text += rest.read().decode(errors="replace")
    assert (token in text, "sign in:" in text, len(token)) == (False, False, 48)


@pytest.mark.slow
def test_a_ui_beside_a_serve_leaves_the_serve_token_file_alone(tmp_path: Path) -> None:
    """``ui`` started in the home of a running ``serve`` keeps its generated token in a file
    of its own: the ``api-token`` file still holds serve's token, while ui runs and after."""
    home = tmp_path / "home"
    serve_read, serve_write = os.pipe()
    serve = _serve(home, serve_write)
    os.close(serve_write)
    try:
        token_file = Path(_URL.search(_read_until(serve_read, _URL)).group(2))  # type: ignore[union-attr]
        serve_token = token_file.read_text()
        ui_read, ui_write = os.pipe()
        ui = _serve(home, ui_write, "ui")
        os.close(ui_write)
        try:
            ui_file = Path(_UI_URL.search(_read_until(ui_read, _UI_URL)).group(2))  # type: ignore[union-attr]
            while_both = token_file.read_text()
        finally:
            _stop(ui)
            os.close(ui_read)
        after_ui = token_file.read_text() if token_file.exists() else None
    finally:
        _stop(serve)
        os.close(serve_read)
    expected = (serve_token, serve_token, True)
    assert expected == (while_both, after_ui, ui_file != token_file)


def _started(home: Path) -> tuple[subprocess.Popen[bytes], int, str, Path]:
    """A ``serve`` in ``home`` once it has said where its token is: the process, the read end
    of its stderr, its URL and its token file."""
    read, write = os.pipe()
    process = _serve(home, write)
    os.close(write)
    found = _URL.search(_read_until(read, _URL))
    assert found is not None
    return process, read, found.group(1), Path(found.group(2))


def _status(url: str, token_file: Path) -> int:
    """The status of ``GET url/api/runs`` with the token the file holds, as ``curl -H
    "Authorization: Bearer $(cat FILE)"`` sends it."""
    request = urllib.request.Request(
        f"{url}/api/runs", headers={"Authorization": f"Bearer {token_file.read_text().strip()}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code


@pytest.mark.slow
def test_two_servers_in_one_home_each_take_the_token_in_their_own_file(tmp_path: Path) -> None:
    """Two ``serve`` in one home each write a token file of their own, named in their log
    line, and each server accepts the token its file holds, both at once."""
    home = tmp_path / "home"
    first, first_read, first_url, first_file = _started(home)
    try:
        second, second_read, second_url, second_file = _started(home)
        try:
            statuses = [_status(first_url, first_file), _status(second_url, second_file)]
        finally:
            _stop(second)
            os.close(second_read)
    finally:
        _stop(first)
        os.close(first_read)
    assert ([200, 200], True) == (statuses, first_file != second_file)


@pytest.mark.slow
def test_a_second_server_leaves_api_token_to_the_first(tmp_path: Path) -> None:
    """``api-token`` holds the first server's token while a second one runs beside it and
    after the second has stopped."""
    home = tmp_path / "home"
    first, first_read, _, first_file = _started(home)
    try:
        second, second_read, _, _ = _started(home)
        try:
            while_both = (home / "api-token").read_text()
        finally:
            _stop(second)
            os.close(second_read)
        after_second = (home / "api-token").read_text()
        first_token = first_file.read_text()
    finally:
        _stop(first)
        os.close(first_read)
    assert [first_token, first_token] == [while_both, after_second]


@pytest.mark.slow
def test_a_stopped_server_removes_its_own_token_file_only(tmp_path: Path) -> None:
    """When one of two servers stops, its token file goes; the other's, and ``api-token``,
    stay until that one stops too."""
    home = tmp_path / "home"
    first, first_read, _, first_file = _started(home)
    try:
        second, second_read, _, _ = _started(home)
        _stop(second)
        os.close(second_read)
        left = sorted(path.name for path in home.glob("api-token*"))
    finally:
        _stop(first)
        os.close(first_read)
    after_both = sorted(path.name for path in home.glob("api-token*"))
    assert (["api-token", first_file.name], []) == (left, after_both)


@pytest.mark.slow
def test_a_killed_servers_token_files_are_not_taken_for_a_live_servers(tmp_path: Path) -> None:
    """After a server is killed (``kill -9``: nothing removed), the next server of the home
    replaces its ``api-token`` and removes its port's file."""
    home = tmp_path / "home"
    killed, killed_read, _, killed_file = _started(home)
    killed.kill()
    killed.wait(30)
    os.close(killed_read)
    left_behind = killed_file.exists()
    second, second_read, _, second_file = _started(home)
    try:
        names = sorted(path.name for path in home.glob("api-token*"))
        shared = (home / "api-token").read_text()
        token = second_file.read_text()
    finally:
        _stop(second)
        os.close(second_read)
    assert (True, ["api-token", second_file.name], token) == (left_behind, names, shared)


def test_the_token_files_reach_the_caller_before_the_sign_in_line(tmp_path: Path) -> None:
    """A stop that comes as soon as the sign-in line is logged (here: raised by the handler
    that writes it) finds the files already handed to the caller, who removes them: none is
    left behind (the cause of a server's file outliving it when a supervisor signalled it on
    reading that line)."""

    class StopAtTheLine(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            raise KeyboardInterrupt

    log = logging.getLogger("tests.sign_in.stop_at_the_line")
    handler = StopAtTheLine()
    log.addHandler(handler)
    log.propagate = False
    log.setLevel(logging.INFO)
    kept: list[object] = []
    try:
        with pytest.raises(KeyboardInterrupt):
            publish_sign_in(
                log,
                "API",
                "http://127.0.0.1:9999",
                ApiAuth.generate(),
                tmp_path,
                written=kept.append,
            )
    finally:
        log.removeHandler(handler)
        log.setLevel(logging.NOTSET)
        log.propagate = True
    written = sorted(path.name for path in tmp_path.glob("api-token*"))
    for files in kept:
        files.remove()  # type: ignore[attr-defined]
    assert (["api-token", "api-token.9999"], []) == (
        written,
        sorted(path.name for path in tmp_path.glob("api-token*")),
    )
