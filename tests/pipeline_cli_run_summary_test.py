"""The summary table ``taskdaemon run`` prints at a run's end (``cli/run.render_summary``),
fitted to the terminal it is written to."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from cli_support import write
from pipeline_engine_support import Resolver, after, pipeline, retry, stage
from taskdaemon.pipeline.cli.run_summary import render_summary
from taskdaemon.pipeline.durations import format_duration
from taskdaemon.pipeline.engine import Engine, RunResult
from taskdaemon.pipeline.loops import StageContext
from taskdaemon.pipeline.model import Pipeline
from taskdaemon.pipeline.table_fit import text_columns
from terminal_support import on_a_terminal_of

ERROR = "the deploy target refused the artifact because " + "its checksum did not match " * 4


async def _failed_run() -> tuple[RunResult, Pipeline]:
    """A run whose first stage fails with the long ``ERROR``, skipping the second."""

    async def refuse(ctx: StageContext) -> None:
        raise RuntimeError(ERROR)

    graph = pipeline(stage("deploy"), stage("announce", *after("deploy")))
    async with Engine(resolver=Resolver({"deploy": refuse})) as engine:  # type: ignore[arg-type]
        return await engine.run(graph), graph


async def _long_names_run() -> tuple[RunResult, Pipeline]:
    """A run whose first stage, of a 46-character name, fails with the long ``ERROR``,
    skipping the second, of 37."""

    async def refuse(ctx: StageContext) -> None:
        raise RuntimeError(ERROR)

    deploy = "deploy_the_artifact_to_every_production_region"
    graph = pipeline(stage(deploy), stage("announce_the_release_on_every_channel", *after(deploy)))
    async with Engine(resolver=Resolver({deploy: refuse})) as engine:  # type: ignore[arg-type]
        return await engine.run(graph), graph


async def test_a_terminal_of_80_columns_gets_rows_of_80_at_most() -> None:
    """Given the terminal's 80 columns, every line of the summary fits in them, the stage's
    error cut with an ellipsis, the run's wrapped whole: cut, it lost its end (a command's exit
    code and last lines of stderr), what a failure is read for."""
    result, graph = await _failed_run()
    assert result.error is not None
    lines = render_summary(result, graph, 80).splitlines()
    at = next(n for n, line in enumerate(lines) if line.startswith("error: "))
    expected = (True, True, "error: " + result.error.strip(), True)
    actual = (
        all(len(line) <= 80 for line in lines),
        lines[1].endswith("…"),
        " ".join(line.strip() for line in lines[at:]),
        len(lines) - at > 1 and all(line.startswith("    ") for line in lines[at + 1 :]),
    )
    assert expected == actual, lines


async def test_a_pipe_keeps_70_characters_of_a_stage_error() -> None:
    """Without a width (a pipe or a file), a stage's error keeps its first 69 characters and
    an ellipsis, whatever the row's length."""
    result, graph = await _failed_run()
    row = render_summary(result, graph).splitlines()[1]
    assert row.endswith("  " + ERROR[:69] + "…"), row


async def test_a_terminal_too_narrow_for_the_other_columns_keeps_8_error_columns() -> None:
    """A 40-column terminal cannot hold the other columns: the error keeps 8 columns (its
    first 7 characters and an ellipsis) rather than vanishing, the last resort of ``runs
    show``'s table (``table_fit.LAST_GIVEN``; the summary kept 16 by an arithmetic of its
    own, then 12), and INSTANCES and ATTEMPTS read INST and TRIES, as in ``runs show``."""
    result, graph = await _failed_run()
    header, row = render_summary(result, graph, 40).splitlines()[:2]
    assert header.split() == ["STAGE", "STATUS", "INST", "TRIES", "QUEUE", "DURATION", "ERROR"]
    assert row.endswith("  " + ERROR[:7] + "…"), row


async def test_a_60_column_terminal_holds_rows_with_long_names_and_errors() -> None:
    """On 60 columns the status, counts and durations take 49: names and errors kept to 12
    wrapped every row with an error, its tail under the next row's STAGE. They give way to 8,
    as in ``runs show``, and every row fits."""
    result, graph = await _long_names_run()
    lines = render_summary(result, graph, 60).splitlines()
    name, status = lines[1].split()[:2]
    expected = ([], "failure", True, True)
    actual = (
        [line for line in lines if len(line) > 60],
        status,
        name.endswith("…"),
        lines[1].endswith("…"),
    )
    assert expected == actual, lines


