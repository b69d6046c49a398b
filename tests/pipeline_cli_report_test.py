"""``taskdaemon report`` (``cli/report.py``) over a remote span source and the embedded store."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli_support import (
    ONE_STAGE_PIPELINE,
    in_background,
    read_line,
    taskdaemon,
    wait_until_stored,
    write,
)
from pipeline_tracking_support import T0, Backend, S, example_spans, serve, store_stages, store_with
from taskdaemon.pipeline.cli import main
from taskdaemon.pipeline.tracking import encode_traces


def test_a_report_names_its_source_without_its_secrets(capsys: pytest.CaptureFixture[str]) -> None:
    """A report over a Tempo URL holding a password and a ``token=`` query names the source
    with both redacted."""
    spans = example_spans()
    run_id = spans[0].trace_id
    with serve(Backend()) as backend:
        backend.route("/api/search", {"traces": [{"traceID": run_id}]})
        backend.route(f"/api/v2/traces/{run_id}", {"trace": encode_traces(spans)})
        host = backend.url.removeprefix("http://")
        url = f"tempo+http://alice:hunter2pw@{host}?org=acme&token=qtokensecret"
        code = main(["report", "--source", url, "--since", "36500d", "--format", "json"])
    shown = json.loads(capsys.readouterr().out)["source"]
    expected = (0, True, False, False)
    actual = (
        code,
        shown.startswith("tempo+http://alice:"),
        "hunter2pw" in shown,
        "qtokensecret" in shown,
    )
    assert expected == actual, shown


@pytest.mark.slow
def test_a_pipeline_with_no_run_at_all_is_refused(home: Path) -> None:
    """``report -p NAME`` for a pipeline the store holds no run of is refused in one line with
    the stored name meant, exit 1 (it exited 0 with the text of an empty report, so a typo read
    as a quiet week); a known pipeline with no run in the window still reads "no ended runs in
    this window" and exits 0."""
    path = write(
        home / "one.yaml",
        """\
        name: one
        stages:
          - name: a
            command: "true"
            triggers: [{manual: {approval_required: false}}]
        """,
    )
    assert 0 == taskdaemon(home, "run", str(path), "-q").returncode
    unknown = taskdaemon(home, "report", "-p", "onee")
    old = taskdaemon(home, "report", "-p", "one", "--since", "2020-01-01", "--until", "2020-02-01")
    line = "taskdaemon report: no run of pipeline 'onee' is known to this source; did you mean "
    assert (1, "", f"{line}'one'?\n") == (unknown.returncode, unknown.stdout, unknown.stderr)
    assert (0, "no ended runs in this window") == (old.returncode, old.stdout.splitlines()[1])


def test_the_report_of_a_pipeline_of_many_stages_names_the_one_that_failed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``report`` over a stored run of 25 stages, the last of which failed, names that stage
    above its table, where it was the table's last row of 25."""
    names = [f"s{i:02d}" for i in range(25)]
    store_stages(tmp_path / "spans.db", "wide", names, "boom", step=1_000_000)
    code = main(
        ["report", "--source", f"sqlite:///{tmp_path / 'spans.db'}", "--since", "2023-11-14"]
    )
    lines = capsys.readouterr().out.splitlines()
    summary = next(n for n, line in enumerate(lines) if line.startswith("pipeline wide:"))
    expected = "1 of 25 stages failed; most often (of their executions): s24 100.0% of 1"
    assert (0, expected) == (code, lines[summary + 1])


