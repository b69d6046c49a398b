"""``taskdaemon replay RUN --step`` over a replay's record: ``where``, ``outputs``, ``logs`` and
the walked events name what the replay did not run as ``replay --break``'s prompt does, a fed
stage ``replayed`` and a reused instance ``reused``, each from the original run. Real
subprocesses, the prompt on a pseudo-terminal."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli_support import taskdaemon
from replay_fan_support import failed_once
from taskdaemon.pipeline.replay.walk import RecordedWalk
from taskdaemon.pipeline.tracking.store import SpanStore
from terminal_support import on_a_terminal_of


def _replayed(home: Path) -> tuple[str, str]:
    """The original run (instance 1 of ``c`` failed) and its replay ``--from c``, which fed
    ``a``, reused instances 0 and 2 of ``c`` and ran instance 1 and ``d``."""
    original = failed_once(home)
    done = taskdaemon(home, "replay", original, "--from", "c", "-q", cwd=home)
    assert 0 == done.returncode, done.stdout + done.stderr
    return original, done.stdout.strip()  # -q: the replay's run id alone


def _answer(said: list[str], command: str, lines: int) -> list[str]:
    """The ``lines`` lines the prompt answered ``command`` with (after the typed echo)."""
    start = said.index(f"(replay) {command}")
    return said[start + 1 : start + 1 + lines]


@pytest.mark.slow
def test_stepping_through_a_replay_names_what_it_did_not_run(home: Path) -> None:
    """At the replay's end: the opening line and ``where``'s first say whose replay it is;
    ``a`` is ``replayed`` and ``c`` counts 2 ``reused`` instances, each from the original run,
    as the live prompt's ``where`` says; ``outputs c`` and ``logs c`` name instances 0 and 2
    ``reused``, and the walk's events say they started and ended so, each start with the
    original run, as ``where`` says it (before: ``c#0 started``, as if it ran). Before,
    ``where`` said ``a  replayed`` and ``c  success  (instances: 2 replayed, 1 success)``
    with no original run, and
    ``outputs``/``logs`` ``replayed`` for the reused instances, as for a fed stage."""
    original, replay = _replayed(home)
    code, shown = on_a_terminal_of(
        240,
        home,
        "replay", replay, "--step",
        keys=b"goto 1h\nwhere\noutputs c\nlogs c\n\x04",
        cwd=home,
    )  # fmt: skip
    assert 0 == code, shown
    where = _answer(shown, "where", 4)
    assert where[0].endswith(f"; replay of run {original}"), where
    assert [
        f"  a  replayed  (from run {original})",
        f"  c  success  (instances: 2 reused, 1 success; reused from run {original})",
        "  d  success",
    ] == where[1:], shown
    assert [
        "c (success):",
        '  c.0.1 (reused): {"twice": 2}',
        '  c.1.1 (success): {"twice": 4}',
        '  c.2.1 (reused): {"twice": 6}',
        "  upstream a (replayed): {}",
    ] == _answer(shown, "outputs c", 5), shown
    opening = next(line for line in shown if line.startswith("stepping through"))  # after the echo
    assert opening.startswith(f"stepping through run {replay} (fan, a replay of run {original}),")
    assert ["  c.0.1: reused", "  c.1.1: success", "  c.2.1: reused"] == _answer(shown, "logs c", 3)
    with SpanStore(home / "spans.db") as store:
        walk = RecordedWalk(store.get_trace(replay))
    said = [event.what for event in walk.events if event.what.startswith(("a ", "c#"))]
    assert {"a replayed", "c#0 reused", "c#1 success", "c#2 reused"} <= set(said), said
    assert {
        f"a replayed from run {original}",
        f"c#0 reused from run {original}",
        "c#1 started",
        f"c#2 reused from run {original}",
    } == {what for what in said if what.endswith(("started", original))}, said


@pytest.mark.slow
def test_a_fed_stage_is_replayed_from_its_start(home: Path) -> None:
    """At the instant the fed ``a`` started (its stand-in waiting its turn), the state line
    and ``where`` say ``replayed``, as the live prompt does; before, ``running``, as if it
    ran. And the first reused instance to start makes ``c`` ``reused`` until one runs."""
    original, replay = _replayed(home)
    with SpanStore(home / "spans.db") as store:
        walk = RecordedWalk(store.get_trace(replay))
    walk.index = [event.what for event in walk.events].index(f"a replayed from run {original}")
    keys = f"goto {walk.offset:.9f}s\nwhere\n\x04".encode()  # its instant: ``a`` not ended
    code, shown = on_a_terminal_of(240, home, "replay", replay, "--step", keys=keys, cwd=home)
    assert 0 == code, shown
    assert f"  a  replayed  (from run {original})" in _answer(shown, "where", 4), shown
    assert ("replayed", {0: "replayed"}) == walk.shown(walk.stage("a"))
    walk.index = [event.what for event in walk.events].index(f"c#0 reused from run {original}")
    assert ("reused", {0: "reused"}) == walk.shown(walk.stage("c"))


@pytest.mark.slow
def test_step_refuses_the_options_of_a_replay_that_runs(home: Path) -> None:
    """``--step`` runs nothing: ``--from c`` walked the whole run from its start and
    ``--verify``, ``--input`` or ``--dry-run`` were ignored, with no word said. Each is now
    refused in one line naming them, exit 2, before any walk; ``-q`` too, since it prints only
    the run id of a replay that runs (it was taken, and the walk printed in full)."""
    original = failed_once(home)
    given = [
        [original, "--step", "--from", "c", "--verify"],
        [original, "--step", "--input", "n=1"],
        [original, "--step", "--dry-run"],
        [original, "fan.yaml", "--step", "--use-file"],
        [original, "--step", "-q"],
    ]
    refused = [taskdaemon(home, "replay", *args, cwd=home, stdin="") for args in given]
    said = "taskdaemon replay: --step runs nothing: {} on a replay that runs"
    assert [
        (2, "", [said.format("--from, --verify act")]),
        (2, "", [said.format("--input acts")]),
        (2, "", [said.format("--dry-run acts")]),
        (2, "", [said.format("FILE, --use-file act")]),
        (2, "", [said.format("-q acts")]),
    ] == [(r.returncode, r.stdout, r.stderr.splitlines()) for r in refused]
