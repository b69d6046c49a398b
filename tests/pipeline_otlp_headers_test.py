"""The OTLP header variables' check (``otlp_headers``): a malformed member stops a command at
start, in one line that never holds the member's text."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli_support import taskdaemon
from taskdaemon.pipeline.otlp_headers import header_problems

SECRET = "S3cr3tT0ken9f8e7d"


@pytest.mark.parametrize(
    "value",
    [
        "Authorization=Bearer%20" + SECRET,
        "Authorization=Bearer " + SECRET,
        f" x-api-key = {SECRET} , tenant=a=b ,",
        "",
    ],
)
def test_headers_the_sdk_sends_pass(value: str) -> None:
    """URL-encoded values, a space inside a value (the SDK's liberal rule), spaces around the
    separators, an ``=`` in a value and empty members are what the SDK sends: no problem."""
    assert [] == header_problems({"OTEL_EXPORTER_OTLP_TRACES_HEADERS": value})


@pytest.mark.parametrize(
    ("value", "why"),
    [
        (SECRET, "member 1 of 1"),
        (f"tenant=a,Bearer {SECRET}", "member 2 of 2"),
        (f'x-api-key="{SECRET}"', "member 1 of 1"),
        (f"bad key={SECRET},{SECRET}", "member 1, 2 of 2"),
        (
            ",".join([SECRET] * 65_000),
            "member 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 and 64990 more of 65000",
        ),
    ],
)
def test_members_the_sdk_would_drop_are_named_by_position(value: str, why: str) -> None:
    """A bare token, a member without a key, a quoted value, a key with a space: each is named
    by its position, the first ten of them past which the rest are counted (65,000 bad
    members were a 440 KB line), and the text (a credential) is in no problem."""
    problems = header_problems({"OTEL_EXPORTER_OTLP_HEADERS": value})
    assert [("OTEL_EXPORTER_OTLP_HEADERS", True, False)] == [
        (variable, why in text, SECRET in text) for variable, text in problems
    ]


def test_a_command_refuses_a_token_pasted_in_bare(tmp_path: Path) -> None:
    """``taskdaemon runs list`` with a bare token as the headers: exit 2 and one line naming
    the variable, not the token (the SDK's own warning held it whole)."""
    done = taskdaemon(tmp_path / "home", "runs", "list", OTEL_EXPORTER_OTLP_LOGS_HEADERS=SECRET)
    lines = done.stderr.splitlines()
    assert (2, 1, True, False) == (
        done.returncode,
        len(lines),
        "invalid setting OTEL_EXPORTER_OTLP_LOGS_HEADERS" in done.stderr,
        SECRET in done.stderr + done.stdout,
    ), done.stderr
