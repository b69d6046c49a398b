"""Debug dumps written in-process (``dump.py``'s ``write_dump``): each member, the manifest and
its notes of what is missing, redaction of the definition, engine state and settings, the
archive's members and modes, Graphviz's part, the default file name and the stored logs.

``pipeline_debug_dump_test.py`` drives the same code through the CLI, in subprocesses."""

from __future__ import annotations

import asyncio
import hashlib
import importlib.metadata
import io
import json
import platform
import re
import stat
import sys
import tarfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from pipeline_engine_support import Resolver, after, pipeline, stage
from pipeline_tracking_support import run_into_store
from taskdaemon import __version__
from taskdaemon.pipeline import telemetry as t
from taskdaemon.pipeline.dump import default_dump_path, dump_output, stored_logs, write_dump
from taskdaemon.pipeline.log_rows import LogRow
from taskdaemon.pipeline.model import LoopDef, RetryPolicy
from taskdaemon.pipeline.payloads import PayloadCapture
from taskdaemon.pipeline.record_fields import as_dict, replace
from taskdaemon.pipeline.tracking import SpanStore, encode_traces, reconstruct_run
from taskdaemon.pipeline.tracking.log_read import read_logs
from taskdaemon.pipeline.tracking.log_writer import SqliteLogWriter
from taskdaemon.pipeline.tracking.otlp_logs import encode_logs
from taskdaemon.pipeline.tracking.spans import SpanRecord
from taskdaemon.pipeline.visualization import render_dot

DUMPED = pipeline(
    stage("a", timeout=2.5, retry=RetryPolicy(max_attempts=2)),
    stage("b", *after("a", success_only=False)),
    name="dumped",
    loops={"sh": LoopDef("sh", command="sh -c")},
)

#: The notes of a dump given only its spans (no definition recorded), with no Graphviz.
ALL_MISSING = [
    "logs.otlp.json: the writer had no log records",
    "definition.json: the run's spans hold no whole definition",
    "dag.svg: Graphviz's dot is not installed (Debian: apt install graphviz)",
    "engine.json: the run is not live in the writing process",
    "metrics.prom: the writing process has no Prometheus registry",
]


class Settings:
    """Stands in for the settings: a dump reads only ``as_json()``."""

    def __init__(self, values: dict[str, Any]) -> None:
        self.values = values

    def as_json(self) -> dict[str, Any]:
        return dict(self.values)


@pytest.fixture
def stored(tmp_path: Path) -> tuple[Path, str]:
    """DUMPED run through the real engine and monitor into an embedded store."""
    db = tmp_path / "spans.db"
    return db, asyncio.run(run_into_store(db, DUMPED, Resolver()))


@pytest.fixture
def spans(stored: tuple[Path, str]) -> list[SpanRecord]:
    """The stored run's spans."""
    db, run_id = stored
    with SpanStore(db) as store:
        return store.get_trace(run_id)


@pytest.fixture
def bare_spans(spans: list[SpanRecord]) -> list[SpanRecord]:
    """The stored run's spans, its run span without the definition it recorded (as with
    ``TASKDAEMON_CAPTURE_MAX_BYTES=0``)."""
    return [
        replace(
            span,
            attributes={k: v for k, v in span.attributes.items() if k != t.PIPELINE_DEFINITION},
        )
        for span in spans
    ]


@pytest.fixture
def no_dot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A PATH without Graphviz's ``dot``."""
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))


def fake_dot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, body: str) -> Path:
    """A ``dot`` on PATH running the shell ``body``; returns its folder."""
    folder = tmp_path / "fake-bin"
    folder.mkdir()
    script = folder / "dot"
    script.write_text(f"#!/bin/sh\n{body}\n")
    script.chmod(0o755)
    monkeypatch.setenv("PATH", str(folder))
    return folder


