"""Token files of servers sharing a home: one per server, held while it runs, never another
live server's replaced, each removed by its own server, a dead server's taken for stale."""

from __future__ import annotations

import os
import resource
import signal
import stat
from pathlib import Path

import pytest

from taskdaemon.pipeline import token_files
from taskdaemon.pipeline.token_files import ServerTokenFiles, publish_token

FIRST = "first-token-0123456789abcdef"
SECOND = "second-token-0123456789abcdef"


def _crash(files: ServerTokenFiles) -> None:
    """Let go of the files as a killed server does: the lock goes, the files stay."""
    fd = files._fd
    assert fd is not None
    os.close(fd)
    files._fd = None


def test_a_server_gets_its_port_file_and_the_shared_name(tmp_path: Path) -> None:
    """The first server of a home writes its token, mode 0600, to NAME.PORT and NAME."""
    files = publish_token(tmp_path, FIRST, "api-token", 9090)
    try:
        found = {
            path.name: (stat.S_IMODE(path.stat().st_mode), path.read_text()) for path in files.paths
        }
        leftovers = sorted(path.name for path in tmp_path.iterdir())
    finally:
        files.remove()
    expected = {"api-token.9090": (0o600, f"{FIRST}\n"), "api-token": (0o600, f"{FIRST}\n")}
    assert (expected, ["api-token", "api-token.9090"]) == (found, leftovers)


def test_a_second_server_leaves_the_shared_name_to_the_live_first(tmp_path: Path) -> None:
    """A server started beside a live one gets its own NAME.PORT only; NAME keeps the first's."""
    first = publish_token(tmp_path, FIRST, "api-token", 9090)
    second = publish_token(tmp_path, SECOND, "api-token", 9092)
    try:
        seen = ([p.name for p in second.paths], (tmp_path / "api-token").read_text())
    finally:
        second.remove()
        first.remove()
    assert (["api-token.9092"], f"{FIRST}\n") == seen


def test_a_stopping_server_removes_its_own_files_only(tmp_path: Path) -> None:
    """When the second server stops, the first's NAME and NAME.PORT stay."""
    first = publish_token(tmp_path, FIRST, "api-token", 9090)
    try:
        publish_token(tmp_path, SECOND, "api-token", 9092).remove()
        left = sorted(path.name for path in tmp_path.iterdir())
    finally:
        first.remove()
    assert ["api-token", "api-token.9090"] == left


def test_a_dead_servers_shared_name_goes_to_the_next_server(tmp_path: Path) -> None:
    """NAME left behind by a server that died is stale: the next server's token replaces it."""
    _crash(publish_token(tmp_path, FIRST, "api-token", 9090))
    second = publish_token(tmp_path, SECOND, "api-token", 9092)
    try:
        shared = (tmp_path / "api-token").read_text()
    finally:
        second.remove()
    assert f"{SECOND}\n" == shared


def test_a_dead_servers_port_file_is_removed_by_the_next_server(tmp_path: Path) -> None:
    """NAME.PORT left behind by a server that died is removed when another server starts."""
    _crash(publish_token(tmp_path, FIRST, "api-token", 9090))
    second = publish_token(tmp_path, SECOND, "api-token", 9092)
    try:
        left = sorted(path.name for path in tmp_path.iterdir())
    finally:
        second.remove()
    assert ["api-token", "api-token.9092"] == left


def test_only_a_port_in_ascii_digits_names_a_stale_file(tmp_path: Path) -> None:
    """A user's ``api-token.²``, ``api-token.９０`` or ``api-token.v2`` is no server's port file:
    it is kept."""
    for suffix in ("\u00b2", "\uff19\uff10", "v2"):
        (tmp_path / f"api-token.{suffix}").write_text("mine\n")
    server = publish_token(tmp_path, SECOND, "api-token", 9092)
    try:
        left = sorted(path.name for path in tmp_path.iterdir())
    finally:
        server.remove()
    assert [
        "api-token",
        "api-token.9092",
        "api-token.v2",
        "api-token.\u00b2",
        "api-token.\uff19\uff10",
    ] == left


def test_a_file_a_later_server_took_is_not_removed(tmp_path: Path) -> None:
    """A name another server has since taken is not removed by the old owner's ``remove``."""
    first = publish_token(tmp_path, FIRST, "api-token", 9090)
    _crash(first)
    second = publish_token(tmp_path, SECOND, "api-token", 9090)
    first._fd = os.open(tmp_path, os.O_RDONLY)  # alive again, as far as remove() knows
    first.remove()
    try:
        kept = [(tmp_path / name).read_text() for name in ("api-token", "api-token.9090")]
    finally:
        second.remove()
    assert [f"{SECOND}\n", f"{SECOND}\n"] == kept


def test_a_symlink_at_the_shared_name_is_replaced_not_followed(tmp_path: Path) -> None:
    """A symlink planted at NAME is replaced by the token file; its target stays as it was."""
    target = tmp_path / "elsewhere"
    target.write_text("untouched")
    (tmp_path / "api-token").symlink_to(target)
    files = publish_token(tmp_path, FIRST, "api-token", 9090)
    try:
        seen = ((tmp_path / "api-token").is_symlink(), target.read_text())
    finally:
        files.remove()
    assert (False, "untouched") == seen


