"""Stale control sockets: a run whose process was killed (``kill -9``) leaves its socket
behind. Listing served runs (``served_runs``, which every command naming a run by a prefix
uses) tells it from a live one by a refused connection, skips it and removes it when it is
ours; a live run's socket, a symlink and anything in a directory that is not private are
never removed.
"""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from typing import Any

import pytest

from cli_faults_support import in_background, listening, slow_pipeline, wait_for_pids
from cli_support import taskdaemon, wait_until_stored
from taskdaemon.pipeline import control
from taskdaemon.pipeline.control import ControlServer, send_request
from taskdaemon.pipeline.errors import RunNotFoundError


def _stale(path: Path) -> Path:
    """A socket file no process listens on (bound, then closed: what ``kill -9`` leaves)."""
    with socket.socket(socket.AF_UNIX) as listener:
        listener.bind(str(path))
    return path


class _Target:
    """A run handle stand-in that records the cancels reaching it."""

    def __init__(self) -> None:
        self.cancelled = 0

    def approve(self, stage: str, *, by: str = "") -> None: ...

    def reject(self, stage: str, *, by: str = "") -> None: ...

    def publish(self, event_type: str, payload: Any) -> None: ...

    def cancel(self, *, by: str = "") -> None:
        self.cancelled += 1


async def test_a_stale_socket_is_not_listed_and_is_removed(home: Path) -> None:
    """Beside a live run's socket, a stale one is not listed and is gone after the listing;
    a prefix both share names the live run (it was "ambiguous" before)."""
    live_id, stale_id = "ab1" + "0" * 29, "ab2" + "0" * 29
    target = _Target()
    async with ControlServer(live_id, target, home=home) as server:
        stale = _stale(home / "control" / f"{stale_id}.sock")
        assert [live_id] == await asyncio.to_thread(control.served_runs, home)
        assert (not stale.exists(), server.path.exists()) == (True, True)
        _stale(stale)
        await asyncio.to_thread(send_request, "ab", {"op": "cancel"}, home=home)
    assert (1, False) == (target.cancelled, stale.exists())


def test_a_stale_socket_named_exactly_is_refused_and_removed(home: Path) -> None:
    """A request to a run by its whole id whose socket is stale says the run is not served
    any more, and removes the socket: the next listing does not meet it."""
    (home / "control").mkdir(mode=0o700)
    stale = _stale(home / "control" / f"{'a' * 32}.sock")
    with pytest.raises(RunNotFoundError, match="is not served any more"):
        send_request("a" * 32, {"op": "status"}, home=home)
    assert not stale.exists()


def test_a_symlink_is_neither_listed_nor_followed_nor_removed(home: Path, tmp_path: Path) -> None:
    """A ``*.sock`` symlink in the control directory, to a live socket elsewhere, is no run
    served here: not listed, not connected to, left in place."""
    (home / "control").mkdir(mode=0o700)
    link = home / "control" / "ab1.sock"
    with listening(tmp_path / "elsewhere", "x.sock") as (target,):
        link.symlink_to(target)
        assert [] == control.served_runs(home)
        with pytest.raises(RunNotFoundError, match="no run 'ab1' is served here"):
            send_request("ab1", {"op": "status"}, home=home)
    assert link.is_symlink()


def test_a_stale_socket_in_a_shared_directory_is_left_alone(home: Path) -> None:
    """In a control directory others may write to (not 0700), a stale socket is skipped but
    not removed: only a private directory of ours is cleaned."""
    directory = home / "control"
    directory.mkdir()
    directory.chmod(0o755)
    stale = _stale(directory / "ab2.sock")
    assert [] == control.served_runs(home)
    assert stale.exists()


@pytest.mark.slow
def test_a_killed_run_s_socket_is_told_from_a_live_run_s(home: Path, tmp_path: Path) -> None:
    """A real run killed with ``kill -9`` beside a live one: the listing shows the live run
    only and removes the killed run's socket; the live run still answers by its id."""
    path, pids = slow_pipeline(tmp_path)
    with in_background(home) as start:
        started = []
        for count in (1, 2):
            started.append(start("run", str(path)))
            started[-1].wait_for_line("wait                     running")
            wait_for_pids(pids, count)
        killed, live = started
        wait_until_stored(home, killed.run_id, "wait")
        killed.process.kill()  # taskdaemon alone: its group watchdog ends the stage's processes
        killed.process.wait(60)
        socket_file = home / "control" / f"{killed.run_id}.sock"
        assert socket_file.exists()  # what the crash left
        assert [live.run_id] == control.served_runs(home)
        assert not socket_file.exists()
        assert (home / "control" / f"{live.run_id}.sock").exists()
        answered = taskdaemon(home, "status", live.run_id)
        assert 0 == answered.returncode, answered.stderr
        gone = taskdaemon(home, "status", killed.run_id)
        assert 3 == gone.returncode, gone.stderr
