"""``private_file``: run data written whole, through a private temporary beside the target,
and the private folders above it, walked by descriptor."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import BinaryIO

import pytest

from taskdaemon.pipeline.private_file import make_output_dirs, make_private_dirs, replace_privately


def _folder_while_writing(target: Path) -> list[str]:
    """The names in ``target``'s folder seen from inside the write, with ``target`` written."""
    seen: list[str] = []

    def write(handle: BinaryIO) -> None:
        seen.extend(sorted(path.name for path in target.parent.iterdir()))
        handle.write(b"data")

    replace_privately(target, write)
    return seen


def test_the_temporary_is_written_in_the_targets_folder(tmp_path: Path) -> None:
    """While the write runs, one file besides the target's old copy sits in its folder: the
    rename that publishes it never crosses a file system."""
    target = tmp_path / "report.html"
    target.write_text("old")
    assert 2 == len(_folder_while_writing(target))


def test_the_temporary_is_hidden_and_never_takes_the_targets_suffix(tmp_path: Path) -> None:
    """The half-written file is a dot file named after the target and ending in ``.tmp``, so
    neither ``ls`` nor a glob for the target's kind (``*.html``) ever lists it."""
    target = tmp_path / "report.html"
    (temporary,) = _folder_while_writing(target)
    assert (True, True, ["report.html"]) == (
        temporary.startswith(".report.html."),
        temporary.endswith(".tmp"),
        sorted(path.name for path in tmp_path.iterdir()),
    )


def test_the_writers_error_is_raised_when_its_temporary_is_already_gone(
    tmp_path: Path,
) -> None:
    """A write that fails after its temporary was removed by someone else (a cleaner emptying
    the folder) raises the write's own error, not one about the missing temporary."""
    target = tmp_path / "dump.json"

    def write(handle: BinaryIO) -> None:
        for path in tmp_path.iterdir():
            path.unlink()
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space left on device") as raised:
        replace_privately(target, write)
    assert (28, []) == (raised.value.errno, os.listdir(tmp_path))


def test_each_folder_made_is_0700_and_an_existing_one_keeps_its_mode(tmp_path: Path) -> None:
    """Under umask 0, every missing folder on the way is made 0700; the existing folder it
    starts from keeps the mode someone chose (here 0755)."""
    tmp_path.chmod(0o755)
    old = os.umask(0)
    try:
        make_private_dirs(tmp_path / "a" / "b" / "c")
    finally:
        os.umask(old)
    folders = (tmp_path, tmp_path / "a", tmp_path / "a" / "b", tmp_path / "a" / "b" / "c")
    assert [0o755, 0o700, 0o700, 0o700] == [stat.S_IMODE(f.stat().st_mode) for f in folders]


def test_a_file_in_the_way_is_an_error(tmp_path: Path) -> None:
    """A file where a folder should be is refused (FileExistsError), as ``mkdir`` does."""
    (tmp_path / "a").write_text("")
    with pytest.raises(FileExistsError):
        make_private_dirs(tmp_path / "a")


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a pipe to nobody needs root")
def test_a_named_pipe_of_another_user_is_not_written_into(tmp_path: Path) -> None:
    """A named pipe another user made at the target would hand them the run data as it is
    written (its owner reads the other end): refused with ``PermissionError``, nothing
    written, nothing left beside it."""
    target = tmp_path / "report.html"
    os.mkfifo(target)
    os.chown(target, 65534, 65534)
    with pytest.raises(PermissionError, match=r"another user's link, pipe or device \(uid 65534"):
        replace_privately(target, lambda handle: handle.write(b"run data"))
    assert (["report.html"], True) == (
        os.listdir(tmp_path),
        stat.S_ISFIFO(target.lstat().st_mode),
    )


def _planted_link(folder: Path, name: str) -> tuple[Path, Path]:
    """``folder/theirs``, a folder, and ``folder/name``, a link to it that user 65534 owns
    (as if planted by another user): both paths."""
    theirs = folder / "theirs"
    theirs.mkdir()
    link = folder / name
    link.symlink_to(theirs)
    os.lchown(link, 65534, 65534)
    return theirs, link


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a link to nobody needs root")
def test_a_link_of_another_user_above_an_output_file_is_refused(tmp_path: Path) -> None:
    """``out`` in a shared folder, a link another user planted to a folder of theirs: the
    folders above ``out/new/x.dot`` are not made through it (``PermissionError`` naming the
    link), nothing is made where it points; a link of this user's (or root's) is followed."""
    theirs, link = _planted_link(tmp_path, "out")
    with pytest.raises(PermissionError, match=rf"{link} is another user's link \(uid 65534\)"):
        make_output_dirs(link / "new" / "x.dot")
    assert [] == os.listdir(theirs)
    os.lchown(link, os.geteuid(), os.getegid())
    make_output_dirs(link / "new" / "x.dot")
    assert ["new"] == os.listdir(theirs)


def _open_descriptors() -> list[str]:
    """The descriptors this process holds now."""
    return sorted(os.listdir("/proc/self/fd"))


