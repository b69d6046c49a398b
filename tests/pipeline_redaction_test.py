"""Redaction: secret keys by their words, secret values by their shape, and a real run whose
handlers return, log, run and raise secrets, none of which reaches the span store, the exported
spans, the logs, the CLI output or any view of the run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import orjson
import pytest

from taskdaemon.pipeline import payloads, settings
from taskdaemon.pipeline.payloads import PayloadCapture
from taskdaemon.pipeline.redaction import REDACTED, redact, redact_lines, redact_text
from taskdaemon.pipeline.secret_keys import key_matcher
from taskdaemon.pipeline.secret_shapes import open_key_start
from taskdaemon.pipeline.settings import load_settings
from taskdaemon.pipeline.tracking import SpanStore

TASKDAEMON = str(Path(sys.executable).with_name("taskdaemon"))

# Fake secrets of each shape, built in pieces so no scanner mistakes this file for a leak.
AWS = "AKIA" + "TESTONLY01234567"
GITHUB = "ghp_" + "T3st" * 9
GITHUB_FINE = "github_pat_" + "11TESTONLY0" * 3
GITLAB = "glpat-" + "testonly" * 3
SLACK = "xoxb-" + "1234567890-testonlytoken"
JWT = "eyJhbGciOiJIUzI1NiJ9" + ".eyJzdWIiOiJ0ZXN0b25seSJ9" + ".c2lnbmF0dXJlLXRlc3Q"
BEARER = "opaque-" + "testonly-0123456789"
BASIC = "dGVzdG9ubHk6" + "aHVudGVyMg=="  # base64 of user:password (RFC 7617)
PEM_BODY = "MIIBOgIBAAJBAKj34GkxFhD90vcNLYLInFEX6Ppy1tPf9Cnzj4p4WGeKLs1Pt8Qu"
PEM = f"-----BEGIN RSA PRIVATE KEY-----\n{PEM_BODY}\n-----END RSA PRIVATE KEY-----"
URL_PASSWORD = "hunter2-" + "testonly"

#: (the text holding a secret, the secret itself, what redaction leaves of the text)
SHAPES = [
    (f"key {AWS} here", AWS, f"key {REDACTED} here"),
    (f"token {GITHUB}.", GITHUB, f"token {REDACTED}."),
    (GITHUB_FINE, GITHUB_FINE, REDACTED),
    (f"gitlab={GITLAB}", GITLAB, f"gitlab={REDACTED}"),
    (f"slack {SLACK}", SLACK, f"slack {REDACTED}"),
    (f"jwt: {JWT}", JWT, f"jwt: {REDACTED}"),
    (f"Authorization: Bearer {BEARER}", BEARER, f"Authorization: Bearer {REDACTED}"),
    (f"sent BEARER {BEARER} on", BEARER, f"sent BEARER {REDACTED} on"),  # no other hint
    (f"> Authorization: Basic {BASIC}", BASIC, f"> Authorization: Basic {REDACTED}"),  # curl -v
    (f"Proxy-Authorization: basic {BASIC}", BASIC, f"Proxy-Authorization: basic {REDACTED}"),
    (f"key:\n{PEM}\nend", PEM_BODY, f"key:\n{REDACTED}\nend"),
    (f"-----BEGIN PRIVATE KEY-----\n{PEM_BODY}", PEM_BODY, REDACTED),  # cut before its END
    (
        f"tempo+http://user:{URL_PASSWORD}@tempo:3200/api",
        URL_PASSWORD,
        f"tempo+http://user:{REDACTED}@tempo:3200/api",
    ),
    (f"redis://:{URL_PASSWORD}@cache/0", URL_PASSWORD, f"redis://:{REDACTED}@cache/0"),
]


@pytest.mark.parametrize(("text", "secret", "expected"), SHAPES)
def test_each_secret_shape_is_redacted_from_text(text: str, secret: str, expected: str) -> None:
    """Each shape of secret is replaced, and only the secret: the text around it stays."""
    assert expected == redact_text(text)


@pytest.mark.parametrize(
    "text",
    [
        "stage 'build' failed: exit status 2",
        "Bearer authentication failed",
        "see http://example.com/a:b@c and https://host:8080/path",
        "AKIA is a prefix; AIDATESTONLY01234567 names a user, not a key",
        "-----BEGIN PUBLIC KEY----- is not secret",
    ],
)
def test_text_without_secrets_is_left_alone(text: str) -> None:
    """Prose, ports, paths, user ids and public keys are not taken for secrets."""
    assert text is redact_text(text)


def test_keys_are_secret_by_their_words_not_by_substrings() -> None:
    """Keys split on _ - . spaces and camelCase: a secret word makes them secret, and so does a
    word ending in ``password``, ``passwd`` or ``passphrase`` (``PGPASSWORD``) and ``sshpass``
    or ``dbpass``; a word that merely contains one (passed, tokenizer, passage, bypass) and
    ``pass`` alone (a test's verdict, a count) do not."""
    secret = key_matcher()
    keys = [
        "session_cookie",
        "sessionToken",
        "X-Api-Key",
        "db_password",
        "passwd",
        "PWD",
        "GPG_PASSPHRASE",
        "PGPASSWORD",
        "CURLOPT_SSLKEYPASSWD",
        "SSHPASS",
        "DB_PASS",
        "ansible_ssh_pass",
        "MYSQL_PWD",
        "AWS_SECRET_ACCESS_KEY",
        "GITHUB_TOKEN",
        "client.secret",
        "apikey",
        "authorisation",
        "aws credentials",
        "privateKey",
        "sentry_dsn",
        "bearer",
        "passed",
        "tokenizer",
        "passage",
        "compass",
        "bypass",
        "SSH_ASKPASS",
        "PASS",
        "XPASS",
        "PASS_MAX_DAYS",
        "PGPASSFILE",
        "api",
        "keys",
    ]
    expected = [True] * 22 + [False] * 12
    assert expected == [secret(key) for key in keys]


def test_the_library_and_the_cli_share_one_list() -> None:
    """payloads and settings expose the same list, and the CLI's default settings redact a
    session cookie as the library does (the CLI's list once lacked cookie and session)."""
    capture = PayloadCapture(redact_patterns=load_settings().redact_patterns)
    expected = (True, f'{{"passed":3,"session_cookie":"{REDACTED}"}}')
    actual = (
        settings.DEFAULT_REDACT_PATTERNS is payloads.DEFAULT_REDACT_PATTERNS,
        capture.capture({"session_cookie": "abc", "passed": 3}).json,
    )
    assert expected == actual


def test_structures_are_redacted_by_key_and_by_value_shape() -> None:
    """redact walks mappings and sequences: secret keys lose their value, strings their
    secret-shaped parts; an untouched structure comes back as the same object."""
    clean = {"goal": "ship", "steps": [1, ("a", "b")]}
    value = {
        "db_password": "pw",
        "nested": [{"url": f"postgres://app:{URL_PASSWORD}@db/app"}],
        "passed": 3,
    }
    expected = {
        "db_password": REDACTED,
        "nested": [{"url": f"postgres://app:{REDACTED}@db/app"}],
        "passed": 3,
    }
    assert (True, expected) == (redact(clean) is clean, redact(value))


def test_a_mapping_redacted_late_keeps_every_entry_in_order() -> None:
    """A mapping whose first changed entry comes after unchanged ones (scalars, strings, nested
    clean structures) comes back as a new dict with every entry, in order, the input untouched;
    a mapping type other than dict is walked alike."""
    from types import MappingProxyType

    value = {"n": 1, "s": "plain", "deep": {"x": [1]}, "token": "t0", "after": f"Bearer {GITHUB}"}
    before = dict(value)
    redacted = redact(value)
    proxied = redact(MappingProxyType(value))
    expected = [
        ("n", 1),
        ("s", "plain"),
        ("deep", {"x": [1]}),
        ("token", REDACTED),
        ("after", f"Bearer {REDACTED}"),
    ]
    assert (
        list(redacted.items()),
        list(proxied.items()),
        value,
        redacted["deep"] is value["deep"],
    ) == (
        expected,
        expected,
        before,
        True,
    )


def test_texts_remembered_clean_stay_bounded_and_secrets_are_never_remembered() -> None:
    """redact_text remembers short texts without a secret (a bounded set, emptied when full,
    long texts never kept) and never a text it changed: a secret is redacted every time."""
    from taskdaemon.pipeline import redaction

    secret = f"token: Bearer {GITHUB}"
    first = redact_text(secret)
    for i in range(3 * redaction._CLEAN_MAX_ENTRIES):
        redact_text(f"stage-{i}.0.1")
    long_text = "x" * (redaction._CLEAN_MAX_CHARS + 1)
    redact_text(long_text)
    assert (first, redact_text(secret)) == (f"token: Bearer {REDACTED}",) * 2
    assert len(redaction._clean) <= redaction._CLEAN_MAX_ENTRIES
    assert secret not in redaction._clean
    assert long_text not in redaction._clean
    assert f"stage-{3 * redaction._CLEAN_MAX_ENTRIES - 1}.0.1" in redaction._clean


# --- a real run -----------------------------------------------------------------------------

HANDLERS = f"""
import logging

log = logging.getLogger("leaky")
SECRETS = {SHAPES!r}


def produce(ctx):
    log.warning("connecting with %s", " ".join(text for text, _, _ in SECRETS))
    return {{
        "session_cookie": "cookie-value-testonly",
        "db_password": "pw-value-testonly",
        "passed": 3,
        "shapes": [text for text, _, _ in SECRETS],
    }}


def explode(ctx):
    raise RuntimeError("cannot deploy: " + " ".join(text for text, _, _ in SECRETS))
"""

PIPELINE = f"""
name: leaky
loops:
  produce: {{handler: "leaky:produce"}}
  explode: {{handler: "leaky:explode"}}
stages:
  - name: produce
    loop: produce
    triggers: [{{manual: {{approval_required: false}}}}]
  - name: fetch
    loop: command
    command: "true postgres://app:{URL_PASSWORD}@db/app --header 'Authorization: Bearer {BEARER}'"
    triggers: [{{on_completion: {{stage: produce}}}}]
  - name: deploy
    loop: explode
    triggers: [{{on_completion: {{stage: fetch}}}}]
"""

#: Every secret the run is seeded with (the key-based ones by their values).
SEEDED = sorted(
    {secret for _, secret, _ in SHAPES} | {"cookie-value-testonly", "pw-value-testonly"}
)


def _taskdaemon(cwd: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [TASKDAEMON, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.slow
def test_a_run_seeded_with_secrets_records_and_shows_none(tmp_path: Path) -> None:
    """A run whose handlers return, log, run (a command line) and raise secrets: the span store
    file, the exported spans, the JSON logs, the run's own output, ``runs show`` (table and
    JSON) and the DAG in DOT, JSON and Mermaid hold none of them, and show ``passed``."""
    (tmp_path / "leaky.py").write_text(textwrap.dedent(HANDLERS))
    (tmp_path / "leaky.yaml").write_text(PIPELINE)
    home = tmp_path / "home"
    env = {
        **os.environ,
        "TASKDAEMON_HOME": str(home),
        "TASKDAEMON_LOG_FORMAT": "json",
        "OTEL_TRACES_EXPORTER": "console",  # the exported spans, on stderr
        "OTEL_METRICS_EXPORTER": "none",
        "OTEL_LOGS_EXPORTER": "none",
    }
    run = _taskdaemon(tmp_path, env, "run", "leaky.yaml")
    outputs = {"run stdout": run.stdout, "run stderr (logs, exported spans)": run.stderr}
    store = b"".join(path.read_bytes() for path in sorted(home.glob("spans.db*")))
    outputs["span store"] = store.decode("utf-8", "replace")
    run_id = _run_id(home)
    for name, args in {
        "runs show": ("runs", "show", run_id),
        "runs show --json": ("runs", "show", run_id, "--json"),
        "dag dot": ("dag", "leaky.yaml", "--run", run_id),
        "dag json": ("dag", "leaky.yaml", "--run", run_id, "--format", "json"),
        "dag mermaid": ("dag", "leaky.yaml", "--run", run_id, "--format", "mermaid"),
    }.items():
        shown = _taskdaemon(tmp_path, env, *args)
        outputs[name] = shown.stdout + shown.stderr
    leaks = {
        name: [secret for secret in SEEDED if secret in text] for name, text in outputs.items()
    }
    # The run really recorded what it was given (redacted), and failed where it should.
    recorded = (
        run.returncode != 0,
        '\\"passed\\":3' in outputs["span store"],  # stage.output's JSON, inside the row's JSON
        "cannot deploy" in outputs["runs show"],
        "connecting with" in run.stderr,
    )
    assert ({name: [] for name in outputs}, (True,) * 4) == (leaks, recorded)


def _run_id(home: Path) -> str:
    with SpanStore(home / "spans.db") as store:
        (summary,) = store.search()
    return summary.run_id


def test_console_export_and_json_logs_are_json() -> None:
    """Redacted text stays valid JSON: the replacement holds no quote or backslash."""
    text = orjson.dumps({"msg": f"with {JWT} and {PEM}"}).decode()
    assert {"msg": f"with {REDACTED} and {REDACTED}"} == orjson.loads(redact_text(text))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("password=hunter2 ok", "password=[REDACTED] ok"),
        ('{"x": 1, "password": "s3 cr3t"}', '{"x": 1, "password": "[REDACTED]"}'),
        ("DB_PASSWORD: abc", "DB_PASSWORD: [REDACTED]"),
        ("session_id=abc;x=1", "session_id=[REDACTED];x=1"),
        ("passed=3 tokenizer=bpe keyboard: qwerty", "passed=3 tokenizer=bpe keyboard: qwerty"),
        # A word glued to a secret word: a program's variable (libpq's, sshpass's), a script's.
        ("PGPASSWORD=hunter2 psql -h db", "PGPASSWORD=[REDACTED] psql -h db"),
        ("SSHPASS='hunter2' sshpass -e ssh h", "SSHPASS='[REDACTED]' sshpass -e ssh h"),
        ("web1 ansible_ssh_pass=hunter2", "web1 ansible_ssh_pass=[REDACTED]"),
        ("DB_PASS: hunter2", "DB_PASS: [REDACTED]"),
        ("DBPASS=hunter2", "DBPASS=[REDACTED]"),
        *((text, text) for text in ("bypass=1 compass: N", "PASS: 3 SSH_ASKPASS=/bin/a")),
        # Command-line options: the dashes that open one may precede the key.
        ("mysql --password=hunter2 -u root", "mysql --password=[REDACTED] -u root"),
        ("cli '--api-key=k3y' -v", "cli '--api-key=[REDACTED]' -v"),
        ("java -Ddb.password=s3cret -jar app.jar", "java -Ddb.password=[REDACTED] -jar app.jar"),
        ("--token=abc", "--token=[REDACTED]"),
        ("x--password=abc a-b--token=c", "x--password=abc a-b--token=c"),
        # Every key word, in any case, also in the Unicode spellings that fold to ASCII.
        *(
            (f"{word}={value}", f"{word}=[REDACTED]")
            for word in (
                "Passwd",
                "PWD",
                "secrets",
                "Token",
                "api-key",
                "APIKEYS",
                "authorisation",
                "Credential",
                "private_key",
                "cookies",
                "Session",
                "DSN",
                "pa\u017f\u017fword",
                "api_\u212aey",
                "sess\u0130on",
            )
            for value in ("hunter2",)
        ),
    ],
)
def test_secret_keys_assigned_in_free_text_lose_their_value(text: str, expected: str) -> None:
    """A secret key word assigned in free text (a command's output, a message) keeps the key and
    loses the value, quoted or not; words that merely contain a key word are left alone."""
    assert expected == redact_text(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('request.api_key == "hunter2"', 'request.api_key == "[REDACTED]"'),
        ("inputs.password==hunter2 && ok", "inputs.password==[REDACTED] && ok"),
        ("request.token != 'hunter2'", "request.token != '[REDACTED]'"),
        ('api_key === "hunter2"', 'api_key === "[REDACTED]"'),
        ("token := hunter2", "token := [REDACTED]"),
    ],
)
def test_a_secret_key_compared_with_a_literal_loses_the_literal(text: str, expected: str) -> None:
    """A secret key compared with a literal (a CEL condition, a breakpoint's ``when``) loses
    the literal, which is the secret, as an assignment loses its value."""
    assert expected == redact_text(text)


