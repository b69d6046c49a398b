"""A run's live state for a terminal: one row per stage, as a ``rich`` table or as plain lines.

``stage_rows(snapshot, now)`` is the pure part: per stage its state, elapsed time, instance
progress (``7/10``: instances ended out of instances started, shown for stages with several),
its attempts (the most one instance made, ``runs show``'s TRIES: a TRIES column only once a
stage of the run retried, so a stage a retry made good does not read as one that passed first time),
what it waits for (an approval, its upstream stages, an event, a condition, a worker slot, a
retry; a trigger found holding is not listed, ``DagNode.triggers_held``, since the stage waits
on it no longer; in trigger mode ``all`` an approval comes last, ``then approval``, as the
engine asks for it only once the others held), and, once it has failed, been cancelled or
skipped, its error or the reason, as soon as the run has it: a user watching a failure should
not have to wait for the run's end to read why.
``render_table`` draws those rows with ``rich`` (imported when called, never at module import:
the CLI's start-up stays fast). ``changes(previous, current)`` gives the plain lines for output
that is not a terminal: one line per stage whose state changed or which came to wait for an
approval, and one when the run ends, so a 300-stage run prints about one line per stage, not a
screenful per change. Every text a row or a line quotes (names, conditions, errors) has its
control characters escaped (``terminal_text``): a definition or a span source wrote it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from taskdaemon.pipeline.model import TriggerMode
from taskdaemon.pipeline.state import StageStatus
from taskdaemon.pipeline.status_rules import (
    ACTIVE_STAGE_STATUSES,
    FAILED_STAGE_STATUSES,
    NOT_STARTED_STAGE_STATUSES,
    TERMINAL_STAGE_STATUSES,
)
from taskdaemon.pipeline.table_fit import cut_columns, text_columns, wrapped
from taskdaemon.pipeline.telemetry import STATUS_REPLAYED
from taskdaemon.pipeline.terminal_text import one_line, shown
from taskdaemon.pipeline.visualization._snapshot import DagNode, DagSnapshot, format_duration
from taskdaemon.pipeline.wording import counted

__all__ = ["StageRow", "changes", "render_table", "stage_rows", "summary_line"]

# rich styles per state; the state is always written out too, colour is never the only sign.
_STYLES = {
    "pending": "dim",
    "waiting": "yellow",
    "queued": "cyan",
    "running": "bold green",
    "retrying": "bold yellow",
    "paused": "bold magenta",
    "success": "green",
    "failure": "bold red",
    "timeout": "red",
    "cancelled": "dim",
    "skipped": "dim",
    "interrupted": "magenta",
}


@dataclass(frozen=True, slots=True)
class StageRow:
    """What the terminal shows of one stage."""

    stage: str
    state: str
    elapsed: float | None
    progress: str  # "7/10" for stages with several instances, else ""
    waiting_for: str
    error: str = ""  # a failed stage's error, a skipped or cancelled one's reason, on one line
    approval_asked: bool = False  # what it waits for now includes an approval a person gives
    # Paused at a breakpoint before its first attempt: the time since it paused, which the
    # table's ELAPSED shows (it has no attempt to time). Not in the plain lines: at the change
    # that prints one, the time is the poll's lag, not news.
    paused_for: float | None = None
    # The most attempts one instance made (``runs show``'s TRIES), 0 before the first: a stage
    # a retry made good read just ``success``, as one that passed first time.
    attempts: int = 0


#: Columns of a stage's error (or skip reason) a row or a plain line shows: the table's
#: last column is cut to the terminal's width anyway, and ``runs show`` has it whole.
_ERROR_CHARS = 200

# A stage in one of these has ended: the final statuses, and a replay's fed stage once its
# stand-in handed on the recorded outcome (``replayed``, a span status, not the engine's).
_ENDED = TERMINAL_STAGE_STATUSES | {STATUS_REPLAYED}
# An upstream stage in one of these no longer holds its downstream stages up (a cancelled one
# is listed: the run is stopping and the line says what it was waiting for).
_UPSTREAM_DONE = _ENDED - {StageStatus.CANCELLED}
# Change lines leave the elapsed time out for these: nothing has ended that it would measure
# (a retrying or paused stage shows how long its attempt ran).
_NO_ELAPSED = ACTIVE_STAGE_STATUSES - {StageStatus.RETRYING} - {StageStatus.PAUSED}


def _elapsed(node: DagNode, now: float) -> float | None:
    # A fed stage has none of its own: its stand-in's time is its wait in the replay, which
    # ``runs show`` and the DAG leave out too (``DagNode.fed``).
    if node.start is None or node.fed:
        return None
    if node.end is not None:
        return max(0.0, node.end - node.start)
    return max(0.0, now - node.start)


def _paused_for(node: DagNode, now: float) -> float | None:
    """How long a stage with no attempt yet has been paused before its start (its first held
    execution's time): a blank cell told a user waiting at the breakpoint nothing."""
    if node.start is not None or not node.paused_before_start:
        return None
    return max(0.0, now - min(pause.since for pause in node.paused_before_start))


def _progress(node: DagNode) -> str:
    instances: dict[int, bool] = {}
    for attempt in node.attempts:  # in start order: an instance's last attempt decides
        instances[attempt.instance] = attempt.end is not None
    if len(instances) < 2:
        return ""
    return f"{sum(instances.values())}/{len(instances)}"


def _waiting_for(
    node: DagNode, states: dict[str, str | None], run_id: str | None
) -> tuple[str, bool]:
    """What ``node`` waits for, and whether an approval is asked for now (listed first)."""
    state = node.state
    if state == "queued":
        return "a worker slot", False
    if state == "retrying":
        return "its next attempt", False
    if state == "paused":
        # The command to type, with the run's first 8 digits (``debug attach`` takes a unique
        # prefix, as ``runs list``'s REPLAY OF column gives ids): the whole id would not fit
        # the column on 80 columns. It said ``RUN``, which no command takes.
        run = run_id[:8] if run_id else "RUN"
        return f"the debugger (taskdaemon debug attach {run})", False
    if state not in NOT_STARTED_STAGE_STATUSES:
        return "", False
    reasons: list[str] = []
    held = node.triggers_held
    approval = asked = False
    for index, trigger in enumerate(node.triggers):
        if index in held:
            continue  # its latest evaluation held: waiting on it no longer
        if trigger.kind == "manual" and trigger.approval_required:
            approval = True
        elif trigger.kind == "on_completion" and trigger.stage is not None:
            if states.get(trigger.stage) not in _UPSTREAM_DONE:
                reasons.append(trigger.stage)
        elif trigger.kind == "on_event" and trigger.event_type:
            reasons.append(f"event {trigger.event_type}")
        elif trigger.kind == "on_condition" and trigger.expression:
            reasons.append(f"condition {trigger.expression}")
    if approval and node.trigger_mode == TriggerMode.ALL.value and reasons:
        # Mode ``all``: the engine asks for the approval only once every other trigger held
        # (docs/architecture.md, "Run semantics"; ``approve`` refuses it before), so it comes
        # last. A narrow column may cut it; once asked for, it is the row's only wait.
        reasons.append("then approval")
    elif approval:
        # Mode ``any``: asked for as soon as the stage is considered, the one wait a user acts
        # on: first, never the part a narrow column cuts (last, it read "app…").
        reasons.insert(0, "approval")
        asked = True
    if state == "waiting" and not reasons:
        # Rebuilt from spans alone a stage has no trigger list before it starts, and a run's
        # spans show a stage ``waiting`` only while its approval is requested.
        asked = not node.triggers
        reasons.append("approval" if asked else "its triggers")
    elif not node.triggers:
        # Pending, rebuilt from spans alone without a recorded definition (``_stored``): what
        # it waits for is stored nowhere, and a blank would read as "nothing".
        reasons.append("unknown")
    text = ", ".join(dict.fromkeys(reasons))
    # Columns, not characters: a condition comparing with a CJK string is twice as wide. A
    # condition or an event type is the definition's text, escapes and all ("\x1b[2J" in a
    # compared literal): shown escaped, as an error is.
    return one_line(text, 60), asked


def _error(node: DagNode) -> str:
    """Once a stage has ended otherwise than in success (failed, timed out, cancelled,
    skipped), its error or why: what ``runs show``'s ERROR cell says."""
    if node.state not in TERMINAL_STAGE_STATUSES or node.state == StageStatus.SUCCESS:
        return ""
    return one_line(node.skip_reason or node.error or node.cancel_reason, _ERROR_CHARS)


def stage_rows(snapshot: DagSnapshot, now: float) -> list[StageRow]:
    """The rows of ``snapshot`` at wall-clock time ``now`` (epoch seconds), in DAG order."""
    states = {node.name: node.state for node in snapshot.nodes}
    run_id = snapshot.run.run_id if snapshot.run is not None else None
    rows = []
    for node in snapshot.nodes:
        waiting_for, asked = _waiting_for(node, states, run_id)
        rows.append(
            StageRow(
                stage=shown(node.name),  # a name from a remote source is anyone's text
                state=node.state or "pending",
                elapsed=_elapsed(node, now),
                progress=_progress(node),
                waiting_for=waiting_for,
                error=_error(node),
                approval_asked=asked,
                paused_for=_paused_for(node, now),
                attempts=max((a.attempts_made for a in node.attempts), default=0),
            )
        )
    return rows


def summary_line(snapshot: DagSnapshot, now: float) -> str:
    """``run <id> of <pipeline>: running, 12.3 s, 4/10 stages done``."""
    run = snapshot.run
    done = sum(1 for node in snapshot.nodes if node.state in _ENDED)
    pipeline = shown(snapshot.pipeline)  # as a stage's name, anyone's text from a remote source
    if run is None:
        return f"{pipeline}: {done}/{counted(len(snapshot.nodes), 'stage')} done"
    elapsed = (run.end if run.end is not None else now) - run.start
    return (
        f"run {shown(run.run_id)} of {pipeline}: {run.status}, "
        f"{format_duration(max(0.0, elapsed))}, {done}/{counted(len(snapshot.nodes), 'stage')} done"
    )


_ACTIVE = ACTIVE_STAGE_STATUSES | FAILED_STAGE_STATUSES
# Of those, the ones a short terminal keeps first: what runs (or holds a worker) and what
# failed. A wide pipeline has more stages queued or waiting than a terminal has rows.
_AT_WORK = _ACTIVE - NOT_STARTED_STAGE_STATUSES - {StageStatus.QUEUED}


def _fit(rows: list[StageRow], max_rows: int | None) -> tuple[list[StageRow], str]:
    """At most ``max_rows`` rows, in DAG order: the running, paused, retrying and failed stages
    first, then the queued and waiting ones, then the others; and a line counting, by state,
    the stages left out."""
    if max_rows is None or len(rows) <= max_rows:
        return rows, ""
    keep = max(1, max_rows - 1)
    chosen: set[int] = set()
    for tier in (_AT_WORK, _ACTIVE, None):
        for row in rows:
            if len(chosen) >= keep:
                break
            if tier is None or row.state in tier:
                chosen.add(id(row))
    shown = [r for r in rows if id(r) in chosen]
    left: dict[str, int] = {}
    shown_ids = {id(r) for r in shown}
    for row in rows:
        if id(row) not in shown_ids:
            left[row.state] = left.get(row.state, 0) + 1
    counts = ", ".join(f"{n} {state}" for state, n in sorted(left.items()))
    return shown, f"… {sum(left.values())} more stages ({counts})"


class _OneLine:
    """A cell kept to one line, cut with an ellipsis where its column is narrower, as every
    table of taskdaemon cuts (``table_fit.cut_columns``): the ellipsis right after the last
    character that fits, the column's last blank after it when that character was wide.
    ``rich``'s own cut put the blank before the ellipsis (``構築段階構 …``), which read as a
    text ending in a space, its ellipsis a column left of the others in its column. Sized as
    ``rich`` sizes its text (a plain class: ``rich`` is imported only when drawing)."""

    __slots__ = ("style", "text")

    def __init__(self, text: str, style: str = "") -> None:
        self.text = text
        self.style = style

    def _rich(self, text: str) -> Any:
        from rich.text import Text  # noqa: PLC0415

        return Text(text, style=self.style, no_wrap=True, overflow="ellipsis")

    def __rich_measure__(self, console: Any, options: Any) -> Any:
        return self._rich(self.text).__rich_measure__(console, options)

    def __rich_console__(self, console: Any, options: Any) -> Any:
        width = options.max_width
        text = cut_columns(self.text, width) if width >= 1 else self.text
        return self._rich(text).__rich_console__(console, options)


def _one_line(text: str, style: str = "") -> Any:
    """A cell kept to one line, cut with an ellipsis where its column is narrower."""
    return _OneLine(text, style)


def _elapsed_cell(row: StageRow) -> str:
    elapsed = row.elapsed if row.elapsed is not None else row.paused_for
    return "" if elapsed is None else format_duration(elapsed)


#: The columns whose cells are free text, cut to what is left on a narrow terminal.
_FREE_TEXT = frozenset({"STAGE", "WAITING FOR / ERROR"})
#: The columns a narrow terminal leaves out, the first first (``_columns_kept``).
_LEFT_OUT_FIRST = ("WAITING FOR / ERROR", "INST", "TRIES", "ELAPSED")
#: The columns of a stage's name a narrow terminal keeps before it leaves a column out.
_STAGE_COLUMNS = 8


def _columns_kept(names: list[str], rows: list[StageRow], width: int | None) -> list[str]:
    """The columns of ``names`` a terminal ``width`` columns wide shows, in their order.

    Decision: a stage's name is what a row is read by. On 20 columns the fixed columns
    (STATE, ELAPSED, INST) took every column, and ``rich`` drew the STAGE column 0 wide: rows
    of states with no names; on 30 it was one character and its ellipsis. Until the name has
    ``_STAGE_COLUMNS`` (or its whole, when shorter), the columns go in ``_LEFT_OUT_FIRST``'s
    order: the free text first (``runs show`` and ``logs`` have it whole), then the instances
    and tries, then the elapsed time. STATE always stays."""
    if width is None:
        return names
    names = list(names)
    stage = min(_STAGE_COLUMNS, max((text_columns(row.stage) for row in rows), default=1))
    cells = {
        "STATE": [row.state for row in rows],
        "ELAPSED": [_elapsed_cell(row) for row in rows],
        "INST": [row.progress for row in rows],
        "TRIES": [str(row.attempts) for row in rows],
    }
    fixed = {name: max(map(len, [name, *texts])) for name, texts in cells.items()}
    for name in _LEFT_OUT_FIRST:
        others = [other for other in names if other != "STAGE"]
        # Each column after the first has two blanks before it.
        room = width - sum(2 + fixed.get(other, 0) for other in others)
        # The free text shares what is left with the name, the wider cut first (``rich``).
        if room >= stage * (2 if "WAITING FOR / ERROR" in others else 1):
            break
        if name in names:
            names.remove(name)
    return names


def render_table(
    snapshot: DagSnapshot, now: float, height: int | None = None, width: int | None = None
) -> Any:
    """A ``rich`` renderable of the snapshot: a summary line over the stage table, the whole
    at most ``height`` lines, its stage rows cut (the active ones kept) when the terminal is
    shorter. The summary wraps between words to ``width`` as the report's prose does
    (``table_fit.wrapped``): ``rich`` left the blank at each break, a trailing space (``4/5 ``
    over ``stages done``). Its lines count against ``height``: a wrapped summary counted as
    one pushed the last rows, the count of those left out among them, off a short screen."""
    from rich.console import Group  # noqa: PLC0415
    from rich.table import Table  # noqa: PLC0415
    from rich.text import Text  # noqa: PLC0415

    heading = wrapped(summary_line(snapshot, now), width)
    # The stage rows fit under the summary and the table's header; at least one is shown.
    max_rows = None if height is None else max(2, height - len(heading) - 1)
    every_row = stage_rows(snapshot, now)
    rows, more = _fit(every_row, max_rows)

    # A narrow terminal takes its columns from the free-text ones (the widest first), never
    # from STATE, ELAPSED and INST: ``rich`` shrinks only columns that may wrap before it cuts
    # every column evenly (which left ``su…`` and ``62…`` at 80 columns, and no INST at all).
    # Those two columns may "wrap" for the sizing, and their cells and headers never do: each
    # stays one line, cut with an ellipsis.
    table = Table(box=None, pad_edge=False, header_style="bold")
    # TRIES only once a stage retried: a column of 1s would say nothing and take five
    # columns from the free text on a narrow terminal. Any stage of the run, not only those
    # shown: on a short terminal the column went when the stage that retried was cut.
    tries = any(row.attempts > 1 for row in every_row)
    cells: dict[str, list[Any]] = {
        "STAGE": [_one_line(row.stage) for row in rows],
        "STATE": [Text(row.state, style=_STYLES.get(row.state, "")) for row in rows],
        "ELAPSED": [_elapsed_cell(row) for row in rows],
        "INST": [row.progress for row in rows],
        "TRIES": [str(row.attempts) if row.attempts else "" for row in rows],
        "WAITING FOR / ERROR": [
            _one_line(row.waiting_for) if row.waiting_for else _one_line(row.error, "red")
            for row in rows
        ],
    }
    kept = _columns_kept([name for name in cells if tries or name != "TRIES"], rows, width)
    for name in kept:
        if name in _FREE_TEXT:
            table.add_column(_one_line(name), overflow="ellipsis")
        else:
            table.add_column(name, justify="left" if name == "STATE" else "right", no_wrap=True)
    for index in range(len(rows)):
        table.add_row(*(cells[name][index] for name in kept))
    parts: list[Any] = [Text("\n".join(heading), style="bold"), table]
    if more:
        parts.append(Text(more, style="dim"))
    return Group(*parts)


def _key(row: StageRow) -> tuple[str, str, bool]:
    """What makes a stage's plain line: a change of any of these is one."""
    return row.state, row.progress, row.approval_asked


def changes(previous: DagSnapshot | None, current: DagSnapshot, now: float) -> list[str]:
    """Plain lines for what changed from ``previous`` to ``current``: one per stage whose state
    or instance progress changed, or whose approval came to be asked for (or was answered), and
    the run's end.

    An approval asked for is a line even when the state stays (mode ``all``: ``waiting, waiting
    for build, then approval`` becomes ``waiting, waiting for approval`` once build ended): it
    is the one thing a person following a pipe has to act on. Other changes of WAITING FOR
    (an upstream stage of many ending) are not: a stage after 50 others would take 50 lines.
    """
    before = {} if previous is None else {r.stage: r for r in stage_rows(previous, now)}
    lines = []
    for row in stage_rows(current, now):
        old = before.get(row.stage)
        if old is not None and _key(old) == _key(row):
            continue
        if old is None and row.state == "pending":
            continue  # the first picture lists only what has started or waits
        parts = [f"{row.stage}: {row.state}"]
        if row.progress:
            parts.append(f"instances {row.progress}")
        if row.elapsed is not None and row.state not in _NO_ELAPSED:
            parts.append(format_duration(row.elapsed))
        if row.waiting_for:
            parts.append(f"waiting for {row.waiting_for}")
        if row.error:
            parts.append(row.error)
        lines.append(", ".join(parts))
    run = current.run
    was = previous.run.status if previous is not None and previous.run is not None else None
    if run is not None and run.status not in ("running", was):
        lines.append(summary_line(current, now))
    return lines
