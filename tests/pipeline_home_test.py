"""``TASKDAEMON_HOME`` and the other variables found by one rule (``home.py``,
``variables.py``): in-process, and by real commands that write and read a run through them."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest

from cli_support import ONE_STAGE_PIPELINE, TASKDAEMON, environment, write
from taskdaemon.pipeline.home import foreign_home, foreign_workspace, home_directory
from taskdaemon.pipeline.settings import load_settings


@pytest.mark.parametrize(
    ("environ", "home"),
    [
        ({}, ".taskdaemon"),
        ({"TASKDAEMON_HOME": ""}, ".taskdaemon"),
        ({"TASKDAEMON_HOME": "  "}, ".taskdaemon"),
        ({"TASKDAEMON_HOME": "/x"}, "/x"),
        ({"taskdaemon_home": "/y"}, "/y"),
        ({"taskdaemon_home": "/y", "TASKDAEMON_HOME": "/x"}, "/x"),
    ],
)
def test_the_home_is_found_as_the_settings_find_it(
    environ: dict[str, str], home: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Unset, empty or blank is ``.taskdaemon``; the exact name wins over another case's; the
    settings read the same home."""
    for name in ("TASKDAEMON_HOME", "taskdaemon_home"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    assert (Path(home), Path(home)) == (home_directory(environ), load_settings().home)


def test_a_given_environment_is_read_not_the_processs(monkeypatch: pytest.MonkeyPatch) -> None:
    """``home_directory(environ)`` reads ``environ`` alone (a child's environment being
    built), whatever the process's own says; without one, the process's."""
    monkeypatch.setenv("TASKDAEMON_HOME", "/process")
    given = {"TASKDAEMON_HOME": "/given"}
    assert [Path("/given"), Path(".taskdaemon"), Path("/process")] == [
        home_directory(given),
        home_directory({}),
        home_directory(),
    ]


@pytest.mark.slow
@pytest.mark.parametrize("variable", ["TASKDAEMON_HOME", "taskdaemon_home"])
def test_a_run_and_its_readers_find_the_same_home(
    variable: str, home: Path, tmp_path: Path
) -> None:
    """A run made with the home's variable empty (or spelt in lower case) keeps its store and
    workspace in the home the readers then read: ``runs list`` lists it."""
    pipeline = write(tmp_path / "one.yaml", ONE_STAGE_PIPELINE)
    value = "" if variable == "TASKDAEMON_HOME" else str(home)
    where = tmp_path / ".taskdaemon" if value == "" else home
    env = {k: v for k, v in environment(home).items() if k != "TASKDAEMON_HOME"}
    env[variable] = value

    def command(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [TASKDAEMON, *args],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    run = command("run", "-q", str(pipeline))
    listed = command("runs", "list", "--json")
    run_id = run.stdout.strip()
    assert (0, True, [run_id]) == (
        run.returncode,
        (where / "workspaces" / run_id).is_dir() and (where / "spans.db").is_file(),
        [entry["run_id"] for entry in json.loads(listed.stdout or "[]")],
    ), run.stderr + listed.stderr


@pytest.mark.slow
def test_a_span_source_spelt_in_lower_case_is_where_the_run_and_the_readers_go(
    home: Path, tmp_path: Path
) -> None:
    """``taskdaemon_span_source`` (the settings accept any case) is the store ``run`` writes
    to and the one ``runs list`` reads, not the home's."""
    pipeline = write(tmp_path / "one.yaml", ONE_STAGE_PIPELINE)
    store = tmp_path / "elsewhere.db"
    env = {**environment(home), "taskdaemon_span_source": f"sqlite:///{store}"}
    done = [
        subprocess.run(
            [TASKDAEMON, *args], env=env, capture_output=True, text=True, timeout=60, check=False
        )
        for args in (("run", "-q", str(pipeline)), ("runs", "list", "--json"))
    ]
    listed = [entry["run_id"] for entry in json.loads(done[1].stdout or "[]")]
    assert ([done[0].stdout.strip()], True, False) == (
        listed,
        store.is_file(),
        (home / "spans.db").exists(),
    ), done[0].stderr + done[1].stderr


def _commands(home: Path, pipeline: Path) -> list[subprocess.CompletedProcess[str]]:
    """``run``, ``publish --home`` and ``runs list`` with ``home`` as ``TASKDAEMON_HOME``."""
    return [
        subprocess.run(
            [TASKDAEMON, *args],
            env=environment(home),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        for args in (
            ("run", "-q", str(pipeline)),
            ("publish", "nosuchrun", "spec.ready", "--home", str(home)),
            ("runs", "list", "--json"),
        )
    ]


def _refusal(name: str, home: Path | str, why: str) -> str:
    """The one line a command refusing ``home`` (absolute) prints: its path whole."""
    return (
        f"taskdaemon: {name} '{home}' {why}: whoever controls it could swap our "
        "workspaces and control sockets for theirs; use a home of your own\n"
    )


@pytest.mark.slow
@pytest.mark.skipif(os.geteuid() != 0, reason="giving a folder to nobody needs root")
def test_a_home_another_user_owns_is_refused_to_writers_not_to_readers(tmp_path: Path) -> None:
    """A home ``nobody`` made 0755 (a shared checkout's ``.taskdaemon``): ``run`` and
    ``publish`` (which trusts the home's control sockets) refuse it in one line, exit 2, and
    make nothing in it; ``runs list`` still reads it."""
    home = tmp_path / "home"
    home.mkdir(mode=0o755)
    os.chown(home, 65534, 65534)
    pipeline = write(tmp_path / "one.yaml", ONE_STAGE_PIPELINE)
    run, publish, listed = _commands(home, pipeline)
    why = "belongs to another user (uid 65534)"
    assert [
        (2, _refusal("TASKDAEMON_HOME", home, why)),
        (2, _refusal("--home", home, why)),
        (0, ""),
        [],
    ] == [
        (run.returncode, run.stderr),
        (publish.returncode, publish.stderr),
        (listed.returncode, listed.stderr),
        list(home.iterdir()),
    ], listed.stdout


def _folder(path: Path, mode: int, *, owner: int | None = None, group: int | None = None) -> Path:
    """``path`` made with ``mode``, given to ``owner`` and ``group`` if named (skipped when
    this is not root, who alone may give a folder away)."""
    if (owner, group) != (None, None) and os.geteuid() != 0:
        pytest.skip("giving a folder to another user or group needs root")
    path.mkdir()
    path.chmod(mode)
    os.chown(path, -1 if owner is None else owner, -1 if group is None else group)
    return path


@pytest.mark.slow
@pytest.mark.parametrize(
    ("mode", "group"), [(0o777, None), (0o1777, None), (0o770, 65534)], ids=["0777", "1777", "0770"]
)
def test_a_home_group_or_others_may_write_is_refused(
    tmp_path: Path, mode: int, group: int | None
) -> None:
    """A home group or others may write (``TASKDAEMON_HOME=/tmp``, a group's folder: here
    ``nogroup``, the primary group of ``nobody`` and others), sticky or not (anyone could
    make ``control/`` there first): writers refuse it, one line, exit 2."""
    home = _folder(tmp_path / "home", mode, group=group)
    pipeline = write(tmp_path / "one.yaml", ONE_STAGE_PIPELINE)
    run, publish, _ = _commands(home, pipeline)
    why = f"may be written by group or others (mode {mode:04o})"
    assert [
        (2, _refusal("TASKDAEMON_HOME", home, why)),
        (2, _refusal("--home", home, why)),
        [],
    ] == [(run.returncode, run.stderr), (publish.returncode, publish.stderr), list(home.iterdir())]


def _group_of_one_only_ours() -> int | None:
    """A group whose one member is this user (its primary group to no one else, no one
    else listed), as a user-private-group system gives each user; None if there is none."""
    import grp
    import pwd

    gid = pwd.getpwuid(os.geteuid()).pw_gid
    others = [user for user in pwd.getpwall() if user.pw_gid == gid and user.pw_uid != os.geteuid()]
    return None if others or grp.getgrgid(gid).gr_mem else gid


@pytest.mark.slow
def test_a_checkout_only_our_own_group_may_write_holds_a_home(tmp_path: Path) -> None:
    """A clone made under umask 002 (Fedora, RHEL: a group per user): the checkout, 0775, and
    its default home, 0770, may be written by a group whose one member is this user. As
    Debian's ``sshd`` judges it, that is as closed as 0755: the README's first command runs
    there, where it was refused."""
    gid = _group_of_one_only_ours()
    assert gid is not None, "this machine's user has no group of its own"
    with tempfile.TemporaryDirectory(prefix="co") as short:  # a control socket's path fits
        _run_in_checkout(Path(short) / "c", gid, write(tmp_path / "one.yaml", ONE_STAGE_PIPELINE))


def _run_in_checkout(checkout: Path, gid: int, pipeline: Path) -> None:
    """``run`` in ``checkout`` (0775) with its default home (0770), both of group ``gid``."""
    (checkout / ".taskdaemon").mkdir(parents=True)
    checkout.chmod(0o775)
    (checkout / ".taskdaemon").chmod(0o770)
    for folder in (checkout, checkout / ".taskdaemon"):
        os.chown(folder, -1, gid)
    env = environment(checkout / "unused")
    del env["TASKDAEMON_HOME"]
    run = subprocess.run(
        [TASKDAEMON, "run", "-q", str(pipeline)],
        cwd=checkout,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (0, "", True) == (
        run.returncode,
        run.stderr,
        (checkout / ".taskdaemon" / "workspaces" / run.stdout.strip()).is_dir(),
    )


@pytest.mark.slow
def test_the_default_home_refused_is_named_whole_where_it_is(tmp_path: Path) -> None:
    """The default home, ``.taskdaemon`` in the current folder, made 0777 there: the refusal
    names it by its absolute path, whole, though far past ``quote``'s 40 characters (they
    showed ``'/tmp/pytest-of-root/pytest-3/test_the_d…'``, hiding the folder refused), and
    an escape sequence in the folder's name is shown escaped, not sent to the terminal."""
    folder = tmp_path / "a project with a long name" / "checkout\x1b[2J" / "service"
    (folder / ".taskdaemon").mkdir(parents=True)
    (folder / ".taskdaemon").chmod(0o777)
    env = environment(tmp_path / "unused")
    del env["TASKDAEMON_HOME"]
    pipeline = write(tmp_path / "one.yaml", ONE_STAGE_PIPELINE)
    run = subprocess.run(
        [TASKDAEMON, "run", "-q", str(pipeline)],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    named = str(folder / ".taskdaemon").replace("\x1b", "\\x1b")
    why = "may be written by group or others (mode 0777)"
    assert (2, _refusal("TASKDAEMON_HOME", named, why)) == (run.returncode, run.stderr)


@pytest.mark.slow
def test_a_private_home_of_this_user_is_used(tmp_path: Path) -> None:
    """The normal case: a 0700 home of this user (and one not made yet) gets the run's store
    and workspace."""
    made = tmp_path / "made"
    made.mkdir(mode=0o700)
    pipeline = write(tmp_path / "one.yaml", ONE_STAGE_PIPELINE)
    outcomes = []
    for home in (made, tmp_path / "new"):
        run, _, listed = _commands(home, pipeline)
        run_id = run.stdout.strip()
        outcomes.append(
            (
                run.returncode,
                (home / "workspaces" / run_id).is_dir(),
                [entry["run_id"] for entry in json.loads(listed.stdout or "[]")] == [run_id],
            )
        )
    assert [(0, True, True)] * 2 == outcomes, outcomes


@pytest.mark.slow
@pytest.mark.parametrize("missing", [False, True], ids=["made", "not-made-yet"])
def test_a_home_under_a_folder_others_may_write_is_refused(tmp_path: Path, missing: bool) -> None:
    """A 0700 home of ours (or one not made yet) in ``shared/``, 0777 and not sticky: anyone
    could rename the home away and put theirs in its place. Writers refuse it in one line
    naming the folder to blame, exit 2, and make nothing; ``runs list`` still reads it."""
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    home = shared / "home"
    if not missing:
        home.mkdir(mode=0o700)
    pipeline = write(tmp_path / "one.yaml", ONE_STAGE_PIPELINE)
    run, publish, listed = _commands(home, pipeline)
    why = f"is under '{shared}', which may be written by group or others (mode 0777)"
    assert [
        (2, _refusal("TASKDAEMON_HOME", home, why)),
        (2, _refusal("--home", home, why)),
        (0, ""),
        [] if missing else ["home"],
        [],
    ] == [
        (run.returncode, run.stderr),
        (publish.returncode, publish.stderr),
        (listed.returncode, listed.stderr),
        os.listdir(shared),
        [] if missing else os.listdir(home),
    ], listed.stdout


@pytest.mark.slow
def test_a_home_reached_through_a_link_is_judged_where_it_leads(tmp_path: Path) -> None:
    """``TASKDAEMON_HOME`` names ``ours/home``, a link to a home in a folder anyone may
    write: the folders judged are the real ones, and the line names the one to blame."""
    shared = tmp_path / "shared"
    (shared / "home").mkdir(parents=True, mode=0o700)
    shared.chmod(0o777)
    (tmp_path / "ours").mkdir(mode=0o700)
    (tmp_path / "ours" / "home").symlink_to(shared / "home")
    pipeline = write(tmp_path / "one.yaml", ONE_STAGE_PIPELINE)
    run, _, _ = _commands(tmp_path / "ours" / "home", pipeline)
    why = f"is under '{shared}', which may be written by group or others (mode 0777)"
    assert (2, _refusal("TASKDAEMON_HOME", tmp_path / "ours" / "home", why)) == (
        run.returncode,
        run.stderr,
    )


@pytest.mark.slow
def test_a_home_of_ours_in_a_sticky_folder_anyone_may_write_is_used(tmp_path: Path) -> None:
    """``shared/mine/home`` with ``shared`` 1777 as ``/tmp`` is (only a name's owner may
    rename it there) and ``mine`` ours, 0700: the home is used, as ``TASKDAEMON_HOME`` under
    ``/tmp`` always was."""
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    (shared / "mine").mkdir(mode=0o700)
    home = shared / "mine" / "home"
    run, _, listed = _commands(home, write(tmp_path / "one.yaml", ONE_STAGE_PIPELINE))
    run_id = run.stdout.strip()
    assert (0, [run_id]) == (
        run.returncode,
        [entry["run_id"] for entry in json.loads(listed.stdout or "[]")],
    ), run.stderr


@pytest.mark.slow
@pytest.mark.skipif(os.geteuid() != 0, reason="giving a folder to nobody needs root")
def test_a_home_under_a_folder_another_user_owns_is_refused(tmp_path: Path) -> None:
    """``theirs/home``: the home is ours and 0700, but ``theirs`` (0755) belongs to
    ``nobody``, who may rename it away, sticky or not: refused in one line, exit 2."""
    theirs = tmp_path / "theirs"
    (theirs / "home").mkdir(parents=True, mode=0o700)
    theirs.chmod(0o1755)
    os.chown(theirs, 65534, 65534)
    run, _, _ = _commands(theirs / "home", write(tmp_path / "one.yaml", ONE_STAGE_PIPELINE))
    why = f"is under '{theirs}', which belongs to another user (uid 65534)"
    assert ((2, _refusal("TASKDAEMON_HOME", theirs / "home", why)), []) == (
        (run.returncode, run.stderr),
        os.listdir(theirs / "home"),
    )


@pytest.mark.slow
@pytest.mark.skipif(os.geteuid() != 0, reason="giving a link to nobody needs root")
def test_a_home_reached_through_another_users_link_is_refused(tmp_path: Path) -> None:
    """``shared/home`` is ``nobody``'s link, in a sticky folder, to a private home of ours:
    all the folders it leads to pass, but its owner may point it elsewhere at any time, so
    writers refuse it, naming the link."""
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    (tmp_path / "ours").mkdir(mode=0o700)
    link = shared / "home"
    link.symlink_to(tmp_path / "ours")
    os.lchown(link, 65534, 65534)
    run, _, _ = _commands(link, write(tmp_path / "one.yaml", ONE_STAGE_PIPELINE))
    why = f"is reached through '{link}', another user's link (uid 65534)"
    assert ((2, _refusal("TASKDAEMON_HOME", link, why)), []) == (
        (run.returncode, run.stderr),
        os.listdir(tmp_path / "ours"),
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    ("mode", "owner", "why"),
    [
        (0o777, None, "may be written by group or others (mode 0777)"),
        (0o755, 65534, "belongs to another user (uid 65534)"),
        (0o1777, None, None),
    ],
    ids=["0777", "nobody's", "1777"],
)
def test_a_workspace_another_user_controls_is_refused(
    tmp_path: Path, mode: int, owner: int | None, why: str | None
) -> None:
    """``--workspace DIR`` that others may write (not sticky) or that another user owns: its
    owner, or anyone, could rename a run's folder away and put theirs in its place before a
    stage works in it. ``run`` refuses it in one line, exit 2, and makes nothing there; a
    sticky DIR (``/tmp``) is used, as only a name's owner may rename it there."""
    workspace = _folder(tmp_path / "workspace", mode, owner=owner)
    pipeline = write(tmp_path / "one.yaml", ONE_STAGE_PIPELINE)
    done = subprocess.run(
        [TASKDAEMON, "run", "-q", str(pipeline), "--workspace", str(workspace)],
        env=environment(tmp_path / "home"),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    made = [entry.name for entry in workspace.iterdir()]
    if why is None:
        assert (0, [done.stdout.strip()]) == (done.returncode, made), done.stderr
        return
    refusal = (
        f"taskdaemon: --workspace '{workspace}' {why}: whoever controls it could swap a run's "
        "folder for theirs; use a folder of your own\n"
    )
    assert (2, refusal, []) == (done.returncode, done.stderr, made)


def _private(path: Path) -> Path:
    """``path`` made 0700 (its parents too), ours: the case's folder to judge."""
    path.mkdir(parents=True, mode=0o700)
    return path


def _link(link: Path, to: Path, *, owner: int | None = None) -> Path:
    """``link`` to ``to``, given to ``owner`` if named (root alone may)."""
    if owner is not None and os.geteuid() != 0:
        pytest.skip("giving a link to another user needs root")
    link.symlink_to(to)
    if owner is not None:
        os.lchown(link, owner, owner)
    return link


_NOBODY = 65534


def _our_own_group() -> int:
    """This user's group of one (``_group_of_one_only_ours``); skips if there is none."""
    gid = _group_of_one_only_ours()
    if gid is None:
        pytest.skip("this machine's user has no group of its own")
    return gid


def _group_with(*, others_listed: bool) -> int:
    """A group with another user listed in it, or one with no member at all (no one's
    primary group either), as this machine's user database has them; skips if none."""
    import grp
    import pwd

    me = pwd.getpwuid(os.geteuid()).pw_name
    primary = {user.pw_gid for user in pwd.getpwall()}
    for group in grp.getgrall():
        listed = [name for name in group.gr_mem if name != me]
        if bool(listed) if others_listed else not group.gr_mem and group.gr_gid not in primary:
            return group.gr_gid
    pytest.skip("no such group on this machine")


_OTHERS_MAY = "may be written by group or others (mode {:04o})"

#: The homes ``foreign_home`` judges in this process, each made in a private folder: how it is
#: made, and the verdict, ``{here}`` standing for that folder (None: the home is used).
_JUDGED_HOMES: list[tuple[str, Any, str | None]] = [
    ("ours-0700", lambda t: _private(t / "home"), None),
    ("ours-0711", lambda t: _folder(t / "home", 0o711), None),
    ("not-made", lambda t: t / "home", None),
    ("not-made-nor-its-folders", lambda t: t / "a" / "b" / "home", None),
    ("under-a-file", lambda t: write(t / "file", "") / "home", None),
    ("0777", lambda t: _folder(t / "home", 0o777), _OTHERS_MAY.format(0o777)),
    ("0702", lambda t: _folder(t / "home", 0o702), _OTHERS_MAY.format(0o702)),
    ("sticky-1777", lambda t: _folder(t / "home", 0o1777), _OTHERS_MAY.format(0o1777)),
    ("0770-of-our-own-group", lambda t: _folder(t / "home", 0o770, group=_our_own_group()), None),
    (
        "0772-of-our-own-group",
        lambda t: _folder(t / "home", 0o772, group=_our_own_group()),
        _OTHERS_MAY.format(0o772),
    ),
    (
        "0770-of-nogroup",
        lambda t: _folder(t / "home", 0o770, group=_NOBODY),
        _OTHERS_MAY.format(0o770),
    ),
    (
        "0770-of-a-group-another-is-in",
        lambda t: _folder(t / "home", 0o770, group=_group_with(others_listed=True)),
        _OTHERS_MAY.format(0o770),
    ),
    (
        "0770-of-a-group-of-no-one",
        lambda t: _folder(t / "home", 0o770, group=_group_with(others_listed=False)),
        _OTHERS_MAY.format(0o770),
    ),
    (
        "0770-of-no-such-group",
        lambda t: _folder(t / "home", 0o770, group=54321),
        _OTHERS_MAY.format(0o770),
    ),
    (
        "nobodys",
        lambda t: _folder(t / "home", 0o700, owner=_NOBODY),
        f"belongs to another user (uid {_NOBODY})",
    ),
    (
        "under-0777",
        lambda t: _private(_folder(t / "shared", 0o777) / "home"),
        "is under '{here}/shared', which " + _OTHERS_MAY.format(0o777),
    ),
    (
        "not-made-nor-its-folders-under-0777",
        lambda t: _folder(t / "shared", 0o777) / "a" / "b" / "home",
        "is under '{here}/shared', which " + _OTHERS_MAY.format(0o777),
    ),
    ("under-1777", lambda t: _private(_folder(t / "shared", 0o1777) / "home"), None),
    (
        "under-nobodys-1755",
        lambda t: _private(_folder(t / "theirs", 0o1755, owner=_NOBODY) / "home"),
        "is under '{here}/theirs', which belongs to another user (uid 65534)",
    ),
    (
        "through-nobodys-link",
        lambda t: _link(
            _folder(t / "shared", 0o1777) / "home", _private(t / "ours"), owner=_NOBODY
        ),
        "is reached through '{here}/shared/home', another user's link (uid 65534)",
    ),
    (
        "not-made-through-nobodys-link",
        lambda t: (
            _link(_folder(t / "shared", 0o1777) / "l", _private(t / "ours"), owner=_NOBODY) / "home"
        ),
        "is reached through '{here}/shared/l', another user's link (uid 65534)",
    ),
    ("through-our-link", lambda t: _link(t / "home", _private(t / "ours")), None),
    (
        "through-our-link-to-0777",
        lambda t: _link(t / "home", _folder(t / "ours", 0o777)),
        _OTHERS_MAY.format(0o777),
    ),
]


@pytest.mark.parametrize(
    ("made", "why"), [case[1:] for case in _JUDGED_HOMES], ids=[case[0] for case in _JUDGED_HOMES]
)
def test_a_home_is_judged_by_its_owner_its_mode_and_the_folders_above(
    tmp_path: Path, made: Any, why: str | None
) -> None:
    """``foreign_home`` in this process, on real folders, modes and owners: the words of each
    verdict (the commands above print them), a sticky home refused, a group-writable one
    used only when its group is ours alone, a home not made yet (or under a file: the command
    fails on it) judged by the folders that are."""
    here = _private(tmp_path / "here")
    expected = None if why is None else why.format(here=here)
    assert expected == foreign_home(made(here))


@pytest.mark.parametrize(
    ("made", "why"),
    [
        (lambda t: _folder(t / "workspace", 0o1777), None),
        (lambda t: _folder(t / "workspace", 0o777), _OTHERS_MAY.format(0o777)),
        (
            lambda t: _folder(t / "workspace", 0o755, owner=_NOBODY),
            "belongs to another user (uid 65534)",
        ),
        (lambda t: t / "workspace", None),
        (lambda t: write(t / "workspace", ""), None),
        (
            lambda t: _folder(_folder(t / "shared", 0o777) / "workspace", 0o700),
            "is under '{here}/shared', which " + _OTHERS_MAY.format(0o777),
        ),
    ],
    ids=["sticky-1777", "0777", "nobodys", "not-made", "a-file", "under-0777"],
)
def test_a_workspace_is_judged_as_a_home_but_may_be_sticky(
    tmp_path: Path, made: Any, why: str | None
) -> None:
    """``foreign_workspace`` in this process: a sticky DIR is used where a sticky home is not;
    a file given as DIR is left to the run (it says it cannot make its folder there)."""
    here = _private(tmp_path / "here")
    expected = None if why is None else why.format(here=here)
    assert expected == foreign_workspace(made(here))


@pytest.mark.skipif(os.geteuid() != 0, reason="acting as another user needs root")
def test_a_users_home_in_folders_and_through_links_root_owns_is_used() -> None:
    """For a user other than root (this process as ``nobody`` for the one call), a home of
    theirs reached through root's link, in a folder root owns (0755), under ``/tmp``, is
    theirs to use: root may do anything anyway, so its folders and links are no one else's."""
    folder = Path(tempfile.mkdtemp(dir="/tmp"))  # root's, as /tmp is
    try:
        folder.chmod(0o755)
        home = _private(folder / "home")
        os.chown(home, _NOBODY, _NOBODY)
        (folder / "link").symlink_to(home)
        os.seteuid(_NOBODY)
        try:
            verdicts = [foreign_home(folder / "link"), foreign_home(home)]
        finally:
            os.seteuid(0)
    finally:
        shutil.rmtree(folder)  # the link removed, not followed
    assert [None, None] == verdicts
