"""``tracking._remask.Remask`` row by row: which of a run's stored log and span rows are masked
again, how each column is masked, and how many rows it says it changed. The rows are written
by the real log writer and span processor into a real SQLite store before the values are
known; ``apply`` then runs in a transaction of the test's own connection."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from taskdaemon.pipeline import telemetry as t
from taskdaemon.pipeline.log_rows import Row
from taskdaemon.pipeline.redaction import REDACTED
from taskdaemon.pipeline.secret_values import remember_secrets
from taskdaemon.pipeline.tracking import SqliteSpanProcessor
from taskdaemon.pipeline.tracking._remask import Remask
from taskdaemon.pipeline.tracking.log_read import OUTPUT_SCOPE
from taskdaemon.pipeline.tracking.log_writer import SqliteLogWriter

RUN = "a" * 32
OTHER = "b" * 32
PLAIN = "plain-s3cr3t-4242"
#: Its JSON text differs from it: ``quo\\"ted-s3cr3t``.
QUOTED = 'quo"ted-s3cr3t'
QUOTED_JSON = 'quo\\"ted-s3cr3t'
#: The attributes' JSON writes it ``z\\u00fcrich-s3cr3t``.
BEYOND_ASCII = "zürich-s3cr3t"


def _row(run_id: str, scope: str, body: str, attributes: str) -> Row:
    """A row with its attributes already encoded (the writer inserts them as they are)."""
    return (run_id, 1, 9, "INFO", "p", "s", 0, 1, None, scope, body, attributes)


def _store(path: Path, rows: list[Row]) -> None:
    writer = SqliteLogWriter(path)
    try:
        writer.write_rows(rows)
        assert writer.flush()
    finally:
        writer.close()


def _apply(path: Path, remask: Remask) -> tuple[int, list[tuple[str, str, str]]]:
    """``remask`` applied in one transaction; what it said and the rows after, in order."""
    with sqlite3.connect(path, isolation_level=None) as conn:
        conn.execute("BEGIN IMMEDIATE")
        changed = remask.apply(conn)
        conn.execute("COMMIT")
        rows = conn.execute("SELECT trace_id, body, attributes FROM logs ORDER BY id").fetchall()
    conn.close()
    return changed, rows


def test_each_row_is_masked_in_the_columns_holding_a_value_and_only_those_are_counted(
    tmp_path: Path,
) -> None:
    """A batch of lines is masked line by line, another body by ``redact_text``, attributes
    holding a value (as written or as their JSON escapes it) decoded, redacted and encoded
    again; attributes holding none keep their text byte for byte (not encoded again), text
    that is not JSON is left alone, and the other run's rows and rows holding no value are not
    touched. The count is the rows changed."""
    path = tmp_path / "spans.db"
    rows = [
        _row(RUN, "app", "nothing to see first", '{"n":0}'),
        _row(RUN, OUTPUT_SCOPE, f"first line\ngot {PLAIN}\nlast line", '{"stream":"stdout"}'),
        _row(RUN, "app", f"fetched {PLAIN} from the vault", '{"n":1}'),
        _row(RUN, "app", "a plain message", f'{{"used":"{QUOTED_JSON}","n":2}}'),
        _row(RUN, "app", "another plain message", f'{{"used":"{PLAIN}"}}'),
        _row(RUN, "app", "a message", '{"used":"z\\u00fcrich-s3cr3t"}'),
        _row(RUN, "app", "not json attributes", f"<{PLAIN}>"),
        _row(RUN, "app", "nothing to see", '{"n":3}'),
        _row(OTHER, "app", f"fetched {PLAIN} too", f'{{"used":"{PLAIN}"}}'),
    ]
    _store(path, rows)
    remember_secrets({"token": PLAIN, "password": QUOTED, "api_key": BEYOND_ASCII})

    changed, stored = _apply(path, Remask(RUN, (PLAIN, QUOTED, BEYOND_ASCII)))

    assert [
        (RUN, "nothing to see first", '{"n":0}'),
        (RUN, f"first line\ngot {REDACTED}\nlast line", '{"stream":"stdout"}'),
        (RUN, f"fetched {REDACTED} from the vault", '{"n":1}'),
        (RUN, "a plain message", f'{{"used": "{REDACTED}", "n": 2}}'),
        (RUN, "another plain message", f'{{"used": "{REDACTED}"}}'),
        (RUN, "a message", f'{{"used": "{REDACTED}"}}'),
        (RUN, "not json attributes", f"<{PLAIN}>"),
        (RUN, "nothing to see", '{"n":3}'),
        (OTHER, f"fetched {PLAIN} too", f'{{"used":"{PLAIN}"}}'),
    ] == stored
    assert 5 == changed


MULTI = "multi-line\ns3cr3t-value"


@pytest.mark.parametrize(
    ("values", "lines_after"),
    [
        ((MULTI, PLAIN), f"x {REDACTED}\n{REDACTED}\n\ny"),
        ((MULTI,), f"x {PLAIN}\n{REDACTED}\n\ny"),
    ],
)
def test_a_value_holding_a_line_break_is_masked_whole_in_a_body_and_in_a_batch(
    tmp_path: Path, values: tuple[str, ...], lines_after: str
) -> None:
    """A value spanning two lines: a handler's message holding it loses it whole; a batch of
    captured lines (one read of a pipe: a program printed the value over two of them) loses
    it too and keeps its four lines, the marker on the first the value spanned; a value on one
    line, when it is one of those masked again, is masked in its line."""
    path = tmp_path / "spans.db"
    lines = f"x {PLAIN}\n{MULTI}\ny"
    _store(path, [_row(RUN, OUTPUT_SCOPE, lines, "{}"), _row(RUN, "app", f"said {MULTI}", "{}")])
    remember_secrets({"token": values[-1], "api_key": MULTI})

    changed, stored = _apply(path, Remask(RUN, values))

    assert (2, [lines_after, f"said {REDACTED}"]) == (
        changed,
        [body for _, body, _ in stored],
    )


def test_in_a_batch_a_value_holding_another_is_masked_whole(tmp_path: Path) -> None:
    """Two values, one inside the other, given shortest first: the longer is masked whole,
    not cut into a marker and the rest of it."""
    path = tmp_path / "spans.db"
    short, long = "s3cr3t-part", "a-s3cr3t-part-and-more"  # the shorter sorts first
    _store(path, [_row(RUN, OUTPUT_SCOPE, f"one {long}\ntwo {short}", "{}")])
    remember_secrets({"token": short, "password": long})

    changed, stored = _apply(path, Remask(RUN, (short, long)))

    assert (1, f"one {REDACTED}\ntwo {REDACTED}") == (changed, stored[0][1])


def test_the_run_s_span_rows_holding_a_value_are_rewritten_redacted_and_counted(
    tmp_path: Path,
) -> None:
    """Spans written by the span processor before the values were known: the run's span
    holding a value (as its JSON escapes it) is rewritten redacted, its other span and the
    other run's span holding the same value stay as they were; the count adds the span to
    the log row changed."""
    path = tmp_path / "spans.db"
    provider = TracerProvider()
    provider.add_span_processor(SqliteSpanProcessor(path))
    tracer = provider.get_tracer(t.SCOPE_NAME)
    runs = []
    try:
        for _ in range(2):
            root = tracer.start_span(t.run_span_name("p"), attributes={t.CICD_PIPELINE_NAME: "p"})
            run_id = format(root.get_span_context().trace_id, "032x")
            root.set_attribute(t.CICD_PIPELINE_RUN_ID, run_id)
            with trace.use_span(root, end_on_exit=True):
                tracer.start_span("fetch", attributes={"note": f"got {QUOTED}"}).end()
            runs.append(run_id)
        assert provider.force_flush()
    finally:
        provider.shutdown()
    _store(path, [_row(runs[0], "app", f"got {QUOTED}", "{}")])
    remember_secrets({"password": QUOTED})
    before = _span_bodies(path)

    changed, stored = _apply(path, Remask(runs[0], (QUOTED,)))

    after = _span_bodies(path)
    fetched = (runs[0], "fetch")
    assert (2, [f"got {REDACTED}"]) == (changed, [body for _, body, _ in stored])
    assert f'{{"note":"got {QUOTED_JSON}"}}' in before[fetched]
    assert before[fetched].replace(QUOTED_JSON, REDACTED) == after[fetched]
    assert {k: v for k, v in before.items() if k != fetched} == {
        k: v for k, v in after.items() if k != fetched
    }
    assert 4 == len(after)


def test_a_value_beyond_ascii_holding_a_quote_is_found_in_the_run_s_spans(
    tmp_path: Path,
) -> None:
    """The spans' JSON keeps ``ü`` as it is and escapes the quote: neither the value as
    written nor the attributes' JSON of it (``\\u00fc``) is in the row, yet it is masked (its
    attributes are the body's sixth field)."""
    path = tmp_path / "spans.db"
    value = 'zürich"s3cr3t-9'
    provider = TracerProvider()
    provider.add_span_processor(SqliteSpanProcessor(path))
    tracer = provider.get_tracer(t.SCOPE_NAME)
    try:
        root = tracer.start_span(t.run_span_name("p"), attributes={t.CICD_PIPELINE_NAME: "p"})
        run_id = format(root.get_span_context().trace_id, "032x")
        with trace.use_span(root, end_on_exit=True):
            tracer.start_span("fetch", attributes={"note": f"got {value}"}).end()
        assert provider.force_flush()
    finally:
        provider.shutdown()
    remember_secrets({"password": value})

    changed, _ = _apply(path, Remask(run_id, (value,)))

    fetched = json.loads(_span_bodies(path)[run_id, "fetch"])
    assert (1, {"note": f"got {REDACTED}"}) == (changed, fetched[5])


def _span_bodies(path: Path) -> dict[tuple[str, str], str]:
    """Each stored span's JSON body by its run and name."""
    with sqlite3.connect(path) as conn:
        spans = conn.execute("SELECT trace_id, body FROM spans JOIN traces USING (trace_no)")
        bodies = {(run_id, json.loads(body)[1].split()[0]): body for run_id, body in spans}
    conn.close()
    return bodies
