"""Log records still waiting in the batch processor when a value became known as a secret
leave masked (``cli/masked_log_exporter``): a real run whose stage prints a secret it fetched,
then returns it under ``token``, exports its lines over the console log exporter at exit.
In-process, records made by a real SDK provider show which are copied, what in them is
masked and what is kept."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from opentelemetry._logs import SeverityNumber
from opentelemetry.sdk._logs import LoggerProvider, ReadableLogRecord
from opentelemetry.sdk._logs.export import (
    InMemoryLogRecordExporter,
    LogRecordExporter,
    LogRecordExportResult,
    SimpleLogRecordProcessor,
)
from opentelemetry.sdk.resources import Resource

from cli_support import write
from redaction_support import (
    MADE_SECRET,
    MAKE_SECRET,
    console_json_objects,
    run_exported_at_exit,
)
from taskdaemon.pipeline.cli.masked_log_exporter import MaskedLogExporter
from taskdaemon.pipeline.redaction import REDACTED
from taskdaemon.pipeline.secret_values import remember_secrets

SECRET = MADE_SECRET

PIPELINE = f"""\
    name: exporting
    stages:
      - name: vault
        triggers: [{{manual: {{approval_required: false}}}}]
        command: >-
          {MAKE_SECRET} echo "got $V from the vault" >&2; printf '{{"token": "%s"}}' "$V"
"""


@pytest.mark.slow
def test_a_batch_not_yet_exported_loses_a_value_learnt_after_its_records(
    home: Path, tmp_path: Path
) -> None:
    """The batch processor waits a minute (longer than the run), so every record is exported at
    exit, after the stage returned the value: the exported line is masked. The console's own
    log lines printed it before (not revisited)."""
    stdout = run_exported_at_exit(home, write(tmp_path / "exporting.yaml", PIPELINE), "logs")
    bodies = [
        record["body"]
        for record in console_json_objects(stdout)
        if "from the vault" in str(record.get("body"))
    ]
    assert ([f"got {REDACTED} from the vault"], False) == (bodies, SECRET in stdout)


ESCAPING = """\
import json
import sys