def test_a_first_window_of_runs_says_its_regressions_were_not_compared(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``report`` over the store's first runs (none before the window) says that it compared
    nothing, rather than that no stage got slower."""
    store_stages(tmp_path / "spans.db", "first", ["a", "b"], "boom", step=1_000_000)
    code = main(
        ["report", "--source", f"sqlite:///{tmp_path / 'spans.db'}", "--since", "2023-11-14"]
    )
    last = capsys.readouterr().out.splitlines()[-1]
    expected = "regressions: not compared (no ended run in the previous window of the same length)"
    assert (0, expected) == (code, last)


#: ``sleepy`` runs until the test cancels it.
_SLEEPY = """\
    name: one
    stages:
      - name: sleepy
        command: "exec sleep 600"
        triggers: [{manual: {approval_required: false}}]
"""


@pytest.mark.slow
def test_cancelled_runs_have_their_share_beside_the_rates(tmp_path: Path, home: Path) -> None:
    """One run succeeded, one was cancelled: the summary read "2 runs, 50.0% succeeded, 0.0%
    failed", the other half unsaid. The table and Markdown say the cancelled share (HTML
    shows the Markdown), JSON has it as ``cancelled_rate``."""
    assert (
        0
        == taskdaemon(
            home, "run", "-q", str(write(tmp_path / "a.yaml", ONE_STAGE_PIPELINE))
        ).returncode
    )
    running = in_background(home, "run", str(write(tmp_path / "sleepy.yaml", _SLEEPY)))
    try:
        assert running.stderr is not None
        run_id = read_line(running.stderr).split()[1]  # "run RUN of one started (...)"
        wait_until_stored(home, run_id, "sleepy")
        assert 0 == taskdaemon(home, "cancel", run_id).returncode
        assert 1 == running.wait(timeout=60)
    finally:
        running.kill()
        running.communicate()
    texts = {f: taskdaemon(home, "report", "--format", f).stdout for f in ("table", "markdown")}
    shown = json.loads(taskdaemon(home, "report", "--format", "json").stdout)["pipelines"][0]
    said = "2 runs, 50.0% succeeded, 0.0% failed, 50.0% cancelled;"
    assert {"table": True, "markdown": True} == {f: said in t for f, t in texts.items()}, texts
    assert (0.5, 0.0, 0.5) == (
        shown["success_rate"],
        shown["failure_rate"],
        shown["cancelled_rate"],
    )


def test_without_a_format_the_output_files_suffix_chooses_it(
    home: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """``report -o report.html`` (no ``--format``) wrote the terminal's table into it: ``-o``'s
    suffix now chooses the format, an unknown one the table, and a ``--format`` given wins
    over the suffix (``cli/output_file.py``)."""
    monkeypatch.setenv("TASKDAEMON_HOME", str(home))
    heads = {}
    for name, given in [("r.html", []), ("r.md", []), ("r.json", []), ("r.txt", []),
                        ("t.html", ["-f", "table"])]:  # fmt: skip
        code = main(["report", "-o", str(tmp_path / name), *given])
        heads[name] = (code, (tmp_path / name).read_text()[:10])
    assert heads == {
        "r.html": (0, "<!DOCTYPE "),
        "r.md": (0, "# Pipeline"),
        "r.json": (0, '{\n  "since'),
        "r.txt": (0, "Report: ru"),
        "t.html": (0, "Report: ru"),
    }


@pytest.mark.slow
def test_a_stages_critical_share_is_over_every_run_of_the_window(
    tmp_path: Path, home: Path
) -> None:
    """``shape`` ran once as a -> b, then once changed to a alone: b's share is its time on
    the path over both runs' durations (the pipeline's time, as docs/reports.md says), not
    over the one run it ran in, so the shares add up to at most 1. Computed here from ``runs
    show --json``'s spans, not from the report's code."""
    stage = '  - {{name: {}, command: "sleep 0.2", triggers: [{}]}}\n'
    first = "name: shape\nstages:\n" + stage.format("a", "{manual: {approval_required: false}}")
    both = first + stage.format("b", "{on_completion: {stage: a}}")
    ran = [
        taskdaemon(home, "run", "-q", str(write(tmp_path / f"{i}.yaml", text))).returncode
        for i, text in enumerate((both, first))
    ]
    assert [0, 0] == ran
    listed = json.loads(taskdaemon(home, "runs", "list", "--json").stdout)
    runs = [
        json.loads(taskdaemon(home, "runs", "show", r["run_id"], "--json").stdout) for r in listed
    ]
    total = sum(run["end"] - run["start"] for run in runs)
    ran_for: dict[str, float] = {}
    for run in runs:  # each stage is on its run's path: a chain, or a alone
        for shown in run["stages"]:
            (attempt,) = shown["attempts"]
            ran_for[shown["name"]] = ran_for.get(shown["name"], 0.0) + attempt["duration"]
    stages = json.loads(taskdaemon(home, "report", "-f", "json").stdout)["pipelines"][0]["stages"]
    shares = {s["stage"]: s["critical_path_share"] for s in stages}
    assert shares == pytest.approx({name: t / total for name, t in ran_for.items()}, abs=2e-6)
    assert sum(shares.values()) <= 1.0


def test_since_is_in_the_window_and_until_is_not(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Runs started at T0, T0 + 100 s and T0 + 200 s: ``--since T0 --until T0+200s`` reports
    the first two (docs/reports.md: ``[since, until)``), where ``runs list`` with the same
    bounds lists all three, its ``--until`` being "at or before"."""
    store_with(tmp_path / "spans.db", [100, 200, 300])
    source = f"sqlite:///{tmp_path / 'spans.db'}"
    bounds = ["--since", "2023-11-14T22:13:20Z", "--until", "2023-11-14T22:16:40Z"]
    assert 0 == main(["report", "--source", source, "-f", "json", *bounds])
    (shown,) = json.loads(capsys.readouterr().out)["pipelines"]
    assert 0 == main(["runs", "list", "--source", source, "--json", *bounds])
    listed = json.loads(capsys.readouterr().out)
    starts = [T0 // S, T0 // S + 100, T0 // S + 200]
    assert (2, starts) == (shown["runs"], sorted(r["start"] for r in listed))
