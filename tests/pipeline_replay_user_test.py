"""``taskdaemon replay`` as a user tries it: options that act only beside another are refused
when alone, and a run cancelled while it waited for an approval replays with no decision read
into the engine's withdrawal, saying that the cancellation is not repeated. Real processes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from cli_support import taskdaemon, write
from pipeline_replay_support import TWO_STAGES


def _run_ids(home: Path) -> list[str]:
    return [run["run_id"] for run in json.loads(taskdaemon(home, "runs", "list", "--json").stdout)]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("option", "said"),
    [
        ("--json", "--json needs --verify (it prints --verify's report as JSON)"),
        ("--rerun-all", "--rerun-all needs --from (without it every stage runs again)"),
        ("--use-file", "--use-file needs FILE (the definition file to run instead)"),
    ],
)
def test_an_option_that_needs_another_is_refused_alone(
    home: Path, tmp_path: Path, option: str, said: str
) -> None:
    """``replay RUN --json`` ran the whole replay and printed its table, no JSON; ``--rerun-all``
    without ``--from`` and ``--use-file`` without FILE were ignored as silently. Each is now
    one line, exit 2, and nothing runs."""
    path = str(write(tmp_path / "two.yaml", TWO_STAGES))
    old = taskdaemon(home, "run", path, "-q").stdout.strip()
    refused = taskdaemon(home, "replay", old, option)
    assert (2, "", [f"taskdaemon replay: {said}"]) == (
        refused.returncode,
        refused.stdout,
        refused.stderr.splitlines(),
    )
    assert [old] == _run_ids(home)


@pytest.mark.slow
def test_a_dry_run_refuses_what_acts_only_while_a_replay_runs(home: Path, tmp_path: Path) -> None:
    """``replay RUN --json --dry-run --verify`` printed the dry run as text, compared nothing
    and said nothing of either option. A dry run has no report to give as JSON: each option that
    acts only while a replay runs is refused in one line naming them, exit 2, and nothing runs;
    the options that shape the plan are still the dry run's."""
    path = str(write(tmp_path / "two.yaml", TWO_STAGES))
    old = taskdaemon(home, "run", path, "-q").stdout.strip()
    given = [
        ("--json", "--dry-run", "--verify"),
        ("--dry-run", "--json"),
        ("--from", "b", "--dry-run", "--workspace", str(tmp_path), "--break", "b"),
        ("--dry-run", "--break-on-failure"),
    ]
    refused = [taskdaemon(home, "replay", old, *args) for args in given]
    said = "taskdaemon replay: --dry-run runs nothing: {} on a replay that runs"
    assert [
        (2, "", [said.format("--verify, --json act")]),
        (2, "", [said.format("--json acts")]),
        (2, "", [said.format("--workspace, --break act")]),
        (2, "", [said.format("--break-on-failure acts")]),
    ] == [(r.returncode, r.stdout, r.stderr.splitlines()) for r in refused]
    dry = taskdaemon(home, "replay", old, "--from", "b", "--dry-run")
    assert (0, f"replay of run {old} (two), nothing executed:") == (
        dry.returncode,
        dry.stdout.splitlines()[0],
    ), dry
    assert [old] == _run_ids(home)


#: ``b`` waits for an approval after ``a``: the run is cancelled while it waits.
_GATED = """\
    name: gated
    stages:
      - name: a
        command: "true"
        triggers: [{manual: {approval_required: false}}]
      - name: b
        command: "true"
        trigger_mode: all
        triggers: [{on_completion: {stage: a}}, {manual: {approval_required: true}}]
"""


@pytest.mark.slow
@pytest.mark.parametrize("args", [(), ("--from", "b")], ids=["whole", "from-b"])
def test_a_run_cancelled_at_an_approval_replays_with_no_decision_read_into_it(
    home: Path, tmp_path: Path, serve: Any, args: tuple[str, ...]
) -> None:
    """Cancelled while ``b`` waited for its approval, the run's record has the engine's
    withdrawal of the request, which the replay read as a decision: ``approval rejected by
    replay (engine)``. It now finds no recorded decision, says so as for any approval nobody
    gave, and says once, in the dry run too, that the cancellation is not repeated."""
    served = serve(str(write(tmp_path / "gated.yaml", _GATED)))
    served.wait_for_line("waiting for approval")
    assert 0 == taskdaemon(home, "cancel", served.run_id, "--by", "alice").returncode
    assert 1 == served.finish()[0]
    dry = taskdaemon(home, "replay", served.run_id, *args, "--dry-run")
    replay = taskdaemon(home, "replay", served.run_id, *args)
    said = f"{dry.stdout}{dry.stderr}{replay.stdout}{replay.stderr}"
    note = (
        f"note: run {served.run_id} was cancelled (run cancelled by alice): a replay does not "
        "repeat a cancellation from outside, so the stages it runs go on to their end (only a "
        "fed stage the cancellation caught stops it again)"
    )
    assert (0, 0) == (dry.returncode, replay.returncode), said
    assert [note] == [line for line in dry.stderr.splitlines() if "was cancelled" in line]
    assert [note] == [line for line in replay.stderr.splitlines() if "was cancelled" in line]
    [b] = [line for line in replay.stdout.splitlines() if line.startswith("b ")]
    assert b.split(maxsplit=6)[1:] == [
        "skipped", "-", "-", "-", "-", "approval rejected by replay (no recorded decision)",
    ], said  # fmt: skip
