"""Debug dumps: one ``.tar.gz`` holding everything known about one run (docs/debugging.md).

Members (flat, no directories)::

    manifest.json      format, version, run id, pipeline, creation time, notes, and each
                       other member's size and sha256
    spans.otlp.json    the run's spans, one OTLP JSON document (the collector file exporter's
                       format: readable by ``otlp-json://`` too)
    logs.otlp.json     the run's log records from the embedded store, as OTLP JSON logs (the
                       collector file exporter's format); empty, with a manifest note, when
                       the span source is not the embedded store
    run.json           the run record rebuilt from the spans
    definition.json    the pipeline as loaded, or else as the run span recorded it (for replay)
    dag.dot, dag.svg   the DAG with the run's states (SVG when Graphviz's ``dot`` is installed)
    engine.json        for a live run: its engine state (engine_state: slots, instances,
                       triggers, approvals, waiting events, what is paused, breakpoints)
    metrics.prom       the Prometheus text of the process's metrics (when it has a registry)
    environment.json   versions of taskdaemon, Python and OpenTelemetry, the platform, and the
                       settings with secrets redacted

**Secrets.** A dump holds no secret the span store does not: the spans and the run record come
from the store (captured payloads are already redacted there); the definition, the engine state
(event payloads, inputs) and the settings go through the same :class:`PayloadCapture` redaction
(key patterns, ``TASKDAEMON_REDACT_PATTERNS``); OTLP headers are always redacted and URLs lose
their passwords. The environment is never dumped whole, only the settings. The definition is
the one the run span already carries (for replay), commands included: a secret written as a
literal in a command is in the store as well, which is why secrets belong in the environment.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import io
import json
import os
import platform
import sys
import tarfile
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, BinaryIO, Final

from taskdaemon import __version__
from taskdaemon.pipeline.graphviz import GraphvizError, dot_to_svg
from taskdaemon.pipeline.model import Pipeline
from taskdaemon.pipeline.payloads import REDACTED, PayloadCapture
from taskdaemon.pipeline.private_file import make_output_dirs, replace_privately
from taskdaemon.pipeline.record_fields import as_dict, fields, is_record
from taskdaemon.pipeline.tracking.otlp_json import encode_traces
from taskdaemon.pipeline.tracking.reconstruct import reconstruct_run
from taskdaemon.pipeline.tracking.spans import SpanRecord

__all__ = [
    "DUMP_FORMAT",
    "DUMP_VERSION",
    "SPANS_MEMBER",
    "default_dump_path",
    "stored_logs",
    "write_dump",
]

DUMP_FORMAT: Final = "taskdaemon-dump"
DUMP_VERSION: Final = 1
SPANS_MEMBER: Final = "spans.otlp.json"


def default_dump_path(home: Path, run_id: str) -> Path:
    """``$TASKDAEMON_HOME/dumps/<run_id>-<UTC time>.tar.gz``."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    return home / "dumps" / f"{run_id}-{stamp}.tar.gz"


def dump_output(given: str) -> str:
    """The path ``given`` to ``dump -o`` or the prompt's ``dump``, absolute (the run's process
    may write it, elsewhere: a relative path is the caller's), with its trailing separator:
    ``out/`` names a folder to write the dump in, made when missing, as an existing ``out``
    is written into; without the separator, ``Path`` wrote a file called ``out``."""
    absolute = str(Path(given).expanduser().absolute())
    folder = given.endswith(os.sep) and not absolute.endswith(os.sep)
    return absolute + os.sep if folder else absolute


def stored_logs(source_url: str, run_id: str) -> tuple[dict[str, Any] | None, str | None]:
    """The run's log records in the embedded store at ``source_url`` as OTLP JSON logs, or
    (None, why not): the store keeps them beside the spans (``tracking/log_read.py``)."""
    from taskdaemon.pipeline.errors import SpanSourceError  # noqa: PLC0415
    from taskdaemon.pipeline.tracking.log_read import run_log_records  # noqa: PLC0415
    from taskdaemon.pipeline.tracking.otlp_logs import encode_logs  # noqa: PLC0415

    try:
        rows = run_log_records(source_url, run_id)
    except (SpanSourceError, OSError, ValueError) as exc:
        return None, f"logs.otlp.json: no log records ({str(exc).splitlines()[0]})"
    return encode_logs(rows), None


def _plain(value: Any) -> Any:
    """A model object as JSON-able data; a trigger is ``{kind: fields}``."""
    if is_record(value) and not isinstance(value, type):
        data = {f.name: _plain(getattr(value, f.name)) for f in fields(value)}
        kind = getattr(type(value), "kind", None)
        return {kind: data} if isinstance(kind, str) else data
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def _environment(settings: Any, capture: PayloadCapture) -> dict[str, Any]:
    from taskdaemon.pipeline.tracking._remote import display_url  # noqa: PLC0415

    values: dict[str, Any] = {}
    if settings is not None:
        for key, value in settings.as_json().items():
            if "header" in key.lower():
                values[key] = REDACTED if value else value
            elif isinstance(value, str) and "://" in value:
                values[key] = display_url(value)
            else:
                values[key] = value
        values = capture.redact(values)
    versions: dict[str, str | None] = {"taskdaemon": __version__, "python": sys.version.split()[0]}
    for package in ("opentelemetry-api", "opentelemetry-sdk"):
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = None
    return {
        "versions": versions,
        "platform": platform.platform(),
        "python_implementation": platform.python_implementation(),
        "settings": values,
    }


