"""What a replay's fed stage is held to while it waits its turn (not its timeout), and what a
replay of that replay makes of it. Real ``taskdaemon run`` and ``replay`` processes over a
pipeline file."""

from __future__ import annotations

import json
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cli_support import (
    Served,
    dumped_while_running,
    pythonpath_with,
    taskdaemon,
    wait_until_stored,
    write,
)

#: Handlers the pipelines below name: one that ends without awaiting, so no deadline, however
#: short, can end it in the recorded run; one that publishes an event and fails on its first
#: attempt only; one that publishes three and one that fails at once.
_HANDLERS = """\
async def done(ctx):
    return {"n": 1}


async def parts(ctx):
    for index in range(3):
        ctx.publish("part", {"index": index})
    return {"n": 3}


async def bad(ctx):
    raise ValueError("bad part")


async def flaky(ctx):
    ctx.publish("part", {"attempt": ctx.attempt})
    if ctx.attempt == 1:
        raise RuntimeError("first attempt")
    return {"n": ctx.attempt}
"""

#: Fed stages that all start at once: the first to reach its turn waits for the others to reach
#: theirs, which takes longer than its timeout (a millisecond).
_WIDE = 60


def _wide(stage_timeout: str, pipeline_timeout: str) -> str:
    """``_WIDE`` stages of ``fed.done`` (each with ``stage_timeout``), then ``last`` (a command,
    which no millisecond is enough for) after them all, under ``pipeline_timeout``."""
    fed = "".join(
        f"  - {{name: s{i}, handler: 'fed:done'{stage_timeout}, {_ENTRY}}}\n" for i in range(_WIDE)
    )
    after = "".join(f"      - on_completion: {{stage: s{i}}}\n" for i in range(_WIDE))
    return (
        f"name: wide\nconcurrency: {_WIDE}\n{pipeline_timeout}stages:\n{fed}"
        f"  - name: last\n    command: 'true'\n    trigger_mode: all\n"
        f"    triggers:\n{after}"
    )


_ENTRY = "triggers: [{manual: {approval_required: false}}]"


def _handlers(folder: Path) -> dict[str, str]:
    """``_HANDLERS`` written as ``fed.py`` in ``folder``: the environment that imports it."""
    (folder / "fed.py").write_text(_HANDLERS)
    return {"PYTHONPATH": pythonpath_with(folder)}


def _replayed(home: Path, run_id: str, *args: str, **env: str) -> tuple[str, list[str]]:
    """``replay RUN ARGS``: the replay's id and its lines on stdout."""
    lines = taskdaemon(home, "replay", run_id, *args, **env).stdout.splitlines()
    return next(line for line in lines if line.startswith("run ")).split()[1], lines


def _shown(home: Path, run_id: str, **env: str) -> dict[str, Any]:
    """``runs show RUN --json``."""
    shown: dict[str, Any] = json.loads(
        taskdaemon(home, "runs", "show", run_id, "--json", **env).stdout
    )
    return shown


@pytest.mark.slow
@pytest.mark.parametrize(
    ("stage_timeout", "pipeline_timeout", "last"),
    [(", timeout: 0.001", "", "success"), ("", "timeout: 0.001\n", "timeout")],
    ids=["stage-timeout", "pipeline-timeout"],
)
def test_a_fed_stage_does_not_time_out_while_it_waits_its_turn(
    home: Path, tmp_path: Path, stage_timeout: str, pipeline_timeout: str, last: str
) -> None:
    """Many fed stages wait their turns at once, each under a timeout (its own, or the
    pipeline's) far shorter than the wait: the deadline measured the wait, and the replay
    ended a stage ``timeout`` that the record saw succeed. A fed stage now runs with no
    timeout (it does no work; a recorded timeout it hands on as recorded): every one is
    ``replayed``, and ``last``, run again, is still under the pipeline's timeout.

    The recorded run has no timeouts and the replay runs the file with them (``--use-file``):
    a millisecond was once the recorded run's own deadline too, and its first stages, which
    load modules taskdaemon imports on first use, timed out where those modules had no
    compiled ``.pyc`` (a worktree under ``PYTHONDONTWRITEBYTECODE``)."""
    env = _handlers(tmp_path)
    recorded = write(tmp_path / "wide.yaml", _wide("", ""))
    timed = write(tmp_path / "timed.yaml", _wide(stage_timeout, pipeline_timeout))
    run = taskdaemon(home, "run", str(recorded), "-q", **env)
    assert run.returncode == 0, run.stderr
    replay = taskdaemon(
        home,
        "replay",
        run.stdout.strip(),
        str(timed),
        "--use-file",
        "--from",
        "last",
        "-q",
        **env,
    )
    shown = _shown(home, replay.stdout.strip(), **env)  # -q: the replay's run id alone
    assert (0 if last == "success" else 1) == replay.returncode, replay.stderr + replay.stdout
    assert (["replayed"] * _WIDE, last) == (
        [stage["status"] for stage in shown["stages"][:-1]],
        shown["stages"][-1]["status"],
    )


