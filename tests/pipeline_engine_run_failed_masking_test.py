"""A skip reason ``run failed: ...`` quotes the run's first failure, said before a value was
learnt as a secret: a stage that returns the value under ``token`` while the run stops (its
handler catches the cancellation) makes it known before the reason is made, at the run's end,
so the reason is masked in every view of the stored run."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from cli_support import pythonpath_with, start_ui, taskdaemon, write
from taskdaemon.pipeline.redaction import REDACTED
from taskdaemon.pipeline.tracking.store import RetentionPolicy, SpanStore

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
def test_a_run_failed_skip_reason_masks_a_value_learnt_while_the_run_stopped(home: Path) -> None:
    """``early`` fails saying the value; the run stops, and ``fetch``, cancelled, returns it
    under ``token``; ``after`` is skipped ``run failed: ...``: ``runs show``, its ``--json``,
    the stored spans and the web API's run show the reason masked, and the value nowhere."""
    write(home / "stopping_handlers.py", HANDLERS)
    pipeline = write(home / "stopping.yaml", PIPELINE)
    ran = taskdaemon(home, "run", str(pipeline), PYTHONPATH=pythonpath_with(home))
    (run_id,) = (line.split()[1] for line in ran.stdout.splitlines() if line.startswith("run "))
    shown = taskdaemon(home, "runs", "show", run_id, "--wide")
    as_json = taskdaemon(home, "runs", "show", run_id, "--json")
    with SpanStore(home / "spans.db", retention=RetentionPolicy()) as store:
        spans = repr(store.get_trace(run_id))
    ui, url, token = start_ui(home)
    try:
        api = httpx.get(
            f"{url}/api/runs/{run_id}", headers={"authorization": f"Bearer {token}"}, timeout=30
        )
    finally:
        ui.terminate()
        ui.communicate(timeout=30)
    (after,) = (s for s in api.json()["stages"] if s["name"] == "after")
    reason = f"run failed: stage 'early' failure: vault said {REDACTED}"
    assert (1, reason, True, True, [False] * 5) == (
        ran.returncode,
        after["skip_reason"],
        reason in as_json.stdout,
        "vault said [REDACTED]" in shown.stdout,
        [LEARNT in text for text in (ran.stdout, shown.stdout, as_json.stdout, spans, api.text)],
    ), ran.stdout + ran.stderr + shown.stdout
