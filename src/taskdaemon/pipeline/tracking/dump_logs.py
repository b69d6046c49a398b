"""The log records of a debug dump (``logs.otlp.json``), read back as ``StoredLog`` objects.

The inverse of :func:`~.otlp_logs.encode_logs` (the collector file exporter's OTLP JSON), for
tools that read a dump as they read the store: ``replay RUN --step --source dump://...`` shows
a stage's records. The archive is read with :func:`~.dump_source.read_dump_members`' bounds; a
record that is not an object, or whose body cannot be read, is skipped, an attribute that cannot
be read is left out, and a list of another type holds nothing: never an error. A
member the manifest lists (with its sha256, as ``dump.py`` always writes it; an entry without
one matches no member) must be there and match: a dump that lost its log records, or had them
changed, is one error line rather than a run that seems to have logged nothing.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from pathlib import Path
from typing import Any

from taskdaemon.pipeline.errors import SpanSourceError
from taskdaemon.pipeline.tracking.dump_source import decode_member, read_dump_members
from taskdaemon.pipeline.tracking.log_read import StoredLog
from taskdaemon.pipeline.tracking.otlp_json import decode_any_value

__all__ = ["decode_logs", "dump_log_records"]

_MEMBER = "logs.otlp.json"
_IDS = {"run_id", "pipeline", "stage", "instance", "attempt"}


#: What ``int()`` and ``decode_any_value`` raise for a value they cannot read (``inf``, say).
_UNREADABLE = (ValueError, TypeError, AttributeError, OverflowError)


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except _UNREADABLE:
        return None


def _items(value: Any) -> list[Any]:
    """``value`` when it is a list, else no item (a number or an object where a list goes)."""
    return value if isinstance(value, list) else []


def _record(raw: Any, scope: str) -> StoredLog | None:
    if not isinstance(raw, dict):
        return None
    attributes: dict[str, Any] = {}
    for item in _items(raw.get("attributes")):
        if isinstance(item, dict) and isinstance(item.get("key"), str):
            with contextlib.suppress(*_UNREADABLE):
                attributes[item["key"]] = decode_any_value(item.get("value"))
    ids = {name: attributes.pop(f"taskdaemon.{name}", None) for name in _IDS}
    try:
        body = decode_any_value(raw.get("body"))
    except _UNREADABLE:
        return None
    return StoredLog(
        id=0,
        run_id=str(raw.get("traceId") or ids["run_id"] or ""),
        time_ns=_int(raw.get("timeUnixNano")) or 0,
        severity=_int(raw.get("severityNumber")) or 0,
        level=str(raw.get("severityText") or ""),
        pipeline=ids["pipeline"] if isinstance(ids["pipeline"], str) else None,
        stage=ids["stage"] if isinstance(ids["stage"], str) else None,
        instance=_int(ids["instance"]),
        attempt=_int(ids["attempt"]),
        span_id=raw.get("spanId") if isinstance(raw.get("spanId"), str) else None,
        scope=scope,
        body=body if isinstance(body, str) else json.dumps(body, default=str),
        attributes=attributes,
    )


def decode_logs(body: Any) -> list[StoredLog]:
    """The records of one OTLP JSON ``ExportLogsServiceRequest``, in the document's order
    (:func:`~.otlp_logs.encode_logs` keeps the store's: sorting by time listed a dump
    differently from the store it was written from)."""
    rows: list[StoredLog] = []
    if not isinstance(body, dict):
        return rows
    for resource in _items(body.get("resourceLogs")):
        if not isinstance(resource, dict):
            continue
        for scope_logs in _items(resource.get("scopeLogs")):
            if not isinstance(scope_logs, dict):
                continue
            scope = scope_logs.get("scope")
            name = scope.get("name") if isinstance(scope, dict) else None
            for raw in _items(scope_logs.get("logRecords")):
                row = _record(raw, name if isinstance(name, str) else "")
                if row is not None:
                    rows.append(row)
    return rows


def _listed_entry(manifest: bytes) -> Any:
    """The manifest's entry for the log member; None when it lists none (the manifest itself
    is checked by the span source)."""
    try:
        files = json.loads(manifest).get("files")
    except (ValueError, RecursionError, AttributeError):
        return None
    return files.get(_MEMBER) if isinstance(files, dict) else None


def dump_log_records(path: str | Path, run_id: str, *, stage: str | None = None) -> list[StoredLog]:
    """The records of ``run_id`` (a prefix of it does) in the dump at ``path``, optionally of
    one stage; SpanSourceError (one line) when the archive is not a readable dump."""
    path = Path(path)
    members = read_dump_members(path, ("manifest.json", _MEMBER))
    listed = _listed_entry(members["manifest.json"])
    data = members.get(_MEMBER)
    if data is None:
        if listed is not None:
            raise SpanSourceError(f"{path}: the manifest lists {_MEMBER}, the archive lacks it")
        return []
    sha256 = listed.get("sha256") if isinstance(listed, dict) else None
    if listed is not None and hashlib.sha256(data).hexdigest() != sha256:
        raise SpanSourceError(f"{path}: {_MEMBER} does not match its sha256")
    body = decode_member(path, _MEMBER, data)
    wanted = run_id.strip().lower()
    return [
        row
        for row in decode_logs(body)
        if row.run_id.lower().startswith(wanted) and (stage is None or row.stage == stage)
    ]
