"""A definition's span attributes, shown clean at once (``redaction.mappings_unchanged``),
record exactly what redacting each mapping records (round 16: the stages' static attributes
and the run span's lists are no longer walked text by text)."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from cli_support import taskdaemon, write
from taskdaemon.pipeline import telemetry as t
from taskdaemon.pipeline.model import Manual, OnCompletion, OnCondition, Pipeline, Stage
from taskdaemon.pipeline.monitor._books import pipeline_info
from taskdaemon.pipeline.payloads import REDACTED, PayloadCapture
from taskdaemon.pipeline.recorded import definition_attributes
from taskdaemon.pipeline.redaction import mappings_unchanged, redact, redact_text

TOKEN = "ghp_" + "T3st" * 9  # a GitHub token's shape, not a real one
#: A valid stage name (lower case, digits, ``_``) that is a GitHub token's shape too.
SECRET_NAME = "ghp_" + "t3st" * 9


def _chain(names: list[str], condition: str | None = None) -> Pipeline:
    stages = [Stage(names[0], "python", (Manual(approval_required=False),))]
    for index, name in enumerate(names[1:], start=1):
        triggers: tuple[Any, ...] = (OnCompletion(stage=names[index - 1]),)
        if condition is not None and index == len(names) // 2:
            triggers = (*triggers, OnCondition(condition))
        stages.append(Stage(name, "python", triggers))
    return Pipeline(name="defn", stages=tuple(stages))


CLEAN = [f"s{i}" for i in range(40)]
PIPELINES = {
    "clean": _chain(CLEAN),
    "secret stage name": _chain([*CLEAN[:20], SECRET_NAME, *CLEAN[20:]]),
    "token in a condition": _chain(CLEAN, f'request.ref == "{TOKEN}"'),
    "assignment in a condition": _chain(CLEAN, 'request.note == "password=hunter22"'),
    "hint only, no secret": _chain(CLEAN, 'request.key == "x"'),
    # In the definition's JSON text the inner quotes are escaped (\"api_key\": \"...\").
    "JSON assignment in a condition": _chain(
        CLEAN, 'request.note == \'{"api_key": "abcdefgh12345678"}\''
    ),
}


@pytest.mark.parametrize("which", list(PIPELINES))
def test_definition_attributes_are_what_redacting_each_mapping_gives(which: str) -> None:
    pipeline = PIPELINES[which]
    info = pipeline_info(pipeline, definition_attributes(pipeline, PayloadCapture()))
    for name, stage in info.stages.items():
        expected = redact(dict(stage.static))
        assert list(stage.redacted_static.items()) == list(expected.items()), name
    expected_run = redact(dict(info.run_attributes))
    assert list(info.redacted_run_attributes.items()) == list(expected_run.items())
    recorded = repr(
        [info.redacted_run_attributes, *(s.redacted_static for s in info.stages.values())]
    )
    for secret in (TOKEN, SECRET_NAME, "hunter22", "abcdefgh12345678"):
        assert secret not in recorded
    if which in ("secret stage name", "token in a condition"):
        assert REDACTED in recorded


TEXTS = [
    "s1",
    "on_completion(s0, success)",
    '{"on_completion":{"stage":"s0"}}',
    TOKEN,
    f"x {TOKEN}",
    "AKIA" + "A" * 16,
    "glpat-" + "a" * 20,
    "xoxb-" + "1" * 12,
    "eyJhbGciOi.eyJzdWIiOi.sig",
    "BeArEr abcdefgh12345678",
    "Authorization: BEARER abcdefgh12345678",
    "https://user:pw@example.com",
    "-----BEGIN RSA PRIVATE KEY-----\nabc\n-----END RSA PRIVATE KEY-----",
    "PassWord=hunter22",
    "api-key: x",
    "\u212aey=x",  # the Kelvin sign: "key" in a case-insensitive search, not in str.lower
    "ΣΑΣ: token=x",
    "İ token: x",
    "plain words: no hint here",
    "token",
    "a=b",
]


def test_mappings_unchanged_only_when_redaction_leaves_every_text() -> None:
    for text in TEXTS:
        alone = mappings_unchanged([{"attr": text}])
        assert alone == (redact_text(text) is text) or not alone, text
        for clean in ("s1", "plain", "é clean", "ΣΑΣ"):
            batch = mappings_unchanged([{"a": clean}, {"b": [clean, text], "c": 3}])
            if batch:
                assert redact({"b": [clean, text]}) == {"b": [clean, text]}, text
            # A text that needs redacting is never shown clean, whatever joins it.
            if redact_text(text) != text:
                assert not batch, text
    assert mappings_unchanged([{"attr": "s1", "n": 1, "f": 0.5, "ok": True, "none": None}])
    assert not mappings_unchanged([{"attr": "s1"}, {"password": "s1"}])  # a secret key
    assert not mappings_unchanged([{"attr": {"nested": "s1"}}])  # not flat: not shown
    assert not mappings_unchanged([{"attr": [["s1"]]}])
    assert mappings_unchanged([{t.CICD_TASK_NAME: "s1", t.STAGE_UPSTREAM: []}])


LEARNT = "LearntTok-99887766"  # a value the pipeline file holds, known as a secret at run time

LEARNT_PIPELINE = f"""
    name: learnt
    stages:
      - name: fetch
        loop: command
        command: 'echo "{{\\"token\\": \\"{LEARNT}\\"}}"'
        triggers: [{{manual: {{approval_required: false}}}}]
      - name: use
        loop: command
        command: 'echo "{{}}"'
        triggers: [{{on_condition: {{expression: "stages.fetch.outputs.token == '{LEARNT}'"}}}}]
    """


def test_a_value_learnt_during_the_run_leaves_the_definitions_attributes(
    tmp_path: Path,
) -> None:
    """The pipeline file holds a value that ``fetch`` then returns under ``token``: a secret
    from then on. The definition's attributes were redacted once, before, and kept: ``use``,
    started after, recorded its trigger with the value, and the run span, ending after, its
    definition. A real run's store now holds the value nowhere, and ``use`` ran."""
    home = tmp_path / "h"
    pipeline = write(tmp_path / "learnt.yaml", LEARNT_PIPELINE)
    done = taskdaemon(home, "run", "-q", str(pipeline))
    stored = b"".join(path.read_bytes() for path in home.glob("spans.db*"))
    with contextlib.closing(sqlite3.connect(home / "spans.db")) as store:
        (used,) = store.execute(
            "SELECT count(*) FROM spans WHERE json_extract(body, '$[1]') = 'use'"
        ).fetchone()
    assert (0, 1, False) == (done.returncode, used, LEARNT.encode() in stored), done.stderr
