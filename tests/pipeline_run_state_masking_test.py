"""A value that became known as a secret after texts holding it were kept (a stage returned
it under ``token``) is masked in every live view: the live run's record (its triggers, errors
and reasons, redacted once as their events arrived, are redacted again once per change of what
is known, as stored rows are), the run's result its summary reads, a stage's log tail, the
debugger's views and a dump (whose spans a live run's open spans write again from memory)."""

from __future__ import annotations

import contextlib
import tarfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

import browser_support
from cli_support import Served, taskdaemon, write
from pipeline_debug_cli_support import debug as debug_cli
from run_state_support import RUN, fold, ids, skipped, started
from taskdaemon.pipeline import run_state, run_state_books
from taskdaemon.pipeline.events import BreakpointHit, RunStarted, StageFinished
from taskdaemon.pipeline.log_rows import LogRow
from taskdaemon.pipeline.model import Manual, OnCondition, Pipeline, Stage
from taskdaemon.pipeline.redaction import REDACTED
from taskdaemon.pipeline.secret_values import remember_secrets
from taskdaemon.pipeline.state import StageStatus
from taskdaemon.pipeline.tracking.log_writer import SqliteLogWriter
from taskdaemon.pipeline.web import _logs as web_logs

LEARNT = "LearntTok-99887766"  # shown before the run learns it as a secret
CONDITION = f"stages.a.outputs.note == '{LEARNT}'"

PIPELINE = Pipeline(
    "p",
    (
        Stage("a", "python", (Manual(),)),
        Stage("b", "python", (OnCondition(CONDITION),)),
        Stage("c", "python", (Manual(),)),
    ),
)
EVENTS = [
    RunStarted(run_id=RUN, pipeline=PIPELINE, request={}, at=10.0),
    started("a", 11.0, inputs={"note": LEARNT}),
    StageFinished(
        **ids("a", 0, 1), status=StageStatus.FAILURE, at=12.0, error=f"vault said {LEARNT}"
    ),
    skipped("b", f"condition {CONDITION} does not hold", 13.0),
    BreakpointHit(**ids("c", 0, 1), at=14.0, kind="start", reason=f"event {LEARNT}"),
]


def _state() -> run_state.RunState:
    return fold(EVENTS, payloads=lambda value: f"{dict(value)}")


def test_texts_kept_before_a_value_was_learnt_are_masked_in_the_next_record() -> None:
    """The trigger, the inputs, the error, the skip reason and the pause reason held the value
    in clear while it was not a secret; once learnt, the next record holds it nowhere."""
    state = _state()
    assert LEARNT in repr(state.record())
    remember_secrets({"token": LEARNT})
    record = state.record()
    a, b, c = record.stages
    assert (
        f"on condition stages.a.outputs.note == '{REDACTED}'",
        f"stages.a.outputs.note == '{REDACTED}'",
        f"{{'note': '{REDACTED}'}}",
        f"vault said {REDACTED}",
        f"condition stages.a.outputs.note == '{REDACTED}' does not hold",
        f"event {REDACTED}",
        False,
    ) == (
        b.triggers[0],
        b.trigger_specs[0].expression,
        a.attempts[0].inputs,
        a.attempts[0].error,
        b.skip_reason,
        c.paused_before_start[0].reason,
        LEARNT in repr(record),
    )