secret = "vault\\"" + "s3cr3t-" + "escaped-41"
print(json.dumps({"seen": secret}), file=sys.stderr)
print(json.dumps({"token": secret}))
"""


@pytest.mark.slow
def test_a_value_learnt_after_its_records_is_masked_as_json_escaped_it(
    home: Path, tmp_path: Path
) -> None:
    """The stage prints a secret holding a quote as JSON (escaped), then returns it: the
    exported lines, exported at exit, hold ``[REDACTED]`` where the escaped value was, and
    nothing of the value."""
    script = write(tmp_path / "escaping.py", ESCAPING)
    pipeline = write(
        tmp_path / "escaping.yaml",
        f"""\
        name: escaping
        stages:
          - name: vault
            triggers: [{{manual: {{approval_required: false}}}}]
            command: python3 {script}
        """,
    )
    stdout = run_exported_at_exit(home, pipeline, "logs")
    bodies = sorted(
        str(record["body"])
        for record in console_json_objects(stdout)
        if str(record.get("body")).startswith("{")
    )
    expected = [f'{{"seen": "{REDACTED}"}}', f'{{"token": "{REDACTED}"}}']
    assert (expected, False) == (bodies, "escaped-41" in stdout)


def _emitted(*records: dict[str, Any]) -> list[ReadableLogRecord]:
    """Log records made by a real provider from ``records`` (each ``emit``'s arguments)."""
    recorded = InMemoryLogRecordExporter()
    provider = LoggerProvider(resource=Resource.create({"service.name": "masking-test"}))
    provider.add_log_record_processor(SimpleLogRecordProcessor(recorded))
    try:
        logger = provider.get_logger("masking")
        for record in records:
            logger.emit(severity_number=SeverityNumber.INFO, **record)
    finally:
        provider.shutdown()
    return list(recorded.get_finished_logs())


def test_only_the_records_holding_a_value_known_now_are_copied_and_masked() -> None:
    """Records made before the value was known, exported in one batch after: the one holding
    it in its body, the one holding it in an attribute only, each leave masked in every text
    and otherwise as made (numbers, resource, scope, time, severity); the ones without it
    leave as the very same objects; the SDK's own records keep what they recorded."""
    plain, in_body, in_attribute, no_attributes = _emitted(
        {"body": "nothing here", "attributes": {"stage": "vault"}},
        {"body": f"got {SECRET} from the vault", "attributes": {"stage": "vault", "n": 3}},
        {"body": "fetched", "attributes": {"out": f"x{SECRET}y", "n": 4}, "timestamp": 17},
        {"body": "no attributes"},
    )
    remember_secrets({"token": SECRET})
    exported = InMemoryLogRecordExporter()
    result = MaskedLogExporter(exported).export([plain, in_body, in_attribute, no_attributes])
    same, body_masked, attribute_masked, bare = exported.get_finished_logs()
    assert (
        result,
        (same is plain, bare is no_attributes),
        [
            (data.log_record.body, dict(data.log_record.attributes or {}))
            for data in (body_masked, attribute_masked)
        ],
        [
            (data.resource, data.instrumentation_scope, data.limits)
            for data in (body_masked, attribute_masked)
        ],
        (attribute_masked.log_record.timestamp, attribute_masked.log_record.severity_number),
        (in_body.log_record.body, dict(in_attribute.log_record.attributes or {})["out"]),
    ) == (
        LogRecordExportResult.SUCCESS,
        (True, True),
        [
            (f"got {REDACTED} from the vault", {"stage": "vault", "n": 3}),
            ("fetched", {"out": f"x{REDACTED}y", "n": 4}),
        ],
        [(in_body.resource, in_body.instrumentation_scope, in_body.limits)] * 2,
        (17, SeverityNumber.INFO),
        (f"got {SECRET} from the vault", f"x{SECRET}y"),
    )


def test_a_record_whose_body_is_not_a_text_keeps_it_as_it_was() -> None:
    """A record found by its attribute whose body is not a text (a number) leaves with that
    body as it was and its attributes masked."""
    (record,) = _emitted({"body": 42, "attributes": {"out": SECRET}})
    remember_secrets({"token": SECRET})
    exported = InMemoryLogRecordExporter()
    MaskedLogExporter(exported).export([record])
    (masked,) = exported.get_finished_logs()
    assert (42, {"out": REDACTED}) == (
        masked.log_record.body,
        dict(masked.log_record.attributes or {}),
    )


def test_a_value_inside_a_structured_body_or_a_list_attribute_is_masked() -> None:
    """Records another handler made on the same provider: a value known now inside a mapping
    body, or inside a list of texts, is found there and leaves masked; the rest of each value
    is kept as made."""
    in_body, in_list = _emitted(
        {"body": {"event": "fetched", "detail": {"value": SECRET, "n": 1}}},
        {"body": "fetched", "attributes": {"values": ("a", f"x{SECRET}"), "n": 2}},
    )
    remember_secrets({"token": SECRET})
    exported = InMemoryLogRecordExporter()
    MaskedLogExporter(exported).export([in_body, in_list])
    body_masked, list_masked = exported.get_finished_logs()
    assert (
        body_masked.log_record.body,
        list(dict(list_masked.log_record.attributes or {})["values"]),
        dict(list_masked.log_record.attributes or {})["n"],
    ) == ({"event": "fetched", "detail": {"value": REDACTED, "n": 1}}, ["a", f"x{REDACTED}"], 2)


class _Inner(LogRecordExporter):
    """An exporter that says how each flush and shutdown was asked and answers no."""

    def __init__(self) -> None:
        self.asked: list[object] = []

    def export(self, batch: Sequence[ReadableLogRecord]) -> LogRecordExportResult:
        self.asked.append(len(batch))
        return LogRecordExportResult.FAILURE

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        self.asked.append(timeout_millis)
        return False

    def shutdown(self) -> None:
        self.asked.append("shutdown")


def test_export_flush_and_shutdown_are_the_inner_exporters() -> None:
    """An export answers what the inner exporter answered; a flush reaches it with the
    timeout asked (the SDK's default when none is) and returns its answer; a shutdown shuts
    it down."""
    inner = _Inner()
    masking = MaskedLogExporter(inner)
    answers = [
        masking.export(_emitted({"body": "x"})),
        masking.force_flush(250),
        masking.force_flush(),
    ]
    masking.shutdown()
    assert (
        [LogRecordExportResult.FAILURE, False, False],
        [1, 250, 30000, "shutdown"],
    ) == (answers, inner.asked)