#: ``a`` fails its first attempt and succeeds its second, publishing an event in each.
_RETRIED = """\
    name: retried
    stages:
      - name: a
        handler: "fed:flaky"
        emits: [part]
        retry: {max_attempts: 2, backoff: {initial: 0.01, factor: 1, max: 0.01}}
        triggers: [{manual: {approval_required: false}}]
      - {name: b, command: "true", triggers: [{on_completion: {stage: a}}]}
"""


@pytest.mark.slow
def test_a_replay_of_a_replay_that_fed_a_retried_stage_verifies_clean(
    home: Path, tmp_path: Path
) -> None:
    """A replay fed ``a`` in one execution standing for the record's two attempts. Replayed
    whole with ``--verify``, that replay's ``a`` retried as the first run's did, yet verify
    said its first attempt diverged (``success → failure``) and its second ran in the replay
    only. The fed execution is now compared with the last attempt it stood for, and with
    the events of all of them."""
    env = _handlers(tmp_path)
    run = taskdaemon(home, "run", str(write(tmp_path / "retried.yaml", _RETRIED)), "-q", **env)
    fed, _lines = _replayed(home, run.stdout.strip(), "--from", "b", **env)
    _again, lines = _replayed(home, fed, "--verify", **env)
    shown = _shown(home, fed, **env)
    assert (0, ["replayed", "success"]) == (
        run.returncode,
        [stage["status"] for stage in shown["stages"]],
    ), run.stderr
    assert lines[-1].startswith("verify: no divergence in 2 executions run again"), lines


#: ``build`` fires three ``check`` instances; the first fails at once and stops the run before
#: the others start, so the record has one instance of ``check``.
_STOPPED_FAN = """\
    name: stopped
    stages:
      - name: build
        handler: "fed:parts"
        emits: [part]
        triggers: [{manual: {approval_required: false}}]
      - name: check
        handler: "fed:bad"
        parallel_instances: 2
        triggers: [{on_event: {type: part}}]
      - {name: pack, command: "true", triggers: [{on_completion: {stage: check}}]}
"""


@pytest.mark.slow
def test_a_fed_instance_the_record_lacks_ends_after_the_recorded_ones(
    home: Path, tmp_path: Path
) -> None:
    """Replayed from ``pack``, the fed ``build`` fires a second ``check`` instance the record
    does not have. Its stand-in failed at once, before the recorded failure of the first had
    its turn, so the replay's error was ``no instance 1`` where the record's was the first
    instance's. It now waits until every recorded ending has had its turn: the recorded
    failure stops the replay as it stopped the original, and cancels it."""
    env = _handlers(tmp_path)
    run = taskdaemon(home, "run", str(write(tmp_path / "stopped.yaml", _STOPPED_FAN)), "-q", **env)
    new, lines = _replayed(home, run.stdout.strip(), "--from", "pack", **env)
    shown = [_shown(home, run_id, **env) for run_id in (run.stdout.strip(), new)]
    checks = [
        (attempt["instance"], attempt["status"], attempt["error"])
        for attempt in shown[1]["stages"][1]["attempts"]
    ]
    assert ("stage 'check' failure: bad part", 1) == (
        shown[0]["error"],
        len(shown[0]["stages"][1]["attempts"]),
    ), run.stderr
    assert [shown[0]["error"]] * 2 == [shown[1]["error"], lines[-2].removeprefix("error: ")]
    assert [
        (0, "replayed", "bad part"),
        (1, "cancelled", "cancelled: stage 'check' failed (error_strategy: fail)"),
    ] == checks