def test_a_record_redacts_nothing_again_while_nothing_new_is_known(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The texts are redacted again at the first record after a change only: the records
    after it, with nothing new learnt, redact no text."""
    state = _state()
    remember_secrets({"token": LEARNT})
    calls: list[str] = []

    def counted(text: str) -> str:
        calls.append(text)
        return text

    monkeypatch.setattr(run_state, "redact_text", counted)
    monkeypatch.setattr(run_state_books, "redact_text", counted)  # the books' own texts
    state.record()
    first = len(calls)
    state.record()
    state.record()
    assert (True, first) == (first > 0, len(calls))


def _served(home: Path) -> str:
    """``early`` fails saying the value, ``skipper``'s condition quotes it, then ``fetch``
    returns it under ``token`` once the file ``told`` is in ``home``; ``hold`` waits for
    ``go``."""
    return f"""\
    name: learnt
    error_strategy: continue
    stages:
      - name: early
        command: 'echo "vault said {LEARNT}" >&2; exit 3'
        triggers: [{{manual: {{approval_required: false}}}}]
      - name: skipper
        command: 'echo "{{}}"'
        triggers: [{{on_condition: {{expression: "'{LEARNT}' == 'no'"}}}}]
      - name: fetch
        command: >-
          while [ ! -e {home / "told"} ]; do sleep 0.05; done;
          echo '{{"token": "{LEARNT}"}}'
        triggers: [{{on_completion: {{stage: early, success_only: false}}}}]
      - name: hold
        command: 'while [ ! -e {home / "go"} ]; do sleep 0.05; done; echo "{{}}"'
        triggers: [{{on_completion: {{stage: fetch}}}}]
"""


def _first_event(url: str, headers: dict[str, str]) -> str:
    """The first live event of the stream at ``url`` (the whole page state), as sent."""
    with httpx.stream("GET", url, headers=headers, timeout=30) as response:
        return next(line for line in response.iter_lines() if line.startswith("data: "))


@pytest.mark.slow
def test_the_live_views_of_run_serve_mask_a_value_learnt_after_the_run_started(
    home: Path, serve: Callable[..., Served]
) -> None:
    """``run --serve``: ``early`` failed saying the value and ``skipper``'s condition quotes
    it before ``fetch`` returns it under ``token``; while ``hold`` keeps the run open, the
    engine's live record (``GET /api/runs/RUN``), the page's live stream and the run page
    show both masked, and the value nowhere."""
    pipeline = write(home / "learnt.yaml", _served(home))
    (home / "told").touch()
    served = serve(str(pipeline), "--serve", "127.0.0.1:0")
    url = served.wait_for_line("API: ").split("API: ")[1].split()[0].rstrip("/")
    served.wait_for_line("hold")
    run = f"{url}/api/runs/{served.run_id}"
    headers = {"Authorization": f"Bearer {(home / 'api-token').read_text().strip()}"}
    try:
        answer = httpx.get(run, headers=headers, timeout=30)
        event = _first_event(f"{run}/stream", headers)
        page = httpx.get(f"{url}/runs/{served.run_id}", headers=headers, timeout=30).text
    finally:
        (home / "go").touch()
    code, _, stderr = served.finish()
    stages = {stage["name"]: stage for stage in answer.json()["stages"]}
    assert (
        True,
        f"on condition '{REDACTED}' == 'no'",
        f"vault said {REDACTED}",
        [False] * 3,
    ) == (
        answer.json()["live"],
        stages["skipper"]["triggers"][0],
        stages["early"]["attempts"][0]["error"].splitlines()[-1],
        [LEARNT in text for text in (answer.text, event, page)],
    ), stderr
    assert 1 == code, stderr


@pytest.mark.slow
def test_run_s_summary_masks_a_value_learnt_after_the_error_that_said_it(home: Path) -> None:
    """``run``'s summary, printed at the run's end: ``early``'s error (its row and the run's
    error line) and ``skipper``'s reason said the value before ``fetch`` returned it under
    ``token``, and show it masked; so does the run's last progress line, printed then."""
    (home / "go").touch()
    (home / "told").touch()
    done = taskdaemon(home, "run", str(write(home / "learnt.yaml", _served(home))))
    rows = {line.split()[0]: line for line in done.stdout.splitlines() if line}
    (ended,) = (line for line in done.stderr.splitlines() if " run learnt " in line)
    assert (1, True, True, True, False, True) == (
        done.returncode,
        f"vault said {REDACTED}" in rows["error:"],
        "[REDACTED]" in rows["early"],
        "[REDACTED]" in rows["skipper"],
        LEARNT in done.stdout,
        f"vault said {REDACTED}" in ended,
    ), done.stdout + done.stderr


