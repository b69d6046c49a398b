"""A secret command-line option whose value a space parts from it (``--password VALUE``): the
value is redacted in free text (a command line, an error message, a command's output) when the
option's last word is a secret word and the value is neither the next option nor a prose word,
and a real run records it nowhere (docs/redaction.md, "Secret values")."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from cli_support import taskdaemon, write
from redaction_support import shown_everywhere
from taskdaemon.pipeline import secret_shapes
from taskdaemon.pipeline.redaction import REDACTED, redact_lines, redact_text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("mysql --password hunter2 -u root", f"mysql --password {REDACTED} -u root"),
        ("curl --api-key k3y-abc https://x", f"curl --api-key {REDACTED} https://x"),
        ("deploy --db-password s3cr3t", f"deploy --db-password {REDACTED}"),
        ("openssl pkcs12 -password pass:1234", f"openssl pkcs12 -password {REDACTED}"),
        ("gh --token\tghx1234", f"gh --token\t{REDACTED}"),
        ('cli --secret "two words" -v', f'cli --secret "{REDACTED}" -v'),
        ("cli --secret 'is' -v", f"cli --secret '{REDACTED}' -v"),  # quoted: a value
        ("x --API_KEY Abc123", f"x --API_KEY {REDACTED}"),
        ("x --token isabel-2", f"x --token {REDACTED}"),  # a word that starts like prose
        ("command 'run --token abc123' exited", f"command 'run --token {REDACTED}' exited"),
        # gpg's passphrase, and where openssl reads a key's password (``pass:`` is the password).
        ("gpg --batch --passphrase c0rrect -d f", f"gpg --batch --passphrase {REDACTED} -d f"),
        ("x --signing-passphrase 'a b'", f"x --signing-passphrase '{REDACTED}'"),
        ("openssl rsa -passin pass:hunter2 -in k", f"openssl rsa -passin {REDACTED} -in k"),
        ("openssl req -passout env:PW", f"openssl req -passout {REDACTED}"),
    ],
)
def test_a_secret_option_loses_the_value_after_it(text: str, expected: str) -> None:
    """The word after a secret option is its value, quoted or not, whatever the case."""
    assert expected == redact_text(text)
    assert [expected] == redact_lines([text])


@pytest.mark.parametrize(
    "text",
    [
        "mysql -u root --password -D shop",  # --password prompts; -D is the next option
        "app --password-file /run/pw --token-stdin host",  # options that take no secret
        "the --password option is ignored",  # prose
        "--token is required. Use --secret, or --api-key.",
        "dbus-send --session --print-reply",
        "curl --cookie jar.txt --session abc",  # no secret word of an option taking a value
        "gpg --passwd user-id",  # a user id: gpg's --passwd is a command
        "gpg --passphrase-file pw.txt --passphrase-fd 0",  # where to read it, not the secret
        "ffmpeg -i in.mp4 -pass 2 -b:v 1M out.mp4",  # -pass is an encoding pass
        "gcloud run deploy --update-secrets K=V",  # plural: several secret references
        "x--token abc a-b--secret c",  # no option: the dashes are inside a word
        '\\"--token\\" abc',  # an option's name quoted in JSON text
    ],
)
def test_what_is_not_a_secret_option_value_stays(text: str) -> None:
    """A value starting with a dash, a prose word, an option whose last word is not a secret
    word and dashes inside a word leave the text as it is."""
    assert text == redact_text(text)


@pytest.mark.parametrize("text", ["--token abcdefgh", "--passphrase abcdefgh", "-passin xyz"])
def test_a_secret_option_alone_passes_the_pre_check(text: str) -> None:
    """A text whose only hint is the option (no ``=`` or ``:``) reaches the pattern."""
    assert secret_shapes.may_hold_secret(text)
    assert secret_shapes.shapes().search(text) is not None


SECRET = "opt-s3cr3t-value"

PIPELINE = f"""\
    name: options
    stages:
      - name: connect
        command: "echo trying dbtool --password {SECRET} --host db >&2; exit 3"
        triggers: [{{manual: {{approval_required: false}}}}]
"""


@pytest.mark.slow
def test_a_real_run_records_a_secret_option_value_nowhere(home: Path, tmp_path: Path) -> None:
    """A command stage whose command line holds ``--password VALUE``, printed on stderr and
    failing: the value is in none of ``logs`` (text and JSON), ``runs show`` (text and JSON), a
    dump's files, nor any byte of the span store; the redacted line is there."""
    pipeline = write(tmp_path / "options.yaml", PIPELINE)
    done = taskdaemon(home, "run", "-q", str(pipeline), cwd=tmp_path)
    assert 1 == done.returncode, done.stderr
    run_id = done.stdout.strip() or _only_run(home)
    shown = shown_everywhere(home, run_id, tmp_path)
    shown["run"] = done.stdout + done.stderr
    shown["store"] = "".join(path.read_bytes().decode("latin-1") for path in home.glob("spans.db*"))
    leaks = sorted(name for name, text in shown.items() if SECRET in text)
    said = f"trying dbtool --password {REDACTED} --host db"
    assert ([], True, True) == (
        leaks,
        said in shown["logs"],
        f"--password {REDACTED}" in shown["runs show --json"],
    )


def _only_run(home: Path) -> str:
    with sqlite3.connect(home / "spans.db") as db:
        ((run_id,),) = db.execute("SELECT trace_id FROM traces").fetchall()
    return str(run_id)