def _json(value: Any) -> bytes:
    return json.dumps(value, indent=2, sort_keys=True, default=str).encode() + b"\n"


def write_dump(
    path: Path | str,
    run_id: str,
    spans: Iterable[SpanRecord],
    *,
    pipeline: Pipeline | None = None,
    engine_state: Mapping[str, Any] | None = None,
    metrics: bytes | None = None,
    settings: Any = None,
    capture: PayloadCapture | None = None,
    logs: Mapping[str, Any] | None = None,
    logs_note: str | None = None,
    interrupted: bool = False,
    unrecorded: str | None = None,
) -> Path:
    """Write the dump of run ``run_id`` to ``path`` (parents created, written to a temporary
    name then renamed, mode 0600; into ``path`` under the default file name when it is a
    directory, or a string ending with a separator: ``dump_output``) and return the file
    written. ``spans`` are the run's spans from the
    store; the rest is optional (the manifest notes what is missing). Without ``pipeline``,
    the definition the run span recorded is dumped when it is whole and sound
    (``recorded_pipeline``): the dump of an ended run has it too. ``interrupted``: the
    store knows no process writes the run any more (it was killed), so an open run is recorded
    ``interrupted``, not ``running``. ``unrecorded``: why the writing process recorded no
    spans of its live run (its telemetry did not load); the dump then holds what it knows
    live (engine state, definition, metrics, settings), its manifest saying why the spans and
    the run record are missing. ValueError without spans otherwise."""
    from taskdaemon.pipeline.visualization import render_dot  # noqa: PLC0415

    capture = capture or PayloadCapture()
    spans = list(spans)
    if not spans and unrecorded is None:
        raise ValueError(f"no spans of run {run_id}: nothing to dump")
    record = reconstruct_run(spans, interrupted=interrupted) if spans else None
    notes: list[str] = []
    members: dict[str, bytes] = {
        SPANS_MEMBER: json.dumps(encode_traces(spans), sort_keys=True).encode() + b"\n",
    }
    if record is not None:
        members["run.json"] = _json(as_dict(record))
    else:
        notes.append(f"{SPANS_MEMBER}, run.json: no spans: {unrecorded}")
    if logs is None:
        notes.append(logs_note or "logs.otlp.json: the writer had no log records")
        logs = {"resourceLogs": []}
    members["logs.otlp.json"] = _json(logs)
    if pipeline is None and record is not None:  # no live process holds it: the recorded one
        # Imported here alone (it loads orjson): a dump without spans is of a run whose
        # telemetry load may be stuck importing what orjson imports (``cli/_dump_hook.py``).
        from taskdaemon.pipeline.visualization import recorded_pipeline  # noqa: PLC0415

        pipeline = recorded_pipeline(record)
    if pipeline is not None:
        members["definition.json"] = _json(capture.redact(_plain(pipeline)))
    else:
        notes.append("definition.json: the run's spans hold no whole definition")
    dot = render_dot(pipeline, record)
    members["dag.dot"] = dot.encode()
    try:
        members["dag.svg"] = dot_to_svg(dot)
    except GraphvizError as error:
        notes.append(f"dag.svg: {error}")
    if engine_state is not None:
        members["engine.json"] = _json(capture.redact(dict(engine_state)))
    else:
        notes.append("engine.json: the run is not live in the writing process")
    if metrics is not None:
        members["metrics.prom"] = metrics
    else:
        notes.append("metrics.prom: the writing process has no Prometheus registry")
    members["environment.json"] = _json(_environment(settings, capture))
    created = time.time()
    live = engine_state or {}  # no spans: the run as the engine has it
    dumped = run_id if record is None else record.run_id
    manifest = {
        "format": DUMP_FORMAT,
        "version": DUMP_VERSION,
        "run_id": dumped,
        "pipeline": live.get("pipeline") if record is None else record.pipeline,
        "status": live.get("status") if record is None else record.status,
        "created_at": created,
        "notes": notes,
        "files": {
            name: {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
            for name, data in members.items()
        },
    }
    folder = str(path).endswith(os.sep)
    path = Path(path)
    if folder or path.is_dir():  # as cp does: into it, under the default file name
        path = path / default_dump_path(path, dumped).name
    make_output_dirs(path)  # made here: the owner's only, never through another's link

    def archive_into(raw: BinaryIO) -> None:
        with tarfile.open(fileobj=raw, mode="w:gz") as archive:
            for name, data in {"manifest.json": _json(manifest), **members}.items():
                info = tarfile.TarInfo(name)
                info.size = len(data)
                info.mtime = int(created)
                info.mode = 0o600
                archive.addfile(info, io.BytesIO(data))

    # Whole and 0600: a full disk, say, leaves no half-written archive behind.
    replace_privately(path, archive_into)
    return path
