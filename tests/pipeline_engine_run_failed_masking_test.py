"""A skip reason ``run failed: ...`` quotes the run's first failure, said before a value was
learnt as a secret: a stage that returns the value under ``token`` while the run stops (its
handler catches the cancellation) makes it known before the reason is made, at the run's end,
so the reason is masked in every view of the stored run."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from cli_support import pythonpath_with, start_ui, taskdaemon, write
from redaction_support import shown_everywhere
from taskdaemon.pipeline.redaction import REDACTED

LEARNT = "StoppingTok-55443322"  # said by ``early``'s error before ``fetch`` returns it

HANDLERS = f"""\
import asyncio

FETCHING = asyncio.Event()


async def early(ctx):
    await FETCHING.wait()
    raise RuntimeError("vault said {LEARNT}")


async def fetch(ctx):
    FETCHING.set()
    try:
        await asyncio.sleep(60)
    except asyncio.CancelledError:
        return {{"token": "{LEARNT}"}}
    return {{}}
"""

PIPELINE = """\
name: stopping
loops:
  early: {handler: "stopping_handlers:early"}
  fetch: {handler: "stopping_handlers:fetch"}
stages:
  - name: early
    loop: early
    triggers: [{manual: {approval_required: false}}]
  - name: fetch
    loop: fetch
    triggers: [{manual: {approval_required: false}}]
  - name: after
    command: "true"
    triggers: [{on_completion: {stage: early}}]
"""


@pytest.mark.slow
def test_a_run_failed_skip_reason_masks_a_value_learnt_while_the_run_stopped(
    home: Path, tmp_path: Path
) -> None:
    """``early`` fails saying the value; the run stops, and ``fetch``, cancelled, returns it
    under ``token``; ``after`` is skipped ``run failed: ...``: ``runs show``, its ``--json``,
    ``logs``, a dump, the store's rows and the web API's run show the reason masked, and the
    value nowhere."""
    write(home / "stopping_handlers.py", HANDLERS)
    pipeline = write(home / "stopping.yaml", PIPELINE)
    ran = taskdaemon(home, "run", str(pipeline), PYTHONPATH=pythonpath_with(home))
    (run_id,) = (line.split()[1] for line in ran.stdout.splitlines() if line.startswith("run "))
    shown = shown_everywhere(home, run_id, tmp_path)
    ui, url, token = start_ui(home)
    try:
        api = httpx.get(
            f"{url}/api/runs/{run_id}", headers={"authorization": f"Bearer {token}"}, timeout=30
        )
    finally:
        ui.terminate()
        ui.communicate(timeout=30)
    shown["run"] = ran.stdout
    shown["ui /api/runs/RUN"] = api.text
    (after,) = (s for s in api.json()["stages"] if s["name"] == "after")
    reason = f"run failed: stage 'early' failure: vault said {REDACTED}"
    assert (1, reason, True, True, []) == (
        ran.returncode,
        after["skip_reason"],
        reason in shown["runs show --json"],
        "vault said [REDACTED]" in shown["runs show"],
        [where for where, text in shown.items() if LEARNT in text],
    ), ran.stdout + ran.stderr