async def test_a_summary_that_fits_is_the_piped_one() -> None:
    """A terminal wide enough for the whole table gets what a pipe gets: the long headers and
    70 characters of each error."""
    result, graph = await _failed_run()
    assert render_summary(result, graph) == render_summary(result, graph, 300)


async def test_a_wide_character_error_is_cut_to_the_terminal_s_columns() -> None:
    """An error in CJK takes two columns a character: cut by its columns, the summary's rows
    and its error line fit 80 columns on screen, not only in characters."""

    async def refuse(ctx: StageContext) -> None:
        raise RuntimeError("数据仓库刷新失败" * 8)

    graph = pipeline(stage("deploy"), stage("announce", *after("deploy")))
    async with Engine(resolver=Resolver({"deploy": refuse})) as engine:  # type: ignore[arg-type]
        result = await engine.run(graph)
    lines = render_summary(result, graph, 80).splitlines()
    assert [] == [line for line in lines if text_columns(line) > 80], lines
    assert (True, True) == (lines[1].endswith("…"), lines[-1].endswith("…")), lines


async def test_long_stage_names_are_cut_to_keep_rows_of_80() -> None:
    """Stage names of 40 and more characters left no room on 80 columns: every row wrapped
    whatever the error's cut. They are cut (with an ellipsis, as ``watch`` cuts them) before
    the error loses its last 16 characters."""
    result, graph = await _long_names_run()
    lines = render_summary(result, graph, 80).splitlines()
    expected = ([], True)
    actual = ([line for line in lines if len(line) > 80], lines[1].split()[0].endswith("…"))
    assert expected == actual, lines


@pytest.mark.slow
@pytest.mark.parametrize("columns", [60, 80, 100, 120])
def test_run_on_a_narrow_terminal_prints_a_summary_that_fits(
    home: Path, tmp_path: Path, columns: int
) -> None:
    """``taskdaemon run`` with its stdout on a pseudo-terminal of 60, 80, 100 or 120 columns
    prints no line wider than it, though the failing command's error is longer; the status
    and the error's first words are there."""
    path = _narrow(tmp_path)
    code, lines = on_a_terminal_of(columns, home, "run", str(path), streams=("stdout",))
    table = [line for line in lines if line.startswith(("STAGE", "deploy"))]
    expected = (1, 2, True)
    assert expected == (code, len(table), all(len(line) <= columns for line in lines)), lines
    assert table[1].split()[1] == "failure", table
    assert 'command "e' in table[1], table


async def test_a_stage_a_retry_made_good_shows_no_error() -> None:
    """A stage whose first attempt failed and second succeeded reads ``success`` with two
    attempts and an empty error cell: the failed attempt is not the stage's error."""
    calls: list[int] = []

    async def flaky(ctx: StageContext) -> None:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("boom 1")

    graph = pipeline(stage("a", retry=retry(2, initial=0.01)))
    async with Engine(resolver=Resolver({"a": flaky})) as engine:  # type: ignore[arg-type]
        result = await engine.run(graph)
    row = render_summary(result, graph).splitlines()[1].split()
    assert (["a", "success", "1", "2"], []) == (row[:4], row[6:]), row  # no ERROR cell


@pytest.mark.slow
def test_run_s_progress_lines_fit_an_80_column_terminal(home: Path, tmp_path: Path) -> None:
    """``taskdaemon run`` with its stderr on an 80-column pseudo-terminal cuts the errors
    ending its progress lines (a failure with its retry note, a skip, the run's end) to the
    line, as the summary's, rather than wrapping them under the clock column. The failed
    command's stderr lines (``| ...``) are its own output and stay whole."""
    retried = "error_strategy: retry\nretry: {max_attempts: 2, backoff: {initial: 1ms}}\n"
    code, lines = _on_80_columns(home, _narrow(tmp_path, retried), "stderr")
    progress = [line for line in lines if line[:10].strip().endswith("s") and "  " in line]
    ended = [line for line in progress if "failure" in line or "skipped" in line]
    expected = (1, 4, [])
    actual = (code, len(ended), [line for line in progress if len(line) > 80])
    assert expected == actual, lines