def _printing(home: Path) -> str:
    """``fetch`` prints the value, waits for the file ``told`` in ``home``, then returns it
    under ``token``; ``hold`` waits for ``go``."""
    return f"""\
    name: printing
    stages:
      - name: fetch
        command: >-
          V=$(printf '%s-%s' {LEARNT.replace("-", " ")});
          echo "got $V from vault" >&2;
          while [ ! -e {home / "told"} ]; do sleep 0.05; done;
          printf '{{"token": "%s"}}' "$V"
        triggers: [{{manual: {{approval_required: false}}}}]
      - name: hold
        command: 'while [ ! -e {home / "go"} ]; do sleep 0.05; done; echo "{{}}"'
        triggers: [{{on_completion: {{stage: fetch}}}}]
"""


@pytest.mark.slow
def test_a_live_log_tail_masks_a_line_it_read_before_the_value_was_learnt(
    home: Path, serve: Callable[..., Served]
) -> None:
    """The page's log stream of ``fetch`` sent its line saying the value while the value was
    no secret; once ``fetch`` returns it under ``token``, the tails sent after show the line
    masked, and the value nowhere."""
    served = serve(str(write(home / "printing.yaml", _printing(home))), "--serve", "127.0.0.1:0")
    url = served.wait_for_line("API: ").split("API: ")[1].split()[0].rstrip("/")
    served.wait_for_line("fetch")
    headers = {"Authorization": f"Bearer {(home / 'api-token').read_text().strip()}"}
    stream = f"{url}/api/runs/{served.run_id}/logs/stream?stage=fetch"
    before, after = "", ""
    try:
        with httpx.stream("GET", stream, headers=headers, timeout=30) as response:
            for line in response.iter_lines():
                if not line.startswith("data: "):
                    continue
                if not before and f"got {LEARNT} from vault" in line:
                    before = line
                    (home / "told").touch()
                elif before and "finished: success" in line:
                    after = line
                    break
    finally:
        (home / "told").touch()
        (home / "go").touch()
    code, _, stderr = served.finish()
    assert (0, True, False) == (
        code,
        f"got {REDACTED} from vault" in after,
        LEARNT in after,
    ), stderr


@pytest.mark.slow
async def test_the_run_page_in_chromium_masks_an_error_once_its_value_is_learnt(
    tmp_path: Path,
) -> None:
    """The run page, open while ``early``'s error says the value (no secret yet): once
    ``fetch`` returns it under ``token``, the page's live stream redraws the error masked."""
    home = tmp_path / "home"
    write(tmp_path / "learnt.yaml", _served(home))
    argv = ["run", "learnt.yaml", "--serve", "127.0.0.1:0"]
    with browser_support.taskdaemon(argv, cwd=tmp_path) as process:
        url = browser_support.server_url(process)
        run_id = await browser_support.first_run(url)
        try:
            async with browser_support.browser_page() as (page, errors):
                await page.goto(f"{url}/?token={browser_support.TOKEN}")
                await page.goto(f"{url}/runs/{run_id}")
                row = '#stages tr[data-stage="early"]'
                await page.wait_for_selector(browser_support.state_of("early", "failure"))
                before = await page.text_content(row) or ""
                (home / "told").touch()
                await page.wait_for_selector(browser_support.state_of("hold", "running"))
                after = await page.text_content(row) or ""
        finally:
            (home / "told").touch()
            (home / "go").touch()
    assert (True, True, False, []) == (
        LEARNT in before,
        f"vault said {REDACTED}" in after,
        LEARNT in after,
        errors,
    )


def _stored(db: Path, *bodies: str) -> None:
    """``bodies`` as log records of stage ``s`` of run ``RUN`` in the store ``db``, written
    and the writer closed: no writer is left to mask them again when a value is learnt."""
    writer = SqliteLogWriter(db)
    try:
        writer.write_rows(
            [
                LogRow(RUN, time.time_ns(), 9, "INFO", "p", "s", 0, 1, None, "s", body, {})
                for body in bodies
            ]
        )
    finally:
        writer.close()


