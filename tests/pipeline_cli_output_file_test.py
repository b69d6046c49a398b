"""``cli/output_file``: what ``dag -o`` and ``report -o`` write, and how."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from cli_support import taskdaemon
from taskdaemon.pipeline.cli import main
from taskdaemon.pipeline.cli.output_file import output_format, output_target, write_output


def test_a_file_is_private_to_its_owner_whatever_the_umask(tmp_path: Path) -> None:
    """Under a umask that would leave it readable by all, the file is still 0600."""
    target = tmp_path / "report.html"
    previous = os.umask(0o022)
    try:
        assert write_output("<html/>", str(target)) is None
    finally:
        os.umask(previous)
    assert ("<html/>", 0o600) == (target.read_text(), stat.S_IMODE(target.stat().st_mode))


def test_an_existing_file_is_replaced_and_made_private(tmp_path: Path) -> None:
    """A target left 0644 by an earlier version is replaced whole, its mode not kept."""
    target = tmp_path / "dag.dot"
    target.write_text("old")
    target.chmod(0o644)
    assert write_output("new", str(target)) is None
    assert ("new", 0o600) == (target.read_text(), stat.S_IMODE(target.stat().st_mode))


def test_a_failed_write_keeps_the_previous_file_and_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A write that fails midway (a full disk) is one line; the old file and the folder are
    as they were."""
    target = tmp_path / "report.md"
    target.write_text("previous report")

    def full_disk(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", full_disk)
    problem = write_output("new report", str(target))
    assert (
        f"cannot write {target}: No space left on device",
        ["report.md"],
        "previous report",
    ) == (
        problem,
        sorted(path.name for path in tmp_path.iterdir()),
        target.read_text(),
    )


def test_a_file_where_a_folder_should_be_is_one_line(tmp_path: Path) -> None:
    """A target below a file (a folder expected) is refused with the reason."""
    (tmp_path / "file").write_text("")
    target = tmp_path / "file" / "dag.svg"
    assert f"cannot write {target}: File exists" == write_output("x", str(target))


@pytest.mark.slow
def test_every_o_makes_its_missing_folders_0700(tmp_path: Path) -> None:
    """``dump -o``, ``dag -o`` and ``report -o`` into folders that do not exist yet: each
    makes them, 0700 under umask 0, and writes its file 0600. ``dag -o`` and ``report -o``
    refused, where ``dump -o`` made them: a script needed ``mkdir -p`` for two of three."""
    home = tmp_path / "home"
    ran = taskdaemon(home, "run", "-q", "examples/feature_delivery.yaml", "--auto-approve")
    assert 0 == ran.returncode, ran.stderr
    run_id = ran.stdout.strip()
    out = tmp_path / "out"
    commands = {
        out / "dump" / "deeper" / "run.tar.gz": ("dump", run_id),
        out / "dag" / "deeper" / "run.svg": ("dag", "--run", run_id, "--format", "svg"),
        out / "report" / "deeper" / "report.md": ("report", "--format", "markdown"),
    }
    previous = os.umask(0)
    try:
        done = [taskdaemon(home, *args, "-o", str(target)) for target, args in commands.items()]
    finally:
        os.umask(previous)
    assert [(0, "")] * 3 == [(each.returncode, each.stderr) for each in done]
    for target in commands:
        modes = [stat.S_IMODE(p.stat().st_mode) for p in (target.parent.parent, target.parent)]
        assert ([0o700, 0o700], 0o600) == (modes, stat.S_IMODE(target.stat().st_mode))


def test_without_a_file_the_text_goes_to_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    """No ``-o``: the text is printed as it is."""
    assert write_output("digraph {}\n", None) is None
    assert "digraph {}\n" == capsys.readouterr().out


def test_a_named_pipe_is_written_into_not_replaced(tmp_path: Path) -> None:
    """``-o`` naming a device or a pipe (``/dev/stdout``, ``/dev/null``) renamed a regular file
    over it: as root, ``dag -o /dev/null`` replaced the machine's ``/dev/null``. A named pipe
    stands in for a device here: it must still be one, and its reader must get the text."""
    target = tmp_path / "pipe"
    os.mkfifo(target)
    reader = os.open(target, os.O_RDONLY | os.O_NONBLOCK)  # a reader, so the writer opens
    try:
        problem = write_output("digraph {}\n", str(target))
        try:
            got = os.read(reader, 65536)
        except BlockingIOError:  # nothing came through the pipe
            got = b""
    finally:
        os.close(reader)
    assert (problem, got, stat.S_ISFIFO(target.stat().st_mode)) == (
        None,
        b"digraph {}\n",
        True,
    )
    assert sorted(path.name for path in tmp_path.iterdir()) == ["pipe"]


def test_a_link_is_written_through_not_replaced(tmp_path: Path) -> None:
    """``-o /dev/stdout`` (a link to ``/proc/self/fd/1``) renamed a file over the link; a
    link is now written through, and stays a link."""
    target = tmp_path / "elsewhere.dot"
    target.write_text("old")
    link = tmp_path / "out.dot"
    link.symlink_to(target)
    assert write_output("new", str(link)) is None
    assert (link.is_symlink(), target.read_text()) == (True, "new")


_AS_ROOT = pytest.mark.skipif(os.geteuid() != 0, reason="giving a link to nobody needs root")


@_AS_ROOT
def test_a_link_another_user_planted_is_not_followed(tmp_path: Path) -> None:
    """In a folder anyone may write (sticky, as ``/tmp``, with the kernel's
    ``protected_symlinks`` off), another user plants ``out.dot`` as a link to a file of ours:
    the real ``dag -o`` refuses it in one line, and the file it points to keeps its text."""
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    victim = tmp_path / "victim.txt"
    victim.write_text("mine")
    link = shared / "out.dot"
    link.symlink_to(victim)
    os.lchown(link, 65534, 65534)
    done = taskdaemon(tmp_path / "home", "dag", "examples/feature_delivery.yaml", "-o", str(link))
    assert (done.returncode, done.stderr, victim.read_text(), link.is_symlink()) == (
        1,
        f"taskdaemon dag: cannot write {link}: another user's link, pipe or device (uid 65534)\n",
        "mine",
        True,
    )


@_AS_ROOT
def test_a_folder_link_another_user_planted_is_not_followed(tmp_path: Path) -> None:
    """Another user plants ``out`` in a shared folder as a link to a folder of theirs: ``report
    -o`` to a file in a new folder below it makes nothing through it and names the link."""
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    link = tmp_path / "out"
    link.symlink_to(theirs)
    os.lchown(link, 65534, 65534)
    target = link / "new" / "report.md"
    done = taskdaemon(tmp_path / "home", "report", "-o", str(target))
    assert (done.returncode, done.stderr, os.listdir(theirs)) == (
        1,
        f"taskdaemon report: cannot write {target}: {link} is another user's link (uid 65534)\n",
        [],
    )


MAP = {".svg": "svg", ".dot": "dot"}


@pytest.mark.parametrize(
    ("given", "output", "chosen"),
    [
        ("dot", "run.svg", "dot"),  # a --format given wins over the suffix
        (None, "run.svg", "svg"),
        (None, "out/RUN.SVG", "svg"),  # the suffix in any case
        (None, "run.dot.svg", "svg"),  # the last suffix
        (None, "run.png", "json"),  # a suffix the command has no format for
        (None, "run", "json"),
        (None, None, "json"),  # stdout
    ],
)
def test_the_format_is_the_given_one_else_the_suffix_s_else_the_default(
    given: str | None, output: str | None, chosen: str
) -> None:
    """``--format``, else what ``-o``'s suffix names, else the command's default."""
    assert chosen == output_format(given, output, MAP, "json")


def test_dag_o_with_an_upper_case_suffix_writes_that_format(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``dag FILE -o RUN.JSON``, in-process: the file is the JSON drawing, not DOT text."""
    monkeypatch.setenv("TASKDAEMON_HOME", str(tmp_path / "home"))
    target = tmp_path / "RUN.JSON"
    code = main(["dag", "examples/feature_delivery.yaml", "-o", str(target)])
    assert (0, "", "") == (code, *capsys.readouterr())
    assert "feature-delivery" == json.loads(target.read_text())["pipeline"]["name"]


def test_a_trailing_slash_names_a_folder_made_for_every_o(tmp_path: Path) -> None:
    """``dag -o out/`` and ``report -o out/`` write into a new folder, 0700, under the file
    name each gives its output, as ``dump -o out/`` did; they wrote a file called ``out``."""
    out = tmp_path / "out"
    home = tmp_path / "home"
    drawn = taskdaemon(home, "dag", "examples/feature_delivery.yaml", "-f", "json", "-o", f"{out}/")
    reported = taskdaemon(home, "report", "-o", f"{out}/new/")
    assert [(0, ""), (0, "")] == [(done.returncode, done.stderr) for done in (drawn, reported)]
    assert (["feature_delivery.json", "new"], ["report.txt"], 0o700) == (
        sorted(os.listdir(out)),
        os.listdir(out / "new"),
        stat.S_IMODE(out.stat().st_mode),
    )
    assert (
        "feature-delivery"
        == json.loads((out / "feature_delivery.json").read_text())["pipeline"]["name"]
    )


def test_an_existing_folder_is_written_into_and_its_suffix_chooses_no_format(
    tmp_path: Path,
) -> None:
    """``-o`` naming a folder that exists (no ``/``) writes into it, as ``cp`` and ``dump``
    do: ``dag -o out`` was refused ("Is a directory"); a folder named ``x.svg`` says no format."""
    folder = tmp_path / "x.svg"
    folder.mkdir()
    assert ("dot", str(folder / "f.dot")) == (
        output_format(None, str(folder), {".svg": "svg"}, "dot"),
        output_target(str(folder), "f.dot"),
    )


@pytest.mark.parametrize("command", ["dag", "report", "dump"])
def test_an_empty_output_path_is_a_usage_error(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """``-o ''``: ``dag`` and ``report`` said ``cannot write : No such file or directory``
    (exit 1) and ``dump`` wrote its default file; each now refuses it in one line, exit 2."""
    first = ["abcd"] if command == "dump" else []
    with pytest.raises(SystemExit) as exited:
        main([command, *first, "-o", ""])
    said = f"taskdaemon {command}: error: argument -o/--output: an empty path"
    assert (2, f"{said} (see taskdaemon {command} --help)\n") == (
        exited.value.code,
        capsys.readouterr().err,
    )