def test_token_files_are_exactly_0600_under_a_permissive_umask(tmp_path: Path) -> None:
    """With umask 0 both files are still 0600 and hold the token and a newline; no temporary
    file is left."""
    old = os.umask(0)
    try:
        files = publish_token(tmp_path / "a" / "home", FIRST, "api-token", 9090)
    finally:
        os.umask(old)
    try:
        found = [(stat.S_IMODE(p.stat().st_mode), p.read_text()) for p in files.paths]
        leftovers = sorted(p.name for p in (tmp_path / "a" / "home").iterdir())
    finally:
        files.remove()
    assert ([(0o600, f"{FIRST}\n")] * 2, ["api-token", "api-token.9090"]) == (found, leftovers)


def test_the_home_a_token_file_makes_is_private_under_a_permissive_umask(tmp_path: Path) -> None:
    """With umask 0, the home the token files are written to, and its missing parent, are made
    0700 (``taskdaemon ui`` over a remote source writes its token into a home it makes)."""
    old = os.umask(0)
    try:
        files = publish_token(tmp_path / "a" / "home", FIRST, "api-token", 9090)
    finally:
        os.umask(old)
    files.remove()
    modes = [
        stat.S_IMODE(folder.stat().st_mode) for folder in (tmp_path / "a", tmp_path / "a" / "home")
    ]
    assert [0o700, 0o700] == modes


def test_a_token_file_never_opens_an_existing_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file planted at the temporary name (here made predictable) makes the write fail:
    it is created exclusively, never opened through a symlink or truncated."""
    monkeypatch.setattr(token_files.secrets, "token_hex", lambda n=None: "feedface")
    target = tmp_path / "elsewhere"
    target.write_text("untouched")
    (tmp_path / f".api-token.{os.getpid()}.feedface").symlink_to(target)
    with pytest.raises(FileExistsError):
        publish_token(tmp_path, FIRST, "api-token", 9090)
    assert (target.read_text(), (tmp_path / "api-token").exists()) == ("untouched", False)


def test_a_symlink_at_the_shared_name_to_a_held_file_is_replaced(tmp_path: Path) -> None:
    """A symlink at NAME pointing to a live server's file is not taken for a live server (it
    is not followed): the next server replaces it; the file it pointed to keeps its token."""
    first = publish_token(tmp_path, FIRST, "api-token", 9090)
    (tmp_path / "api-token").unlink()
    (tmp_path / "api-token").symlink_to("api-token.9090")
    second = publish_token(tmp_path, SECOND, "api-token", 9092)
    try:
        seen = (
            [p.name for p in second.paths],
            (tmp_path / "api-token").is_symlink(),
            (tmp_path / "api-token").read_text(),
            (tmp_path / "api-token.9090").read_text(),
        )
    finally:
        second.remove()
        first.remove()
    assert (["api-token.9092", "api-token"], False, f"{SECOND}\n", f"{FIRST}\n") == seen


def test_a_symlink_put_at_a_servers_port_file_to_its_own_file_stays_when_it_stops(
    tmp_path: Path,
) -> None:
    """A symlink put at NAME.PORT is not the server's file, even pointing to its NAME: the
    stopping server removes NAME and leaves the link (dangling now)."""
    files = publish_token(tmp_path, FIRST, "api-token", 9090)
    (tmp_path / "api-token.9090").unlink()
    (tmp_path / "api-token.9090").symlink_to("api-token")
    files.remove()
    assert [("api-token.9090", True)] == [(p.name, p.is_symlink()) for p in tmp_path.iterdir()]


def test_a_server_stops_cleanly_once_or_twice_after_its_file_was_deleted(
    tmp_path: Path,
) -> None:
    """A user deleted the server's NAME.PORT while it ran: stopping removes NAME without an
    error, and stopping again does nothing."""
    files = publish_token(tmp_path, FIRST, "api-token", 9090)
    (tmp_path / "api-token.9090").unlink()
    files.remove()
    files.remove()
    assert [] == list(tmp_path.iterdir())


def test_a_folder_named_as_a_port_file_stays_and_the_server_starts(tmp_path: Path) -> None:
    """``api-token.9091`` that is a folder is no server's file and cannot be removed as a stale
    one: it stays, and the server gets its files."""
    (tmp_path / "api-token.9091").mkdir()
    files = publish_token(tmp_path, FIRST, "api-token", 9090)
    try:
        left = sorted(path.name for path in tmp_path.iterdir())
    finally:
        files.remove()
    assert ["api-token", "api-token.9090", "api-token.9091"] == left


def test_a_folder_at_the_shared_name_is_left_and_the_port_file_goes_when_the_server_stops(
    tmp_path: Path,
) -> None:
    """A user's folder at NAME is not a stale token file: the server leaves it, starts with its
    NAME.PORT alone, and removes that when it stops (no token file outlives its server)."""
    (tmp_path / "api-token").mkdir()
    files = publish_token(tmp_path, FIRST, "api-token", 9090)
    claimed = [path.name for path in files.paths]
    files.remove()
    assert (["api-token.9090"], ["api-token"]) == (claimed, os.listdir(tmp_path))


def test_a_token_that_cannot_be_written_fails_with_its_error_and_leaves_nothing(
    tmp_path: Path,
) -> None:
    """A write that fails (the file size limit of 0 here, as a full disk would) is the
    OSError the caller warns of (``sign_in``), and no temporary file is left behind."""
    limits = resource.getrlimit(resource.RLIMIT_FSIZE)
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the write fails, EFBIG
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, limits[1]))
    try:
        with pytest.raises(OSError, match="File too large"):
            publish_token(tmp_path, FIRST, "api-token", 9090)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, limits)
        signal.signal(signal.SIGXFSZ, handler)
    assert [] == list(tmp_path.iterdir())