def _narrow(tmp_path: Path, head: str = "") -> Path:
    """A pipeline whose ``deploy`` fails with the long ``ERROR`` and whose ``announce`` it
    then skips; ``head``: top-level keys to add (YAML lines)."""
    return write(
        tmp_path / "p.yaml",
        "name: narrow\n"
        + head
        + f"""\
stages:
  - name: deploy
    triggers: [{{manual: {{approval_required: false}}}}]
    command: "echo '{ERROR}' >&2; exit 3"
  - name: announce
    command: "echo sent"
    triggers: [{{on_completion: {{stage: deploy}}}}]
""",
    )


def _on_80_columns(home: Path, path: Path, stream: str) -> tuple[int, list[str]]:
    """``taskdaemon run PATH`` with its ``stream`` (stdout or stderr) on an 80-column
    pseudo-terminal and the other discarded: its exit code and the lines it wrote there."""
    return on_a_terminal_of(80, home, "run", str(path), streams=(stream,))


async def test_each_cell_says_what_the_run_s_records_say() -> None:
    """A stage retried once, one failing, one skipped for it: each row's status, instances,
    attempts (the most one instance needed), longest queue, first start to last end and
    error; a stage that never started has ``-`` for its counts; then a blank line and the
    run's status and duration."""
    tries = {"build": 0}

    async def flaky(ctx: StageContext) -> None:
        tries["build"] += 1
        if tries["build"] == 1:
            raise RuntimeError("first try")

    async def refuse(ctx: StageContext) -> None:
        raise RuntimeError("refused")

    graph = pipeline(
        stage("build", retry=retry(2, initial=0.01)),
        stage("deploy", *after("build")),
        stage("announce", *after("deploy")),
    )
    resolver = Resolver({"build": flaky, "deploy": refuse})  # type: ignore[dict-item]
    async with Engine(resolver=resolver) as engine:
        result = await engine.run(graph)
    lines = render_summary(result, graph).splitlines()
    assert result.finished_at is not None
    took = format_duration(result.finished_at - result.started_at)

    def cells(name: str) -> list[str]:
        ran = [ex for ex in result.executions[name] if ex.times.running is not None]
        queues = [ex.times.queue_time for ex in ran if ex.times.queue_time is not None]
        duration = max(ex.times.ended for ex in ran) - min(ex.times.running for ex in ran)
        return [format_duration(max(queues)), format_duration(duration)]

    assert [
        ["STAGE", "STATUS", "INSTANCES", "ATTEMPTS", "QUEUE", "DURATION", "ERROR"],
        ["build", "success", "1", "2", *cells("build")],
        ["deploy", "failure", "1", "1", *cells("deploy"), "refused"],
        ["announce", "skipped", "-", "-", "-", "-", result.skip_reasons["announce"]],
        [],
        [f"run {result.run_id} failure in {took}"],
    ] == [re.split(r"  +", line) if line else [] for line in lines[:5]] + [lines[5:6]]


async def test_a_terminal_exactly_as_wide_as_the_table_gets_it_whole() -> None:
    """A table as wide as the terminal fits: its long headers stay; one column less and
    they give way."""
    result, graph = await _failed_run()
    table = render_summary(result, graph).splitlines()[:3]
    widest = max(text_columns(line) for line in table)
    assert table == render_summary(result, graph, widest).splitlines()[:3]
    assert "INST" == render_summary(result, graph, widest - 1).split()[2]


async def test_a_pipe_keeps_200_characters_of_the_run_s_error() -> None:
    """Without a width, the run's error line keeps its first 199 characters and an ellipsis."""

    async def refuse(ctx: StageContext) -> None:
        raise RuntimeError("x" * 300)

    graph = pipeline(stage("deploy"))
    async with Engine(resolver=Resolver({"deploy": refuse})) as engine:  # type: ignore[arg-type]
        result = await engine.run(graph)
    assert result.error is not None
    assert "error: " + result.error[:199] + "…" == render_summary(result, graph).splitlines()[-1]
