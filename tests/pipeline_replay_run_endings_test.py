"""How a replay's fed stages end: in the order the record ended them. Real ``taskdaemon run``
and ``replay`` processes, each replay then replayed in turn: a replay of a replay tells the
same."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from cli_support import taskdaemon, write

#: ``b`` fails first, ``a`` after it, though ``a`` starts first (a file says ``b`` ended).
_CONTINUED = """\
    name: continued
    error_strategy: continue
    stages:
      - name: a
        command: "until [ -f b.done ]; do sleep 0.02; done; sleep 0.2; exit 3"
        triggers: [{manual: {approval_required: false}}]
      - name: b
        command: "touch b.done; exit 5"
        triggers: [{manual: {approval_required: false}}]
      - name: c
        command: "true"
        trigger_mode: all
        triggers:
          - on_completion: {stage: a, success_only: false}
          - on_completion: {stage: b, success_only: false}
"""


def _replayed(home: Path, run_id: str) -> tuple[str, str]:
    """``replay RUN --from c -q``: the replay's id and its exit line (``error: ...``)."""
    replay = taskdaemon(home, "replay", run_id, "--from", "c", "-q")
    lines = replay.stdout.splitlines()
    new = next(line for line in lines if line.startswith("run ")).split()[1]
    return new, next((line for line in lines if line.startswith("error: ")), "")


@pytest.mark.slow
def test_a_replay_s_first_failure_is_the_record_s(home: Path, tmp_path: Path) -> None:
    """Fed stages ended in the order they started, so the replay's first failure, its error,
    type and exit line, was ``a``'s where the record's was ``b``'s. They now end in the order
    the record ended them, and a replay of the replay tells ``b`` first too."""
    run = taskdaemon(home, "run", str(write(tmp_path / "continued.yaml", _CONTINUED)), "-q")
    old = run.stdout.strip()
    new, said = _replayed(home, old)
    newer, said_again = _replayed(home, new)

    def first_failure(run_id: str) -> tuple[Any, Any]:
        shown = json.loads(taskdaemon(home, "runs", "show", run_id, "--json").stdout)
        return shown["error"], shown["error_type"]

    error = "stage 'b' failure: command 'touch b.done; exit 5' exited with code 5"
    assert (error, "CommandFailedError") == first_failure(old), run.stderr
    assert first_failure(old) == first_failure(new) == first_failure(newer)
    assert [f"error: {error}"] * 2 == [said, said_again]
