"""A run one of whose spans holds a million events, links or attributes, in the store and in
an OTLP file.

The store is real: ``taskdaemon run`` records a run whose first stage prints a JSON output;
a copy of the file then has that stage's span rewritten with a million events (links, attributes) of
another tool ahead of its own, as a foreign writer, or someone crafting the file, could. Every
reader keeps a span's first thousand and those taskdaemon reads (``tracking.spans.bounded``):
the run reads back exactly as before, stage output included, and every view says how many
were not read. ``runs show`` runs in a real subprocess, its peak RSS read from the kernel.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from cli_support import start_ui, taskdaemon
from reliability_support import store_one_run, with_peak
from taskdaemon.pipeline.record_fields import replace
from taskdaemon.pipeline.tracking.otlp_json import encode_traces
from taskdaemon.pipeline.tracking.spans import MAX_SPAN_ITEMS, SpanEventRecord
from taskdaemon.pipeline.tracking.store import SpanStore

pytestmark = pytest.mark.slow

PIPELINE = """\
name: p
stages:
  - name: a
    command: "echo '{\\"x\\": 41}'"
    triggers: [{manual: {approval_required: false}}]
  - name: b
    command: "true"
    triggers: [{on_completion: {stage: a}}]
"""

MILLION = 1_000_000
#: What runs show says of a million foreign items on one span, the first thousand kept.
NOT_READ = MILLION - MAX_SPAN_ITEMS


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A real store holding one finished run of two command stages, and the run's id."""
    return store_one_run(tmp_path_factory.mktemp("store"), PIPELINE)


def _crafted(home: Path, source: Path, field: int) -> Path:
    """A copy of ``source`` whose stage ``a`` span holds a million foreign attributes
    (``field`` 5), events (6) or links (7) ahead of its own."""
    db = home / "crafted.db"
    shutil.copy(source, db)
    with sqlite3.connect(db) as conn:
        rowid, body = conn.execute(
            "SELECT rowid, body FROM spans WHERE end_ns IS NOT NULL AND body LIKE ? "
            "ORDER BY rowid LIMIT 1",
            ('%"cicd.pipeline.task.name":"a"%',),
        ).fetchone()
        fields = json.loads(body)
        if field == 5:
            fields[5] = {**{f"other.tool.{i}": i for i in range(MILLION)}, **fields[5]}
        else:
            if field == 6:
                more: list[Any] = [["other.tool.event", i, {"i": i}] for i in range(MILLION)]
            else:
                more = [["ab" * 16, f"{i:016x}", {"i": i}] for i in range(MILLION)]
            fields[field] = more + fields[field]
        conn.execute(
            "UPDATE spans SET body = ? WHERE rowid = ?",
            (json.dumps(fields, separators=(",", ":")), rowid),
        )
    conn.close()
    return db


def _show(home: Path, db: Path, run_id: str, *args: str) -> tuple[int, str, str, int]:
    done, peak = with_peak(
        home, "runs", "show", run_id, *args, TASKDAEMON_SPAN_SOURCE=f"sqlite:///{db}"
    )
    return done.returncode, done.stdout, done.stderr, peak


def _without_counts(run: dict[str, Any]) -> tuple[dict[str, Any], tuple[int, int, int]]:
    return (
        {k: v for k, v in run.items() if not k.endswith("_not_read")},
        (run["attributes_not_read"], run["events_not_read"], run["links_not_read"]),
    )


@pytest.mark.parametrize(
    ("field", "noun"), [(5, "span attributes"), (6, "span events"), (7, "span links")]
)
def test_runs_show_reads_the_run_as_before_says_what_it_left_and_stays_small(
    home: Path, stored: tuple[Path, str], field: int, noun: str
) -> None:
    """The table has one more line, ``not read``; the JSON is the run's, the stage's output
    included (its event is past the million), plus the count; the process stays under 200
    MiB, about twice the row's text (decoding the row whole took 560 MiB and more)."""
    db, run_id = stored
    crafted = _crafted(home, db, field)
    code, text, err, peak = _show(home, crafted, run_id)
    _, before, _, _ = _show(home, db, run_id)
    _, crafted_json, _, _ = _show(home, crafted, run_id, "--json")
    _, original_json, _, _ = _show(home, db, run_id, "--json")
    note = f"not read  {NOT_READ} {noun}, past the first {MAX_SPAN_ITEMS} a span"
    lines = text.splitlines()
    run, counts = _without_counts(json.loads(crafted_json))
    original = _without_counts(json.loads(original_json))
    outputs = run["stages"][0]["attempts"][0]["outputs"]
    assert (code, err, [line for line in lines if line != note], note in lines, peak < 200) == (
        0,
        "",
        before.splitlines(),
        True,
        True,
    )
    left = tuple(NOT_READ if i == field else 0 for i in (5, 6, 7))
    assert (run, counts, json.loads(outputs)) == (original[0], left, {"x": 41})


def test_the_web_pages_run_data_says_what_was_not_read(
    home: Path, stored: tuple[Path, str]
) -> None:
    """``/api/runs/RUN`` of ``taskdaemon ui`` over the crafted store carries the counts."""
    db, run_id = stored
    crafted = _crafted(home, db, 6)
    ui, url, token = start_ui(home, cwd=home, TASKDAEMON_SPAN_SOURCE=f"sqlite:///{crafted}")
    try:
        request = urllib.request.Request(
            f"{url}/api/runs/{run_id}", headers={"Authorization": f"Bearer {token}"}
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            answer = json.loads(response.read())
    finally:
        ui.terminate()
        ui.communicate(timeout=30)
    found = [value for key, value in _walk(answer) if key.endswith("_not_read")]
    assert sorted(found) == [0, 0, NOT_READ]


def _walk(value: Any) -> list[tuple[str, Any]]:
    """Every (key, value) pair at any depth of decoded JSON."""
    if isinstance(value, dict):
        return [(k, v) for k, v in value.items()] + [p for v in value.values() for p in _walk(v)]
    if isinstance(value, list):
        return [p for v in value for p in _walk(v)]
    return []


def test_an_otlp_file_with_a_million_events_on_a_span_reads_bounded(
    home: Path, stored: tuple[Path, str]
) -> None:
    """The run's spans as an OTLP JSON line, a million events added ahead of stage ``a``'s
    own (the remote sources' path: Tempo and Jaeger answers are decoded the same way)."""
    db, run_id = stored
    with SpanStore(db) as store:
        spans = store.get_trace(run_id)
    stage = next(
        i for i, span in enumerate(spans) if span.attributes.get("cicd.pipeline.task.name") == "a"
    )
    more = tuple(SpanEventRecord("other.tool.event", i, {}) for i in range(MILLION))
    spans[stage] = replace(spans[stage], events=more + tuple(spans[stage].events))
    path = home / "traces.json"
    path.write_text(json.dumps(encode_traces(spans), separators=(",", ":")) + "\n")
    done = taskdaemon(home, "runs", "show", run_id, "--json", "--source", f"otlp-json://{path}")
    run = json.loads(done.stdout) if done.returncode == 0 else {}
    outputs = run.get("stages", [{}])[0].get("attempts", [{}])[0].get("outputs") or "null"
    assert (done.returncode, done.stderr, run.get("events_not_read"), json.loads(outputs)) == (
        0,
        "",
        NOT_READ,
        {"x": 41},
    )