def members(path: Path) -> dict[str, bytes]:
    """Every member of a dump, by name."""
    with tarfile.open(path, "r:gz") as archive:
        return {
            m.name: archive.extractfile(m).read()  # type: ignore[union-attr]
            for m in archive.getmembers()
        }


def member_json(path: Path, name: str) -> Any:
    """Member ``name`` of a dump, read as JSON."""
    return json.loads(members(path)[name])


def dump(tmp_path: Path, spans: list[SpanRecord], **extra: Any) -> Path:
    """``write_dump`` of the stored run into ``tmp_path/d.tar.gz``."""
    return write_dump(tmp_path / "d.tar.gz", spans[0].trace_id, spans, **extra)


def test_a_run_without_spans_is_refused(tmp_path: Path) -> None:
    """No spans: ValueError naming the run, and no file."""
    with pytest.raises(ValueError, match=r"^no spans of run r1: nothing to dump$"):
        write_dump(tmp_path / "d.tar.gz", "r1", [])
    assert [] == list(tmp_path.iterdir())


def test_the_manifest_lists_every_other_member_with_its_size_and_hash(
    tmp_path: Path, spans: list[SpanRecord]
) -> None:
    """The manifest's ``files`` give each other member's size and sha256."""
    found = members(dump(tmp_path, spans))
    manifest = json.loads(found.pop("manifest.json"))
    expected = {
        name: {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
        for name, data in found.items()
    }
    assert expected == manifest["files"]


@pytest.mark.usefixtures("no_dot")
def test_the_manifest_names_the_run_and_notes_every_missing_member(
    tmp_path: Path, bare_spans: list[SpanRecord]
) -> None:
    """Given only spans that recorded no definition, and no Graphviz, the manifest names the
    format, the run, its pipeline and status, and notes each member it lacks."""
    manifest = member_json(dump(tmp_path, bare_spans), "manifest.json")
    del manifest["files"], manifest["created_at"]
    assert {
        "format": "taskdaemon-dump",
        "version": 1,
        "run_id": bare_spans[0].trace_id,
        "pipeline": "dumped",
        "status": "success",
        "notes": ALL_MISSING,
    } == manifest


@pytest.mark.usefixtures("no_dot")
def test_a_dump_of_spans_only_holds_the_members_it_always_has(
    tmp_path: Path, bare_spans: list[SpanRecord]
) -> None:
    """Given only spans that recorded no definition, and no Graphviz: manifest, spans, run
    record, empty logs, the DAG in DOT, and the environment."""
    assert [
        "manifest.json",
        "spans.otlp.json",
        "run.json",
        "logs.otlp.json",
        "dag.dot",
        "environment.json",
    ] == list(members(dump(tmp_path, bare_spans)))


def test_without_the_pipeline_the_definition_is_the_one_the_run_span_recorded(
    tmp_path: Path, spans: list[SpanRecord]
) -> None:
    """A dump written from the store alone (``taskdaemon dump`` of an ended run) holds the
    definition its run span recorded, as the pipeline given would be dumped, and notes
    nothing of it; the DAG is drawn over it."""
    given = members(dump(tmp_path / "given", spans, pipeline=DUMPED))
    alone = members(dump(tmp_path / "alone", spans))
    notes = json.loads(alone["manifest.json"])["notes"]
    assert (given["definition.json"], given["dag.dot"], []) == (
        alone["definition.json"],
        alone["dag.dot"],
        [note for note in notes if "definition" in note],
    )


def test_the_spans_member_is_the_runs_spans_as_otlp_json(
    tmp_path: Path, spans: list[SpanRecord]
) -> None:
    """``spans.otlp.json`` is the spans encoded as one OTLP JSON document."""
    assert encode_traces(spans) == member_json(dump(tmp_path, spans), "spans.otlp.json")


def test_the_run_member_is_the_run_rebuilt_from_the_spans(
    tmp_path: Path, spans: list[SpanRecord]
) -> None:
    """``run.json`` is the run record rebuilt from the spans."""
    expected = json.loads(json.dumps(as_dict(reconstruct_run(spans)), default=str))
    assert expected == member_json(dump(tmp_path, spans), "run.json")


@pytest.mark.parametrize(
    ("given", "status"), [({}, "running"), ({"interrupted": True}, "interrupted")]
)
def test_an_open_run_reads_interrupted_when_no_process_writes_it(
    tmp_path: Path, spans: list[SpanRecord], given: dict[str, bool], status: str
) -> None:
    """A run span the store holds open: ``running``, or ``interrupted`` when the store knows
    no process writes the run any more (killed), in the manifest and the run member alike."""
    open_run = [s if s.parent_span_id else replace(s, end_ns=None) for s in spans]
    path = dump(tmp_path, open_run, **given)
    found = (member_json(path, "manifest.json")["status"], member_json(path, "run.json")["status"])
    assert (status, status) == found


def test_json_members_are_indented_with_sorted_keys(
    tmp_path: Path, spans: list[SpanRecord]
) -> None:
    """A JSON member other than the spans is indented by two, its keys sorted, and ends with a
    newline."""
    engine_state = {"b": 1, "a": [2]}
    written = members(dump(tmp_path, spans, engine_state=engine_state))["engine.json"]
    assert b'{\n  "a": [\n    2\n  ],\n  "b": 1\n}\n' == written


def test_the_dag_member_is_the_dot_drawing_of_the_definition_and_run(
    tmp_path: Path, spans: list[SpanRecord]
) -> None:
    """``dag.dot`` is the DOT drawing of the definition with the run's states."""
    expected = render_dot(DUMPED, reconstruct_run(spans)).encode()
    assert expected == members(dump(tmp_path, spans, pipeline=DUMPED))["dag.dot"]


def test_given_logs_are_the_logs_member_and_need_no_note(
    tmp_path: Path, spans: list[SpanRecord]
) -> None:
    """Logs given are written as ``logs.otlp.json`` and no note says they are missing."""
    logs = {"resourceLogs": [{"scopeLogs": []}]}
    path = dump(tmp_path, spans, logs=logs)
    notes = member_json(path, "manifest.json")["notes"]
    assert (logs, False) == (
        member_json(path, "logs.otlp.json"),
        any(note.startswith("logs.otlp.json") for note in notes),
    )


def test_without_logs_the_note_says_why_and_the_member_is_empty(
    tmp_path: Path, spans: list[SpanRecord]
) -> None:
    """Without logs, ``logs.otlp.json`` holds no resource and the caller's note says why."""
    path = dump(tmp_path, spans, logs_note="logs.otlp.json: the store is elsewhere")
    manifest = member_json(path, "manifest.json")
    assert ({"resourceLogs": []}, "logs.otlp.json: the store is elsewhere") == (
        member_json(path, "logs.otlp.json"),
        manifest["notes"][0],
    )


def test_the_definition_is_plain_json_triggers_keyed_by_kind(
    tmp_path: Path, spans: list[SpanRecord]
) -> None:
    """``definition.json`` holds the pipeline's fields as JSON: a trigger as ``{kind:
    fields}``, tuples as lists, a nested record as an object, a map as an object, an enum as
    its text, None as null."""
    definition = member_json(dump(tmp_path, spans, pipeline=DUMPED), "definition.json")
    first, second = definition["stages"]
    assert (
        "dumped",
        [{"on_completion": {"stage": "a", "success_only": False}}],
        2.5,
        2,
        [],
        str(DUMPED.stages[0].trigger_mode),
        {"sh": {"name": "sh", "handler": None, "command": "sh -c"}},
        None,
    ) == (
        definition["name"],
        second["triggers"],
        first["timeout"],
        first["retry"]["max_attempts"],
        first["inputs"],
        first["trigger_mode"],
        definition["loops"],
        second["retry"],
    )


def test_the_definition_is_redacted_by_the_capture(tmp_path: Path, spans: list[SpanRecord]) -> None:
    """A definition value under a key the capture's patterns name is ``[REDACTED]``."""
    capture = PayloadCapture(redact_patterns=("timeout",))
    definition = member_json(
        dump(tmp_path, spans, pipeline=DUMPED, capture=capture), "definition.json"
    )
    assert "[REDACTED]" == definition["stages"][0]["timeout"]


def test_the_engine_state_is_redacted_by_the_capture(
    tmp_path: Path, spans: list[SpanRecord]
) -> None:
    """``engine.json`` is the engine state given, values under secret keys redacted."""
    state = {"waiting": [{"payload": {"password": "hunter2", "n": 1}}]}
    written = member_json(dump(tmp_path, spans, engine_state=state), "engine.json")
    assert {"waiting": [{"payload": {"password": "[REDACTED]", "n": 1}}]} == written


def test_metrics_given_are_the_metrics_member(tmp_path: Path, spans: list[SpanRecord]) -> None:
    """The Prometheus text given is ``metrics.prom``, byte for byte."""
    text = b"# TYPE x counter\nx_total 1\n"
    assert text == members(dump(tmp_path, spans, metrics=text))["metrics.prom"]


def test_settings_lose_headers_url_passwords_and_secret_values(
    tmp_path: Path, spans: list[SpanRecord]
) -> None:
    """In ``environment.json`` a header setting is redacted (an empty one left empty), a URL's
    password is redacted, a value under a secret key is redacted, the rest is as given."""
    settings = Settings(
        {
            "otlp_Headers": "authorization=Bearer abc",
            "metrics_headers": "",
            "span_source": "https://ann:pw@host:4318/x",
            "plain_url": "https://host/x",
            "api_password": "hunter2",
            "payload_max_bytes": 10,
        }
    )
    environment = member_json(dump(tmp_path, spans, settings=settings), "environment.json")
    assert {
        "otlp_Headers": "[REDACTED]",
        "metrics_headers": "",
        "span_source": "https://ann:[REDACTED]@host:4318/x",
        "plain_url": "https://host/x",
        "api_password": "[REDACTED]",
        "payload_max_bytes": 10,
    } == environment["settings"]


def test_without_settings_the_environment_has_none(tmp_path: Path, spans: list[SpanRecord]) -> None:
    """Without settings, ``environment.json`` has an empty ``settings``."""
    assert {} == member_json(dump(tmp_path, spans), "environment.json")["settings"]


def test_the_environment_names_the_versions_and_platform(
    tmp_path: Path, spans: list[SpanRecord]
) -> None:
    """``environment.json`` gives taskdaemon's, Python's and OpenTelemetry's versions, the
    platform and the Python implementation."""
    environment = member_json(dump(tmp_path, spans), "environment.json")
    del environment["settings"]
    assert {
        "versions": {
            "taskdaemon": __version__,
            "python": sys.version.split()[0],
            "opentelemetry-api": importlib.metadata.version("opentelemetry-api"),
            "opentelemetry-sdk": importlib.metadata.version("opentelemetry-sdk"),
        },
        "platform": platform.platform(),
        "python_implementation": platform.python_implementation(),
    } == environment


def test_a_package_not_installed_has_no_version(
    tmp_path: Path, spans: list[SpanRecord], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An OpenTelemetry package that is not installed has the version None."""
    real = importlib.metadata.version

    def version(name: str) -> str:
        if name == "opentelemetry-sdk":
            raise importlib.metadata.PackageNotFoundError(name)
        return real(name)

    monkeypatch.setattr(importlib.metadata, "version", version)
    versions = member_json(dump(tmp_path, spans), "environment.json")["versions"]
    assert None is versions["opentelemetry-sdk"]


def test_the_svg_is_what_dot_draws_from_the_dot_member(
    tmp_path: Path, spans: list[SpanRecord], monkeypatch: pytest.MonkeyPatch
) -> None:
    """With Graphviz, ``dag.svg`` is what ``dot -Tsvg`` wrote for the DOT member on its
    input."""
    seen = tmp_path / "seen"
    fake_dot(tmp_path, monkeypatch, f'echo "$@" > {seen}.args; /bin/cat > {seen}; echo "<svg/>"')
    found = members(dump(tmp_path, spans))
    assert (b"<svg/>\n", found["dag.dot"], "-Tsvg\n") == (
        found["dag.svg"],
        seen.read_bytes(),
        Path(f"{seen}.args").read_text(),
    )


def test_a_failing_dot_leaves_no_svg_and_a_note(
    tmp_path: Path, spans: list[SpanRecord], monkeypatch: pytest.MonkeyPatch
) -> None:
    """When ``dot`` exits with an error, the dump has no ``dag.svg`` and notes why (its first
    line of stderr, else its exit status)."""
    fake_dot(tmp_path, monkeypatch, 'echo "<svg/>"; exit 1')
    path = dump(tmp_path, spans)
    notes = member_json(path, "manifest.json")["notes"]
    assert (False, True) == ("dag.svg" in members(path), "dag.svg: dot failed: exit 1" in notes)


def test_a_dot_that_cannot_be_run_leaves_no_svg(
    tmp_path: Path, spans: list[SpanRecord], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A ``dot`` on PATH that the system cannot execute gives no ``dag.svg``, not an error:
    a note says it could not be run."""
    folder = fake_dot(tmp_path, monkeypatch, "")
    (folder / "dot").write_bytes(b"\x7fELF not really")
    path = dump(tmp_path, spans)
    notes = member_json(path, "manifest.json")["notes"]
    assert (False, [True]) == (
        "dag.svg" in members(path),
        [
            note.startswith(f"dag.svg: cannot run {folder / 'dot'}: ")
            for note in notes
            if "svg" in note
        ],
    )


def test_every_member_is_private_and_dated_at_the_manifests_time(
    tmp_path: Path, spans: list[SpanRecord]
) -> None:
    """Each archive member has mode 0600 and the manifest's creation time (whole seconds)."""
    path = dump(tmp_path, spans)
    created = int(member_json(path, "manifest.json")["created_at"])
    with tarfile.open(path, "r:gz") as archive:
        headers = {(m.mode, m.mtime) for m in archive.getmembers()}
    assert {(0o600, created)} == headers


def test_the_archive_is_private_in_folders_made_for_it(
    tmp_path: Path, spans: list[SpanRecord]
) -> None:
    """The archive is written mode 0600 at the path asked for, its missing folders made, and
    that path is returned."""
    target = tmp_path / "new" / "deeper" / "d.tar.gz"
    written = write_dump(target, spans[0].trace_id, spans)
    assert (target, 0o600) == (written, stat.S_IMODE(target.stat().st_mode))


def test_a_directory_gets_the_archive_inside_under_the_default_name(
    tmp_path: Path, spans: list[SpanRecord]
) -> None:
    """A directory as the path: the archive goes into it, named as ``default_dump_path``
    names it, and that path is returned."""
    run_id = spans[0].trace_id
    written = write_dump(tmp_path, run_id, spans)
    pattern = rf"{run_id}-\d{{8}}T\d{{6}}Z\.tar\.gz"
    assert (tmp_path, True) == (written.parent, re.fullmatch(pattern, written.name) is not None)


def test_a_path_ending_with_a_separator_is_a_folder_made_for_the_archive(
    tmp_path: Path, spans: list[SpanRecord]
) -> None:
    """``out/new/`` as text, both folders missing: made, the archive inside under the default
    name; ``out/file`` without the separator is the archive itself."""
    run_id = spans[0].trace_id
    written = write_dump(f"{tmp_path / 'out' / 'new'}/", run_id, spans)
    plain = write_dump(str(tmp_path / "out" / "file"), run_id, spans)
    assert (tmp_path / "out" / "new", True, tmp_path / "out" / "file", True) == (
        written.parent,
        written.name.startswith(f"{run_id}-"),
        plain,
        plain.is_file(),
    )


def test_dump_output_is_absolute_and_keeps_a_trailing_separator(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The path given to ``dump -o`` made absolute against this folder (the run's process
    writes it, elsewhere), ``~`` expanded, its trailing separator kept once, and none added."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    given = ["out/new/", "out/file", "~/dumps/", "/", "~"]
    assert [
        f"{tmp_path}/out/new/",
        f"{tmp_path}/out/file",
        f"{tmp_path}/home/dumps/",
        "/",
        f"{tmp_path}/home",
    ] == [dump_output(path) for path in given]


def test_the_default_dump_path_is_under_dumps_named_by_run_and_utc_time() -> None:
    """``default_dump_path`` is ``HOME/dumps/RUN-YYYYmmddTHHMMSSZ.tar.gz``."""
    path = default_dump_path(Path("/home/x"), "r1")
    assert (Path("/home/x/dumps"), True) == (
        path.parent,
        re.fullmatch(r"r1-\d{8}T\d{6}Z\.tar\.gz", path.name) is not None,
    )


def test_stored_logs_are_the_runs_records_as_otlp_json(tmp_path: Path) -> None:
    """From the embedded store, the run's records (not another run's) come back as OTLP JSON
    logs, with no note."""
    db = tmp_path / "spans.db"
    writer = SqliteLogWriter(db)
    try:
        for run_id, body in (("a" * 32, "mine"), ("b" * 32, "other")):
            writer.write_row(LogRow(run_id, 1, 9, "INFO", "p", "s", 0, 1, None, "s", body, {}))
    finally:
        writer.close()
    rows = read_logs(db, "a" * 32)
    assert (["mine"], (encode_logs(rows), None)) == (
        [row.body for row in rows],
        stored_logs(f"sqlite:///{db}", "a" * 32),
    )


def test_stored_logs_of_a_source_that_is_no_store_say_why(tmp_path: Path) -> None:
    """A source that cannot be read gives no logs and a note naming the member and why."""
    missing = tmp_path / "missing" / "x.db"
    note = f"logs.otlp.json: no log records ({missing}: no span store here)"
    assert (None, note) == stored_logs(f"sqlite:///{missing}", "r1")


def test_a_dump_reads_back_as_a_tar_gz(tmp_path: Path, spans: list[SpanRecord]) -> None:
    """The file is a gzip-compressed tar archive."""
    data = dump(tmp_path, spans).read_bytes()
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
        assert "manifest.json" == archive.getnames()[0]


def test_values_json_cannot_write_are_written_as_text(
    tmp_path: Path, spans: list[SpanRecord]
) -> None:
    """A value of the engine state that is not JSON (a time) is written as its text."""
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    written = member_json(dump(tmp_path, spans, engine_state={"since": when}), "engine.json")
    assert {"since": str(when)} == written


def test_the_spans_member_has_its_keys_sorted(tmp_path: Path, spans: list[SpanRecord]) -> None:
    """Every object of ``spans.otlp.json`` has its keys in sorted order (dumps diff line by
    line)."""
    orders: list[list[str]] = []

    def keep(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        orders.append([key for key, _ in pairs])
        return dict(pairs)

    json.loads(members(dump(tmp_path, spans))["spans.otlp.json"], object_pairs_hook=keep)
    assert [sorted(keys) for keys in orders] == orders


def test_the_default_dump_path_is_stamped_in_utc(monkeypatch: pytest.MonkeyPatch) -> None:
    """The file name's time is UTC whatever the local time zone."""
    monkeypatch.setenv("TZ", "JST-9")
    time.tzset()
    try:
        before = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        name = default_dump_path(Path("/home/x"), "r1").name
        after_call = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    finally:
        monkeypatch.undo()
        time.tzset()
    assert name in {f"r1-{before}.tar.gz", f"r1-{after_call}.tar.gz"}