#: ``b`` runs until cancelled; ``c`` comes after it.
_GOING = """\
    name: going
    stages:
      - {name: a, command: "true", triggers: [{manual: {approval_required: false}}]}
      - {name: b, command: "sleep 60", triggers: [{on_completion: {stage: a}}]}
      - {name: c, command: "true", triggers: [{on_completion: {stage: b}}]}
"""


@pytest.mark.slow
def test_a_stage_the_record_has_no_end_of_is_missing_not_fed(
    home: Path, tmp_path: Path, serve: Callable[..., Served]
) -> None:
    """Replayed from ``c`` while ``b`` still runs (or after its run was killed), the plan fed
    ``b`` an outcome the record does not have: its stand-in failed (``recorded as running``),
    and ``c``, the stage asked for, was skipped, every time. The plan now names ``b``'s end
    as missing and how to do without it, before anything runs."""
    served = serve(str(write(tmp_path / "going.yaml", _GOING)))
    served.wait_for_line(" started ")
    wait_until_stored(home, served.run_id, "b")
    replays = [
        taskdaemon(home, "replay", served.run_id, "--from", "c", *args)
        for args in ([], ["--dry-run"])
    ]
    taskdaemon(home, "cancel", served.run_id)
    served.finish()
    missing = (
        "the end of b.0.1: the record stops while it runs (the run is still going, or it was "
        "interrupted); supply it with --from b (run it again)"
    )
    assert [(2, f"  {missing}"), (2, f"missing: {missing}")] == [
        (replays[0].returncode, replays[0].stderr.splitlines()[-1]),
        (replays[1].returncode, replays[1].stdout.splitlines()[-1]),
    ], [replay.stdout + replay.stderr for replay in replays]


#: ``f``, fed from ``a``, has outputs, a retry policy and a timeout; ``a`` waits for a file.
_WAITS = """\
    name: waits
    timeout: 30
    stages:
      - name: f
        command: "echo '{\\"v\\": 1}'"
        outputs: {v: result.v}
        retry: {max_attempts: 2}
        timeout: 20
        triggers: [{manual: {approval_required: false}}]
      - name: a
        command: "while [ ! -e %s ]; do sleep 0.05; done"
        triggers: [{on_completion: {stage: f}}]
"""


def _dumped_definition(path: Path) -> Any:
    """The ``definition.json`` of the dump at ``path``."""
    with tarfile.open(path, "r:gz") as archive:
        member = archive.extractfile("definition.json")
        assert member is not None
        return json.loads(member.read())


@pytest.mark.slow
def test_a_dump_of_a_live_replay_holds_the_definition_replayed(home: Path, tmp_path: Path) -> None:
    """SIGUSR1 to a replay dumped the definition its engine runs, in which the fed ``f`` has
    no outputs mapping, one attempt and (since fed stages wait their turn untimed) no timeout,
    and the pipeline's timeout is on each stage: not the definition replayed, which its run
    span records and a dump of the ended replay holds. It now dumps the replayed one."""
    go = tmp_path / "go"
    go.touch()
    recorded = taskdaemon(home, "run", str(write(tmp_path / "waits.yaml", _WAITS % go)), "-q")
    go.unlink()
    code, out, dump = dumped_while_running(
        home, go, "replay", recorded.stdout.strip(), "--from", "a"
    )
    replayed = next(line for line in out.splitlines() if line.startswith("run ")).split()[1]
    ended = taskdaemon(home, "dump", replayed, "-o", str(tmp_path / "ended.tar.gz"))
    assert (0, 0) == (code, ended.returncode), out + ended.stderr
    live, after = _dumped_definition(dump), _dumped_definition(tmp_path / "ended.tar.gz")
    assert (after["stages"], after["timeout"]) == (live["stages"], live["timeout"])
    fed = live["stages"][0]
    assert (30, 20, [{"name": "v", "required": True, "source": "result.v"}], 2) == (
        live["timeout"],
        fed["timeout"],
        fed["outputs"],
        fed["retry"]["max_attempts"],
    )
