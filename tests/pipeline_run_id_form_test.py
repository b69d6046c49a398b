"""One rule for what a run id looks like (``run_id_form.py``): the server's request check and
the span store refuse the same texts with the same words, and the server learns the rule
without loading the store."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

import server_support
from taskdaemon.pipeline.engine import Engine
from taskdaemon.pipeline.errors import RunNotFoundError
from taskdaemon.pipeline.http_security import ApiAuth
from taskdaemon.pipeline.run_id_form import run_id_problem
from taskdaemon.pipeline.tracking.store import SpanStore

TOKEN = "run-id-form-test-token-0123456789"
#: Texts no reader takes for a run id, as a client could put them in a URL path.
NOT_IDS = ("abc", "nope", "deploy", "a" * 33, "0123456789abcdef0123456789abcdefg", "x" * 300)


@pytest.mark.parametrize(
    ("text", "full", "problem"),
    [
        ("abcd", False, None),
        ("ABCD", False, None),
        ("0" * 32, False, None),
        ("0" * 32, True, None),
        ("abc", False, "not a run id (32 hex digits, or a prefix of at least 4): 'abc'"),
        ("0" * 33, False, f"not a run id (32 hex digits, or a prefix of at least 4): '{'0' * 33}'"),
        ("abcd", True, "not a run id (32 hex digits): 'abcd'"),
        (" abcd", False, "not a run id (32 hex digits, or a prefix of at least 4): ' abcd'"),
        ("abcg", False, "not a run id (32 hex digits, or a prefix of at least 4): 'abcg'"),
        ("", False, "not a run id (32 hex digits, or a prefix of at least 4): ''"),
        (
            "é" * 50,
            False,
            f"not a run id (32 hex digits, or a prefix of at least 4): '{'é' * 39}…'",
        ),
    ],
)
def test_a_text_is_a_run_id_or_the_reason_it_is_not(
    text: str, full: bool, problem: str | None
) -> None:
    """Hex, 4 to 32 digits (32 when ``full``); otherwise one line quoting at most 40 characters."""
    assert problem == run_id_problem(text, full=full)


def test_a_prefix_is_taken_unless_the_whole_id_is_asked_for() -> None:
    """Without ``full`` a prefix of 4 names a run (what the span store's readers resolve)."""
    assert (None, None) == (run_id_problem("abcd"), run_id_problem("0" * 32))


def test_a_text_of_40_characters_is_quoted_whole_and_one_more_is_cut() -> None:
    """40 characters are the most quoted (``quoting.quote``): a text of 40 is shown whole,
    one of 41 as its first 39 and an ellipsis."""
    forty = "g" * 40
    rule = "32 hex digits, or a prefix of at least 4"
    assert [f"not a run id ({rule}): '{forty}'", f"not a run id ({rule}): '{forty[:39]}…'"] == [
        run_id_problem(forty),
        run_id_problem(forty + "h"),
    ]


async def test_the_server_and_the_store_refuse_a_run_id_in_the_same_words(tmp_path: Path) -> None:
    """For every text that is no run id, the server's 400 (over TCP) says what the span store's
    ``resolve_run_id`` says."""
    with SpanStore(tmp_path / "spans.db", missing_ok=True) as store:
        said_by_store = []
        for text in NOT_IDS:
            with pytest.raises(RunNotFoundError) as refused:
                store.resolve_run_id(text)
            said_by_store.append(str(refused.value))
    async with (
        Engine() as engine,
        server_support.serving(engine, auth=ApiAuth.configured(TOKEN)) as server,
        httpx.AsyncClient(
            base_url=server.url, headers={"authorization": f"Bearer {TOKEN}"}
        ) as client,
    ):
        answers = [await client.get(f"/api/runs/{text}") for text in NOT_IDS]
    assert [400] * len(NOT_IDS) == [answer.status_code for answer in answers]
    assert said_by_store == [answer.json()["error"] for answer in answers]


def test_the_server_learns_the_rule_without_the_store() -> None:
    """Importing the server's request check loads neither sqlite3 nor the span store."""
    code = (
        "import json, sys\n"
        "import taskdaemon.pipeline.http_answers\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    modules = json.loads(done.stdout)
    assert "taskdaemon.pipeline.run_id_form" in modules
    assert [] == [m for m in modules if m == "sqlite3" or m.startswith("taskdaemon.pipeline.track")]