def test_every_descriptor_is_closed_whatever_happens(tmp_path: Path) -> None:
    """Folders made, a file replaced, written through a link of ours, refused (a file in the
    way, a missing folder, a write that fails, a dangling link to make folders through): the
    process holds the same descriptors after as before."""
    (tmp_path / "file").write_text("")
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    (tmp_path / "real.txt").write_text("")
    (tmp_path / "link.txt").symlink_to("real.txt")

    def fail(handle: BinaryIO) -> None:
        raise OSError(28, "No space left on device")

    before = _open_descriptors()
    make_output_dirs(tmp_path / "a" / "b" / "c.txt")
    replace_privately(tmp_path / "a" / "b" / "c.txt", lambda handle: handle.write(b"c"))
    replace_privately(tmp_path / "link.txt", lambda handle: handle.write(b"real"))
    refused = []
    for attempt in (
        lambda: make_output_dirs(tmp_path / "file" / "x" / "y.txt"),
        lambda: make_output_dirs(tmp_path / "dangling" / "y.txt"),
        lambda: replace_privately(tmp_path / "missing" / "y.txt", lambda h: h.write(b"")),
        lambda: replace_privately(tmp_path / "z.txt", fail),
    ):
        try:
            attempt()
        except OSError as error:
            refused.append(type(error).__name__)
    assert (
        before,
        ["NotADirectoryError", "FileExistsError", "FileNotFoundError", "OSError"],
        "c",
        "real",
    ) == (
        _open_descriptors(),
        refused,
        (tmp_path / "a" / "b" / "c.txt").read_text(),
        (tmp_path / "real.txt").read_text(),
    )


def test_a_folder_swapped_for_a_link_while_writing_keeps_the_file(tmp_path: Path) -> None:
    """The folder the temporary was made in is renamed away and a link to another folder put
    in its place before the rename that publishes the file: the file is published in the
    folder the temporary is in (the rename is relative to its descriptor), nothing lands
    where the link points. By path, the rename failed to find its temporary."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    out = tmp_path / "out"

    def swap_then_write(handle: BinaryIO) -> None:
        out.rename(tmp_path / "out.old")
        out.symlink_to(elsewhere)
        handle.write(b"run data")

    make_output_dirs(out / "x.dot")
    replace_privately(out / "x.dot", swap_then_write)
    assert (["x.dot"], []) == (os.listdir(tmp_path / "out.old"), os.listdir(elsewhere))


def test_a_relative_link_at_the_target_is_followed_from_its_own_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``out/now.txt``, a link of ours to ``real.txt`` beside it, written from another current
    folder: what it points to is found from the link's folder, as the kernel finds it, and
    written into (the link stays)."""
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "now.txt").symlink_to("real.txt")
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    replace_privately(Path("../out/now.txt"), lambda handle: handle.write(b"data"))
    assert ("data", True, []) == (
        (tmp_path / "out" / "real.txt").read_text(),
        (tmp_path / "out" / "now.txt").is_symlink(),
        os.listdir(tmp_path / "cwd"),
    )


def test_a_named_pipe_of_ours_is_written_into(tmp_path: Path) -> None:
    """A named pipe of ours at the target, a reader at its other end: the data goes down the
    pipe (reopened from the descriptor judged), no file is put in its place."""
    target = tmp_path / "pipe"
    os.mkfifo(target)
    reader = os.open(target, os.O_RDONLY | os.O_NONBLOCK)
    try:
        replace_privately(target, lambda handle: handle.write(b"run data"))
        received = os.read(reader, 100)
    finally:
        os.close(reader)
    assert (b"run data", True) == (received, stat.S_ISFIFO(target.lstat().st_mode))


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a link to nobody needs root")
def test_another_users_link_reached_through_a_link_of_ours_is_refused(tmp_path: Path) -> None:
    """``out`` is our link to ``mid``, a link another user planted (to a folder of theirs):
    the folders above ``out/new/x.dot`` are refused, naming ``mid``, as when ``mid`` is named
    directly; the target of each link followed is judged as the path's own names are."""
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (tmp_path / "mid").symlink_to(theirs)
    os.lchown(tmp_path / "mid", 65534, 65534)
    (tmp_path / "out").symlink_to("mid")
    with pytest.raises(PermissionError, match=rf"{tmp_path}/mid is another user's link"):
        make_output_dirs(tmp_path / "out" / "new" / "x.dot")
    assert [] == os.listdir(theirs)


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a link to nobody needs root")
def test_a_private_folder_is_not_made_through_another_users_link(tmp_path: Path) -> None:
    """A home ``shared/home/runs`` whose ``home`` is a link another user planted: no folder is
    made where it points (``PermissionError`` naming the link); through a link of ours, the
    folders are made at its target, 0700 under umask 0, as any missing folder."""
    theirs, link = _planted_link(tmp_path, "home")
    with pytest.raises(PermissionError, match=rf"{link} is another user's link \(uid 65534\)"):
        make_private_dirs(link / "runs")
    refused = os.listdir(theirs)
    os.lchown(link, os.geteuid(), os.getegid())
    old = os.umask(0)
    try:
        make_private_dirs(link / "runs" / "one")
    finally:
        os.umask(old)
    modes = [stat.S_IMODE((theirs / name).stat().st_mode) for name in ("runs", "runs/one")]
    assert ([], [0o700, 0o700]) == (refused, modes)


def test_a_folder_refused_as_mkdir_refuses_it_names_the_folder_asked_for(tmp_path: Path) -> None:
    """A file above the folder is ``NotADirectoryError``, a file or a dangling link at it (or
    above it) ``FileExistsError``, each naming the folder asked for, with ``mkdir``'s words;
    nothing is made beside them and no descriptor is left open."""
    (tmp_path / "file").write_text("")
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    before = _open_descriptors()
    refused = []
    for folder in ("file/a/b", "file", "dangling", "dangling/a"):
        try:
            make_private_dirs(tmp_path / folder)
        except OSError as error:
            refused.append((type(error).__name__, error.strerror, error.filename))
    assert (
        [
            ("NotADirectoryError", "Not a directory", f"{tmp_path}/file/a/b"),
            ("FileExistsError", "File exists", f"{tmp_path}/file"),
            ("FileExistsError", "File exists", f"{tmp_path}/dangling"),
            ("FileExistsError", "File exists", f"{tmp_path}/dangling/a"),
        ],
        ["dangling", "file"],
        before,
    ) == (refused, sorted(os.listdir(tmp_path)), _open_descriptors())
