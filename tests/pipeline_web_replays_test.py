"""A replay's run, as the web page and ``runs show`` name it: which run it replayed."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from browser_support import TOKEN, stored_runs_server
from pipeline_replay_support import Recording
from taskdaemon.pipeline.cli.run_tables import format_run_table
from taskdaemon.pipeline.record_fields import replace
from taskdaemon.pipeline.tracking import SpanStore
from taskdaemon.pipeline.visualization import dag_snapshot
from taskdaemon.pipeline.web._views import run_state


def test_a_replay_names_the_run_it_replayed_in_runs_show_and_on_its_page(tmp_path: Path) -> None:
    """A recorded run replayed for real: ``runs show`` says ``replay of ID``, the run page
    links the original, and a run that is no replay says neither; a ``replay_of`` that is no
    run id (a foreign producer's span) is not linked."""
    rec = Recording(tmp_path / "spans.db")
    try:
        original = rec.run()
        replay = rec.replay(original.run_id).run_id
    finally:
        rec.close()
    with SpanStore(tmp_path / "spans.db") as store:
        records = {run_id: store.get_run(run_id) for run_id in (original.run_id, replay)}

    async def pages() -> dict[str, str]:
        async with (
            stored_runs_server(tmp_path / "spans.db") as url,
            httpx.AsyncClient(headers={"authorization": f"Bearer {TOKEN}"}) as client,
        ):
            return {run_id: (await client.get(f"{url}/runs/{run_id}")).text for run_id in records}

    html = asyncio.run(pages())
    link = f'href="/runs/{original.run_id}"'
    said = f"replay of {original.run_id}"
    tables = {run_id: format_run_table(record).splitlines() for run_id, record in records.items()}
    assert (True, False, True, False) == (
        link in html[replay],
        link in html[original.run_id],
        said in tables[replay],
        any(line.startswith("replay of") for line in tables[original.run_id]),
    )
    forged = replace(records[replay], replay_of="javascript:x")
    state = run_state(dag_snapshot(None, forged), now=0.0, can_control=False)
    assert state["run"]["replay_of"] is None