def test_a_private_key_printed_over_several_lines_loses_every_line() -> None:
    """``redact_lines`` of a command's lines holding a PEM private key, its BEGIN and END lines
    each a line of their own, replaces each line of the key and keeps the lines around it."""
    begin, end = "-----BEGIN RSA PRIVATE KEY-----", "-----END RSA PRIVATE KEY-----"
    lines = ["before (1)", begin, PEM_BODY[:32], PEM_BODY[32:], end, "after (2)"]
    expected = ["before (1)", REDACTED, REDACTED, REDACTED, REDACTED, "after (2)"]
    assert expected == redact_lines(lines)


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        (["a", "-----BEGIN RSA PRIVATE KEY-----", "MIIB", "Proc-Type: 4,ENCRYPTED"], 1),
        (["key: -----BEGIN PRIVATE KEY-----", "MIIB"], 0),
        (["-----BEGIN PRIVATE KEY-----", "MIIB", "-----END PRIVATE KEY-----"], None),
        (["-----BEGIN PRIVATE KEY-----", "MIIB", "not base64 (a sentence)."], None),
        (["-----BEGIN PRIVATE KEY----- (shown)"], None),
        (["-----BEGIN CERTIFICATE-----", "MIIB"], None),
        (["MIIB", "abc"], None),
        ([], None),
    ],
    ids=[
        "open",
        "after-text",
        "closed",
        "cut-by-text",
        "text-after-begin",
        "not-a-key",
        "none",
        "empty",
    ],
)
def test_open_key_start_names_the_begin_line_of_a_key_left_open(
    lines: list[str], expected: int | None
) -> None:
    """``open_key_start`` is the index of a private key's BEGIN line when only a key body's
    characters follow it to the last line, and None otherwise."""
    assert expected == open_key_start(lines)


@pytest.mark.parametrize(
    "value",
    [
        {"command": 'echo \'{"api_key": "abcdefgh12345678"}\''},
        {"cmd": 'curl -d "token=abcdefgh12345678"'},
        {"note": 'password: "abc\\\\def12345678" and more'},
    ],
    ids=["escaped-quoted", "bare-before-escaped-quote", "escaped-backslash-inside"],
)
def test_an_assignment_inside_json_text_loses_its_value_and_the_text_stays_json(
    value: dict[str, str],
) -> None:
    """A secret assigned inside a JSON string (its quotes escaped, as in a recorded definition
    or payload) loses its value, and the redacted text still decodes as JSON."""
    redacted = redact_text(json.dumps(value))
    decoded = json.loads(redacted)
    assert (True, False) == (REDACTED in str(decoded), "12345678" in redacted), redacted
