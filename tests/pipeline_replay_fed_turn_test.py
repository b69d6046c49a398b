"""What a replay's fed stage is held to while it waits its turn: not its timeout. Real
``taskdaemon run`` and ``replay`` processes over a pipeline file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from cli_support import pythonpath_with, taskdaemon, write

#: Handlers the pipelines below name: one that ends without awaiting, so no deadline, however
#: short, can end it in the recorded run.
_HANDLERS = """\
async def done(ctx):
    return {"n": 1}
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
    timeout (it does no work; a recorded timeout it hands on as recorded), and the replay
    ends as the record did: ``last``, run again, still under the pipeline's timeout."""
    (tmp_path / "fed.py").write_text(_HANDLERS)
    env = {"PYTHONPATH": pythonpath_with(tmp_path)}
    path = write(tmp_path / "wide.yaml", _wide(stage_timeout, pipeline_timeout))
    run = taskdaemon(home, "run", str(path), "-q", **env)
    replay = taskdaemon(home, "replay", run.stdout.strip(), "--from", "last", "-q", **env)
    new = next(line for line in replay.stdout.splitlines() if line.startswith("run "))
    shown = [_shown(home, run_id, **env) for run_id in (run.stdout.strip(), new.split()[1])]
    said = [(s["status"], s["error"], s["stages"][-1]["status"]) for s in shown]
    ended = 0 if last == "success" else 1
    assert (ended, ended) == (run.returncode, replay.returncode), run.stderr + replay.stdout
    assert said[0] == said[1]
    assert (["replayed"] * _WIDE, last) == (
        [stage["status"] for stage in shown[1]["stages"][:-1]],
        said[1][2],
    )
