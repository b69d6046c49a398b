"""``secret_values``: texts found under a secret key are masked wherever they appear after, by
every redaction function, within bounds; the engine remembers a run's data before any stage
sees it, and a real run leaves no remembered value in any record."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.parse
from pathlib import Path

import pytest

from cli_support import pythonpath_with, taskdaemon, write
from redaction_support import shown_and_stored
from taskdaemon.pipeline.redaction import (
    REDACTED,
    mappings_unchanged,
    redact,
    redact_lines,
    redact_text,
    redact_texts,
)
from taskdaemon.pipeline.secret_values import (
    MASK_MAX_CHARS,
    MASK_MAX_VALUES,
    MASK_MIN_CHARS,
    add_secret_listener,
    base64_forms,
    forget_secrets,
    remember_environment_secrets,
    remember_secrets,
    remove_secret_listener,
    use_secret_key_patterns,
    written_forms,
)

SECRET = "hunter2-s3cr3t"
ENCODED_SECRET = 'pa"ss\\w/\nord <s3cr3t>&caf\u00e9'


def test_a_value_under_a_secret_key_is_masked_in_any_text_after() -> None:
    """A text found under ``api_key`` is replaced wherever it appears from then on, the text
    around it kept."""
    remember_secrets({"user": "alice", "api_key": SECRET})
    assert f"echo {REDACTED} done" == redact_text(f"echo {SECRET} done")


@pytest.mark.parametrize(
    ("written", "masked"),
    [
        (json.dumps({"k": ENCODED_SECRET}), '{"k": "[REDACTED]"}'),
        (json.dumps({"k": ENCODED_SECRET}, ensure_ascii=False), '{"k": "[REDACTED]"}'),
        (
            json.dumps({"k": ENCODED_SECRET}, ensure_ascii=False)  # as Go writes it
            .replace("<", "\\u003c")
            .replace(">", "\\u003e")
            .replace("&", "\\u0026"),
            '{"k": "[REDACTED]"}',
        ),
        (repr(ENCODED_SECRET), "'[REDACTED]'"),
        (ascii(ENCODED_SECRET), "'[REDACTED]'"),
        ("https://h/?k=" + urllib.parse.quote(ENCODED_SECRET), "https://h/?k=[REDACTED]"),
        ("https://h/" + urllib.parse.quote(ENCODED_SECRET, safe=""), "https://h/[REDACTED]"),
        ("k=" + urllib.parse.quote_plus(ENCODED_SECRET), "k=[REDACTED]"),
    ],
)
def test_a_value_is_masked_in_each_encoding_it_is_written_in(written: str, masked: str) -> None:
    """A value holding a quote, a backslash, a slash, a line break, a space, ``<``, ``>``,
    ``&`` and ``é`` is masked as JSON (Go's too), ``repr``, ``ascii`` and URL-encoding (a path's,
    a query component's, a form's) write it: nothing of it is left, and nothing around it is
    taken. (Its lines are masked each too: a text that kept its first line, ``pa"ss\\w/``,
    and masked its second held no ``s3cr3t`` either.)"""
    remember_secrets({"password": ENCODED_SECRET})
    assert masked == redact_text(written)


def test_a_value_of_letters_no_encoding_keeps_is_masked_in_each_form() -> None:
    """A value with no character every encoding keeps (no needle to look for first) is still
    found as written and as JSON, ``ascii`` and URL-encoding write it."""
    value = "\u0441\u0435\u043a\u0440\u0435\u0442\u043d\u044b\u0439"  # Cyrillic, 9 letters
    remember_secrets({"password": value})
    written = [value, json.dumps(value)[1:-1], ascii(value)[1:-1], urllib.parse.quote(value)]
    assert [f"<{REDACTED}>"] * 4 == [redact_text(f"<{text}>") for text in written]


def test_a_value_no_encoding_changes_has_one_form() -> None:
    """A token of letters, digits and ``-_.~`` is written alike by every escaping encoding: it
    has one form beside its base64 ones, so the look-up grows only with values some escaping
    writes otherwise."""
    assert (SECRET, *base64_forms(SECRET)) == written_forms(SECRET)


def test_a_value_under_a_non_secret_key_is_not_masked() -> None:
    """Only what sits under a secret key is remembered."""
    remember_secrets({"user": "alice-the-admin"})
    assert "user alice-the-admin" == redact_text("user alice-the-admin")


def test_every_text_nested_under_a_secret_key_is_masked() -> None:
    """Every text below a secret key, at any depth (mappings and lists), is remembered; texts
    beside it are not."""
    remember_secrets({"db": {"credentials": {"user": "db-owner-1", "hosts": ["replica-pass"]}}})
    assert f"{REDACTED} {REDACTED} db-owner-2" == redact_text("db-owner-1 replica-pass db-owner-2")


def test_a_value_shorter_than_the_minimum_is_not_masked() -> None:
    """A value under ``MASK_MIN_CHARS`` characters stays visible elsewhere (a common word)."""
    short = "x" * (MASK_MIN_CHARS - 1)
    remember_secrets({"password": short, "token": "y" * MASK_MIN_CHARS})
    assert f"{short} {REDACTED}" == redact_text(f"{short} {'y' * MASK_MIN_CHARS}")


def test_a_whole_number_under_a_secret_key_is_masked_by_its_digits() -> None:
    """A numeric password read as JSON (``--input password=20261205``) is masked where a stage
    prints it, as a text is; a shorter number (a count) and a float are not."""
    remember_secrets({"password": 20261205, "api_key": 1234, "token_count": 123})
    remember_secrets({"token_ratio": 12345678.5, "tokens": [-987654321]})
    text = "pin 20261205, 1234 of 123 tokens (12345678.5) -987654321"
    assert f"pin {REDACTED}, 1234 of 123 tokens (12345678.5) {REDACTED}" == redact_text(text)


def test_a_number_too_long_to_mask_is_not_masked() -> None:
    """A number of more than ``MASK_MAX_CHARS`` digits is left, as a text that long is,
    without an error: ``str`` refuses a number of more than 4,300 digits."""
    remember_secrets({"password": 10**5000, "token": 10**MASK_MAX_CHARS - 1})
    assert REDACTED == redact_text("9" * MASK_MAX_CHARS)


def test_a_text_found_clean_before_is_masked_once_its_value_is_known() -> None:
    """A short text redact_text remembered as clean is masked after the value in it is known."""
    text = f"id {SECRET}"
    assert text == redact_text(text)
    remember_secrets({"secret": SECRET})
    assert f"id {REDACTED}" == redact_text(text)


def test_a_value_holding_another_is_replaced_whole() -> None:
    """Of two remembered values one inside the other, the longer is replaced whole."""
    remember_secrets({"token": "abcdefgh", "password": "abcdefgh-and-more"})
    assert f"[{REDACTED}]" == redact_text("[abcdefgh-and-more]")


def test_the_oldest_value_is_forgotten_past_the_bound() -> None:
    """Past ``MASK_MAX_VALUES`` values the oldest is no longer masked, the newest still is."""
    values = [f"value-{index:08d}" for index in range(MASK_MAX_VALUES + 1)]
    for value in values:
        remember_secrets({"token": value})
    assert (values[0], REDACTED) == (redact_text(values[0]), redact_text(values[-1]))


def test_forget_secrets_forgets_every_value() -> None:
    """After ``forget_secrets`` a remembered value is shown again."""
    remember_secrets({"token": SECRET})
    forget_secrets()
    assert SECRET == redact_text(SECRET)


@pytest.mark.parametrize(
    "lines",
    [
        ["plain", f"echo {SECRET}"],
        ["-----BEGIN RSA PRIVATE KEY-----", "MIIB", "-----END RSA PRIVATE KEY-----", SECRET],
        ["-----BEGIN CERTIFICATE-----", SECRET],
    ],
    ids=["lines", "after-a-key", "beside-a-begin-line"],
)
def test_captured_lines_lose_a_remembered_value(lines: list[str]) -> None:
    """``redact_lines`` (a command's output) masks a remembered value on every path."""
    remember_secrets({"token": SECRET})
    assert [] == [line for line in redact_lines(lines) if SECRET in line]


def test_log_record_texts_and_structures_lose_a_remembered_value() -> None:
    """``redact_texts`` and ``redact`` (a structure under harmless keys) mask it too, and
    ``mappings_unchanged`` does not call such a mapping unchanged."""
    remember_secrets({"token": SECRET})
    mapping = {"note": f"got {SECRET}"}
    assert ([f"got {REDACTED}"], {"note": f"got {REDACTED}"}, False) == (
        redact_texts([f"got {SECRET}"]),
        redact(mapping),
        mappings_unchanged([mapping]),
    )


def test_configured_key_patterns_find_the_values_to_mask() -> None:
    """With ``use_secret_key_patterns``, a key the configured patterns name is secret, and one
    only the default patterns name is not."""
    previous = use_secret_key_patterns((r"pin_code",))
    try:
        remember_secrets({"pin_code": "12-34-56-78", "password": "default-only"})
    finally:
        use_secret_key_patterns(previous)
    assert f"{REDACTED} default-only" == redact_text("12-34-56-78 default-only")


def test_the_environment_is_read_once_without_the_working_directory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A variable named as a secret is masked; ``PWD`` (a path) is not; a variable set after
    the first read is not read again."""
    monkeypatch.setenv("DEPLOY_API_TOKEN", SECRET)
    monkeypatch.setenv("PWD", str(tmp_path))
    remember_environment_secrets()
    monkeypatch.setenv("LATER_PASSWORD", "set-after-the-read")
    remember_environment_secrets()
    shown = redact_text(f"{SECRET} {tmp_path} set-after-the-read")
    assert f"{REDACTED} {tmp_path} set-after-the-read" == shown


PIPELINE = """\
    name: leak
    stages:
      - name: show
        command: 'echo "key is $TASKDAEMON_INPUT_KEY and env is $DEPLOY_PASSWORD"'
        inputs: {api_key: request.api_key, key: request.api_key}
        triggers: [{manual: {approval_required: false}}]
      - name: hand
        handler: "leaky:hand"
        inputs: {note: stages.show.outputs.stdout}
        triggers: [{on_completion: {stage: show}}]
"""

HANDLER = """\
import logging

def hand(ctx):
    logging.getLogger("leaky").warning("the value: %s", ctx.inputs["note"])
    return {"echo": ctx.inputs["note"]}
"""


@pytest.mark.slow
def test_a_real_run_records_no_remembered_value_anywhere(home: Path, tmp_path: Path) -> None:
    """A command echoing a secret request field through an input's variable, and the process
    environment's secret, then a handler logging it: neither value is in ``logs``, ``runs
    show --json`` or any byte of the span store."""
    write(tmp_path / "leaky.py", HANDLER)
    pipeline = write(tmp_path / "leak.yaml", PIPELINE)
    done = taskdaemon(
        home,
        "run",
        "-q",
        "--input",
        f"api_key={SECRET}",
        str(pipeline),
        cwd=tmp_path,
        DEPLOY_PASSWORD="env-s3cr3t-value",
        PYTHONPATH=pythonpath_with(tmp_path),
    )
    assert done.returncode == 0, done.stderr
    run_id = done.stdout.strip()
    shown = shown_and_stored(home, run_id)
    leaks = [value for value in (SECRET, "env-s3cr3t-value") if any(value in s for s in shown)]
    said = f"key is {REDACTED} and env is {REDACTED}"
    assert ([], 2) == (leaks, shown[0].count(said))


def test_a_value_read_with_its_line_break_is_masked_without_it() -> None:
    """A secret read from a file keeps its trailing line break; a program prints it without."""
    remember_secrets({"token": f"  {SECRET}\n"})
    assert f"[{REDACTED}]" == redact_text(f"[{SECRET}]")


def test_a_value_without_its_blanks_is_masked_down_to_the_minimum_length() -> None:
    """Without its blanks, a value of ``MASK_MIN_CHARS`` characters is masked too; a shorter one
    is not (a common word)."""
    remember_secrets({"token": "s3cr3t-8\n", "password": "  s3cr3t\n"})
    assert f"[{REDACTED}] [s3cr3t]" == redact_text("[s3cr3t-8] [s3cr3t]")


def test_a_token_holding_a_slash_is_masked_url_encoded() -> None:
    """A base64 token holding ``/`` (its one character an encoding changes) is found where a
    query component writes it, ``%2F``."""
    remember_secrets({"token": "c2VjcmV0/dG9rZW4x"})
    assert f"?k={REDACTED}" == redact_text("?k=c2VjcmV0%2FdG9rZW4x")


def test_a_value_remembered_again_is_kept_past_the_bound() -> None:
    """A value remembered again counts as the newest: past ``MASK_MAX_VALUES`` newer values it
    is still masked, and the one remembered longest ago is the one forgotten."""
    remember_secrets({"token": "first-value"})
    remember_secrets({"token": "kept-value"})
    for index in range(MASK_MAX_VALUES - 2):
        remember_secrets({"token": f"value-{index:08d}"})
    remember_secrets({"token": "first-value"})
    remember_secrets({"token": "one-more-value"})
    assert (REDACTED, "kept-value") == (redact_text("first-value"), redact_text("kept-value"))


def test_a_value_inside_the_marker_is_not_remembered() -> None:
    """A secret whose value is part of ``[REDACTED]`` is not masked: it would mangle every
    marker the other rules leave."""
    remember_secrets({"token": "REDACTED"})
    assert "password=[REDACTED]" == redact_text("password=hunter2-s3cr3t")


def test_a_value_of_the_maximum_length_is_masked_and_a_longer_one_is_not() -> None:
    """``MASK_MAX_CHARS`` is the longest value masked: one character more and it is left to the
    redaction by shape."""
    longest, longer = "a" * MASK_MAX_CHARS, "b" * (MASK_MAX_CHARS + 1)
    remember_secrets({"token": longest, "password": longer})
    assert (REDACTED, longer) == (redact_text(longest), redact_text(longer))


def test_past_the_bound_only_the_oldest_value_is_forgotten() -> None:
    """With ``MASK_MAX_VALUES + 1`` values remembered, every value but the first is masked."""
    values = [f"value-{index:08d}" for index in range(MASK_MAX_VALUES + 1)]
    for value in values:
        remember_secrets({"token": value})
    shown = [redact_text(value) for value in values]
    assert [values[0]] + [REDACTED] * MASK_MAX_VALUES == shown


def test_a_longer_value_is_replaced_whole_whatever_its_alphabetical_order() -> None:
    """A remembered value inside a longer one that sorts before it: the longer is replaced
    first, so none of its text is left beside the marker."""
    remember_secrets({"token": "zebra-secret", "password": "alpha-zebra-secret-tail"})
    assert f"<{REDACTED}>" == redact_text("<alpha-zebra-secret-tail>")


FRESH_PROCESS = """\
import os
from taskdaemon.pipeline.redaction import DEFAULT_REDACT_PATTERNS, redact_text
from taskdaemon.pipeline.secret_values import (
    add_secret_listener, remember_environment_secrets, remember_secrets, use_secret_key_patterns,
)
told = []
add_secret_listener(lambda run_id, values: told.append((run_id, values)))
remember_environment_secrets()
remember_secrets({"api_key": "request-s3cr3t"}, run_id="r1")
before = use_secret_key_patterns(("pin_code",))
print(before == DEFAULT_REDACT_PATTERNS)
print(redact_text("env-s3cr3t-value request-s3cr3t"))
print(told)
"""


def test_a_fresh_process_reads_its_environment_and_knows_the_default_keys() -> None:
    """In a new process (the CLI's), the environment's secret and a value under a default secret
    key are masked, the default patterns are the ones in use until others are set, and the
    first listener added is told the run's value, in each of its forms."""
    done = subprocess.run(
        [sys.executable, "-c", FRESH_PROCESS],
        env={**os.environ, "DEPLOY_PASSWORD": "env-s3cr3t-value"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    said = ["True", f"{REDACTED} {REDACTED}", repr([("r1", written_forms("request-s3cr3t"))])]
    assert (said, "") == (done.stdout.splitlines(), done.stderr)


def test_a_bound_method_listener_removed_is_told_no_more() -> None:
    """A listener added and removed as ``holder.method`` (a new object at each access, as the
    log writer's ``self.remask``) is removed: values learnt after it are not told to it."""

    class Holder:
        def __init__(self) -> None:
            self.told: list[tuple[str, tuple[str, ...]]] = []

        def listen(self, run_id: str, values: tuple[str, ...]) -> None:
            self.told.append((run_id, values))

    holder = Holder()
    add_secret_listener(holder.listen)
    remember_secrets({"token": "first-s3cr3t-1111"}, run_id="r1")
    remove_secret_listener(holder.listen)
    remember_secrets({"token": "second-s3cr3t-2222"}, run_id="r2")
    assert [("r1", written_forms("first-s3cr3t-1111"))] == holder.told


def test_a_listener_is_told_only_a_runs_values_new_to_the_process() -> None:
    """A value learnt outside a run, or known before, is not told: only the run's new ones,
    in each of their forms."""
    told: list[tuple[str, tuple[str, ...]]] = []

    def listen(run_id: str, values: tuple[str, ...]) -> None:
        told.append((run_id, values))

    add_secret_listener(listen)
    try:
        remember_secrets({"token": "outside-s3cr3t-1"})
        remember_secrets({"token": "outside-s3cr3t-1"}, run_id="r1")
        remember_secrets({"token": "run-s3cr3t-2222"}, run_id="r2")
    finally:
        remove_secret_listener(listen)
    assert [("r2", written_forms("run-s3cr3t-2222"))] == told


def test_a_failing_listener_is_logged_and_the_value_still_masked(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A listener's error does not reach the stage that learnt the value: it is logged, with
    its traceback, and the value is masked all the same."""

    def fail(run_id: str, values: tuple[str, ...]) -> None:
        raise RuntimeError("listener bug")

    add_secret_listener(fail)
    try:
        remember_secrets({"token": "run-s3cr3t-3333"}, run_id="r3")
    finally:
        remove_secret_listener(fail)
    logged = [(r.getMessage(), r.exc_info is not None) for r in caplog.records]
    assert (REDACTED, [("a listener of newly masked values failed", True)]) == (
        redact_text("run-s3cr3t-3333"),
        logged,
    )