async def test_a_log_tail_masks_rows_read_after_a_value_was_learnt_not_yet_masked_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rows stored before the value was known, read after it was learnt but before the store
    masks them again: the poll that sees the change masks every record kept, and each poll
    after masks the rows it reads (one row a poll here), though the store still holds them in
    clear."""
    db = tmp_path / "spans.db"
    _stored(db, f"first {LEARNT}")
    follow = web_logs.follow_stage_logs(db, RUN, "s", interval=0.01, ended=lambda: False)
    try:
        first = await anext(follow)
        _stored(db, f"second {LEARNT}", f"third {LEARNT}")
        monkeypatch.setattr(web_logs, "_BATCH", 1)
        remember_secrets({"token": LEARNT})
        second = await anext(follow)
        third = await anext(follow)
    finally:
        await follow.aclose()
    assert (
        [f"first {LEARNT}"],
        [f"first {REDACTED}", f"second {REDACTED}"],
        [f"first {REDACTED}", f"second {REDACTED}", f"third {REDACTED}"],
    ) == tuple([record["body"] for record in tail["records"]] for tail in (first, second, third))


def _dumped_text(path: Path) -> str:
    """Every file of the debug dump at ``path``, as text, joined."""
    with tarfile.open(path) as tar:
        members = [tar.extractfile(member) for member in tar.getmembers() if member.isfile()]
        return "\n".join(m.read().decode(errors="replace") for m in members if m is not None)


@pytest.mark.slow
def test_the_debugger_s_views_mask_a_value_learnt_after_a_breakpoint_quoted_it(
    home: Path, serve: Callable[..., Served]
) -> None:
    """A breakpoint set on ``hold`` while ``fetch`` runs quotes the value (no secret yet, so
    shown); once ``fetch`` returns it under ``token`` and ``hold`` is paused there, the HTTP
    debugger's state, ``debug attach``'s ``where``, ``outputs``, ``logs`` and ``info
    breakpoints`` (``early``'s error said the value) and a dump show it masked, and nowhere
    in clear."""
    served = serve(str(write(home / "learnt.yaml", _served(home))), "--serve", "127.0.0.1:0")
    url = served.wait_for_line("API: ").split("API: ")[1].split()[0].rstrip("/")
    served.wait_for_line("fetch")
    debug = f"{url}/api/runs/{served.run_id}/debug"
    headers = {"Authorization": f"Bearer {(home / 'api-token').read_text().strip()}"}
    try:
        set_at = httpx.put(
            f"{debug}/breakpoints",
            json={"stage": "hold", "when": f"'{LEARNT}' != 'no'"},
            headers=headers,
            timeout=30,
        ).text
        (home / "told").touch()
        served.wait_for_line("paused")
        state = httpx.get(debug, headers=headers, timeout=30).text
        commands = "where\noutputs fetch\nlogs early\ninfo breakpoints\n"
        prompt = debug_cli(home, "attach", served.run_id, stdin=commands).stdout
        dump = httpx.post(
            f"{url}/api/runs/{served.run_id}/dump", json={}, headers=headers, timeout=30
        )
        dumped = _dumped_text(Path(dump.json()["path"]))
    finally:
        (home / "told").touch()
        (home / "go").touch()
        with contextlib.suppress(httpx.HTTPError):  # ``debug attach`` ending resumed it
            httpx.post(f"{debug}/continue", json={}, headers=headers, timeout=30)
    code, _, stderr = served.finish()
    assert (True, True, True, True, [False] * 3) == (
        LEARNT in set_at,
        f"'{REDACTED}' != 'no'" in state,
        f"vault said {REDACTED}" in prompt,
        '"token": "[REDACTED]"' in prompt,
        [LEARNT in text for text in (state, prompt, dumped)],
    ), prompt + stderr
    assert 1 == code, stderr
