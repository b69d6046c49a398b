"""``taskdaemon serve --pipeline FILE --break STAGE``: breakpoints on the runs ``serve``
schedules, and the bound on a pause nobody attends (``--break-timeout``), with a real ``serve``,
a real ``debug attach`` prompt and serve's HTTP API with its token."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from cli_support import taskdaemon
from pipeline_debug_cli_support import attached, typed, write_pipeline
from schedule_support import scheduled_serve


@pytest.mark.slow
def test_a_scheduled_run_paused_with_nobody_attached_goes_on_after_the_bound(
    home: Path,
) -> None:
    """A ``--break`` pause of a scheduled run says how long it waits for a debugger; nobody
    attaching, it goes on after ``--break-timeout`` with a warning, and the run's records say
    who resumed it: ``timeout`` (before: serve had no ``--break``, exit 2)."""
    pipeline = write_pipeline(home)
    with scheduled_serve(home, pipeline, "--break", "b", "--break-timeout", "1") as served:
        paused = served.line("paused at b.0.1")
        resumed = served.line("resumed b.0.1")
        ended = served.line(f"run {served.run_id} of dbg ended ")
    logs = taskdaemon(home, "logs", served.run_id, "--stage", "b")
    assert (
        "(#1 before b (pipeline dbg)) for 1s at most unless a debugger is attached: "
        f"taskdaemon debug attach {served.run_id}" in paused
    ), paused
    assert " WARNING " in resumed, resumed
    assert "nobody attached a debugger within 1s (--break-timeout); going on" in resumed
    assert "ended failure" in ended  # c fails: b ran, and so did c
    assert "stage b.0.1 resumed: continue by timeout" in logs.stdout, logs.stdout


@pytest.mark.slow
def test_an_attached_prompt_holds_the_pause_past_the_bound(home: Path) -> None:
    """With a ``debug attach`` prompt at the pause, the bound does not resume it: a person is
    at work there. The HTTP routes see the pause and the ``--break`` breakpoint, and the
    prompt's ``continue`` resumes it. Waiting past the bound is a wait by the clock: nothing
    happening is what is checked."""
    pipeline = write_pipeline(home)
    with scheduled_serve(home, pipeline, "--break", "b", "--break-timeout", "2") as served:
        served.line("paused at b.0.1")
        prompt = attached(home, served.run_id)
        try:
            typed(prompt, "where", "paused at b.0.1")
            since = served.api("GET", f"/api/runs/{served.run_id}/debug")["paused"][0]["since"]
            time.sleep(max(0.0, since + 3.0 - time.time()))
            state = served.api("GET", f"/api/runs/{served.run_id}/debug")
            assert ["b"] == [paused["stage"] for paused in state["paused"]], state
            assert ["#1 before b (pipeline dbg)"] == [
                bp["description"] for bp in state["breakpoints"]
            ]
            typed(prompt, "continue", " ended")  # its end, or its socket gone
            resumed = served.line("resumed b.0.1")
        finally:
            prompt.communicate(timeout=30)  # the end of its input: it leaves
    assert "continue by cli debug attach" in resumed, resumed


@pytest.mark.parametrize(
    ("options", "said"),
    [
        (["--break", "nosuch"], "--break 'nosuch': no stage 'nosuch' (stages: a, b, c)"),
        (["--break", "b:inputs.y > 1"], "--break 'b:inputs.y > 1': "),
        (["--break-timeout", "0"], "must be a positive number of seconds, not '0'"),
    ],
)
def test_a_bad_breakpoint_is_refused_before_serving(
    home: Path, options: list[str], said: str
) -> None:
    """A breakpoint that could never pause, or a bound that is none, is one line and exit 2,
    before anything is served or scheduled."""
    done = taskdaemon(
        home, "serve", "--port", "0", "--pipeline", str(write_pipeline(home)), *options
    )
    assert (2, 1, True) == (done.returncode, len(done.stderr.splitlines()), said in done.stderr), (
        done.stderr
    )


def test_break_without_a_pipeline_is_refused(home: Path) -> None:
    """``serve --break b`` with no ``--pipeline`` has nothing to stop: refused, as every
    schedule option without a pipeline is."""
    done = taskdaemon(home, "serve", "--port", "0", "--break", "b")
    assert (2, "taskdaemon serve: --break needs --pipeline\n") == (done.returncode, done.stderr)
