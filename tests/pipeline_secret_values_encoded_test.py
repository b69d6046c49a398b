"""``secret_values``: a value known as a secret is masked in the encodings a program writes it
in beyond the escapes of ``pipeline_secret_values_test``: base64 (at any place in the text
encoded, either alphabet, padded or not), JSON text inside a JSON string, HTML, a CSV field and
a shell's single-quoted word; a real run's records keep none of them."""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

import pytest

from cli_support import taskdaemon, write
from redaction_support import console_json_objects, shown_everywhere
from taskdaemon.pipeline.redaction import REDACTED, redact_lines, redact_text
from taskdaemon.pipeline.secret_values import base64_forms, remember_secrets

#: A value holding characters each encoding below writes otherwise.
SECRET = 'it\'s "s3cr3t" <k&y>/+9'


def b64(text: str, *, safe: bool = False) -> str:
    encode = base64.urlsafe_b64encode if safe else base64.b64encode
    return encode(text.encode()).decode()


def recoverable(text: str) -> list[str]:
    """The pieces of ``SECRET`` of 6 characters or more that ``text`` gives back, as written
    or base64-decoded from any of its words at any of the three alignments."""
    found = {SECRET[i : i + 6] for i in range(len(SECRET) - 5) if SECRET[i : i + 6] in text}
    for word in text.replace("[REDACTED]", " ").split():
        for skip in range(4):
            chunk = word[skip:]
            chunk = chunk[: len(chunk) // 4 * 4]
            for alphabet in (b"+/", b"-_"):
                try:
                    plain = base64.b64decode(chunk, altchars=alphabet).decode("utf-8", "replace")
                except ValueError:
                    continue
                found |= {
                    SECRET[i : i + 6] for i in range(len(SECRET) - 5) if SECRET[i : i + 6] in plain
                }
    return sorted(found)


@pytest.mark.parametrize("before", ["", "u", "us", "user:", "Authorization:x"])
@pytest.mark.parametrize("safe", [False, True])
def test_a_value_is_masked_in_the_base64_of_any_text_holding_it(before: str, safe: bool) -> None:
    """Wherever the value starts in the text encoded (a multiple of 3 bytes in, or 1 or 2 past
    one), and whatever follows it, its base64 gives nothing of it back; before, all of it."""
    remember_secrets({"password": SECRET})
    for after in ("", "x", "@host:5432"):
        written = f"auth {b64(before + SECRET + after, safe=safe)} end"
        assert ([], True) == (recoverable(redact_text(written)), REDACTED in redact_text(written))


def test_a_base64_line_wrapped_by_the_base64_program_is_masked() -> None:
    """``base64`` cuts its output at 76 columns: the value's form over two lines of one read
    is found as a wrapped value's is."""
    long_secret = SECRET * 4
    remember_secrets({"password": long_secret})
    encoded = b64("x" + long_secret)
    lines = [encoded[:76], encoded[76:]]
    assert REDACTED in "".join(redact_lines(lines))
    assert not any(piece in "".join(redact_lines(lines)) for piece in base64_forms(long_secret))


@pytest.mark.parametrize(
    "written",
    [
        json.dumps(json.dumps({"k": SECRET})),  # a JSON log line whose message is JSON
        json.dumps(json.dumps({"k": SECRET}, ensure_ascii=False), ensure_ascii=False),
        f"<td>{html.escape(SECRET)}</td>",
        '"' + SECRET.replace('"', '""') + '",next',  # a CSV field
        "+ curl -u '" + SECRET.replace("'", "'\\''") + "'",  # bash's set -x
    ],
)
def test_a_value_is_masked_in_each_escaped_form(written: str) -> None:
    """JSON text inside a JSON string, HTML, CSV and the shell's quoting write the value
    otherwise; before, each left it readable (``s3cr3t``) in the output."""
    remember_secrets({"password": SECRET})
    assert ([], True) == (recoverable(redact_text(written)), REDACTED in redact_text(written))


def test_another_values_base64_and_a_short_value_are_left_alone() -> None:
    """Only the value's own forms are masked: the base64 of another text stays, and a value
    shorter than the minimum has no base64 forms, as it has no other."""
    remember_secrets({"password": SECRET})
    other = b64("another text, not a secret at all")
    assert (other, ()) == (redact_text(other), base64_forms("short"))


PIPELINE = """\
name: encoded
stages:
  - name: a
    command: >-
      printf '%s' "user:$TASKDAEMON_INPUT_K" | base64 &&
      python3 -c 'import json, os;
      print(json.dumps(json.dumps({"k": os.environ["TASKDAEMON_INPUT_K"]})))' &&
      bash -xc ': "$TASKDAEMON_INPUT_K"'
    triggers: [{manual: {approval_required: false}}]
    inputs: {k: request.api_key}
"""


@pytest.mark.slow
def test_a_run_printing_its_secret_encoded_keeps_none_of_it(home: Path, tmp_path: Path) -> None:
    """A command stage prints the request's secret base64-encoded after ``user:``, as JSON in
    a JSON string, and in bash's ``-x`` trace: ``logs``, ``runs show``, a dump, the
    store's tables, the run's own output and the console span export give none of it back."""
    request = ("--input", f"api_key={SECRET}")
    pipeline = write(tmp_path / "encoded.yaml", PIPELINE)
    ran = taskdaemon(home, "run", str(pipeline), *request, OTEL_TRACES_EXPORTER="console")
    assert 0 == ran.returncode, ran.stderr
    (run_id,) = (line.split()[1] for line in ran.stdout.splitlines() if line.startswith("run "))
    shown = shown_everywhere(home, run_id, tmp_path)
    shown["run"] = ran.stdout + ran.stderr
    leaked = {name: recoverable(text) for name, text in shown.items() if recoverable(text)}
    exported = [span for span in console_json_objects(ran.stderr) if "name" in span]
    assert ({}, True) == (leaked, bool(exported))
    assert 3 <= shown["logs"].count(REDACTED), shown["logs"]
