"""Counts as people read them: ``1 event``, ``2 events``, never ``2 event(s)``; what every
view of a replay calls an execution it did not run, and the run it took it from; the sentence
every view says of a pipeline nobody ran, with the name it was likely meant to be; and which
known name a wrong one was meant to be."""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Collection, Iterable
from typing import Any, Final

from taskdaemon.pipeline.quoting import quote


def counted(count: int, noun: str) -> str:
    """``count`` and ``noun``, with an ``s`` unless ``count`` is one (every noun counted here
    takes one)."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def instance_counts(statuses: Iterable[str]) -> str:
    """``instances: 2 success, 1 paused``: a fanned-out stage's instances counted by status, as
    ``where`` says it at the debugger's prompt and in ``replay --step`` (the one said ``(3
    instances)``, the other ``(instances: 3 paused)``). Counted, not listed: a fan-out of 500
    made one line of 500 words."""
    return "instances: " + ", ".join(f"{n} {s}" for s, n in Counter(statuses).items())


#: What every view of a replay calls an execution it did not run, as ``--dry-run`` does: fed
#: from the record (``replayed``, its span's status), or an instance of a stage it ran again
#: that took its recorded outputs (``reused``; its span says ``replayed`` all the same). The
#: first is ``telemetry.STATUS_REPLAYED``, written here: a shared helper imports none of the
#: layers above it (docs/architecture.md, "Layers").
_FED = "replayed"
_REUSED = "reused"
_NOT_RUN = (_FED, _REUSED)


def not_run_word(*, fed: bool) -> str:
    """The word for an execution a replay did not run: ``replayed`` when the replay ``fed`` its
    whole stage from the record, else ``reused``."""
    return _FED if fed else _REUSED


def is_not_run(status: str) -> bool:
    """Whether ``status`` is one of :func:`not_run_word`'s words."""
    return status in _NOT_RUN


def taken_from(what: str, original: str) -> str:
    """``reused c#0 from run R``: ``what`` (a word of :func:`not_run_word`'s, and what it
    names; or nothing) said with the run it was taken from, one wording for the walk's events,
    the replay's note and ``where``."""
    return f"{what} from run {original}" if what else f"from run {original}"


def not_run_by_replay(statuses: Collection[str], status: str, original: str) -> str | None:
    """What ``where`` adds to a replay's stage whose executions' ``statuses`` hold some it did
    not run, taken from run ``original``: ``from run R`` when that is the stage's ``status``
    itself, else ``reused from run R`` (or ``replayed and reused ...``); None when it ran all."""
    said = [word for word in _NOT_RUN if word in statuses]
    if not said:
        return None
    return taken_from(" and ".join(said) if said != [status] else "", original)


def no_run_of(pipeline: str) -> str:
    """What ``runs list``, ``report`` and the web runs page say when the source holds no run of
    ``pipeline`` at all (a typo, say): "no runs" sent the reader to widen filters that were not
    the cause."""
    return f"no run of pipeline {quote(pipeline)} is known to this source"


#: How many of the source's pipeline names a wrong pipeline is compared with.
_NAMES_COMPARED = 1000


def unknown_pipeline(source: Any, pipeline: str | None, also: Collection[str] = ()) -> str | None:
    """What ``runs list --pipeline``, ``report --pipeline`` and the web runs page say when the
    span ``source`` (None: no source) holds no run of ``pipeline`` at all (:func:`no_run_of`),
    with a "did you mean" from the pipeline names it holds and ``also`` (the web's engine's,
    whose runs the source may not hold yet); None when it holds one, or no pipeline was asked
    for.

    A new pipeline before its first run, or one that retention emptied, is said so too: the
    source cannot tell it from a typo. The names compared are the embedded store's every
    pipeline (the first ``_NAMES_COMPARED`` by name), or those of another source's newest
    runs. ``source`` is any span source (none is imported here: a shared helper imports no
    layer above it); it is read, so call this off an event loop."""
    if pipeline is None or (source is not None and source.search(pipeline=pipeline, limit=1)):
        return None
    counts = getattr(source, "pipeline_counts", None)
    if source is None:
        names = set()
    elif callable(counts):
        names = set(counts(limit=_NAMES_COMPARED))
    else:
        names = {run.pipeline for run in source.search(limit=_NAMES_COMPARED)}
    close = close_match(pipeline, names | set(also))
    return no_run_of(pipeline) + (f"; did you mean {quote_meant(close[0])}?" if close else "")


#: The longest wrong name :func:`close_match` looks a candidate up for: the longest name a
#: definition may give a pipeline, a stage, a loop type or an event type
#: (``validation.MAX_NAME_LENGTH``, which imports this module, so the value is written twice
#: and a test holds them equal).
CLOSE_NAME: Final = 128
#: The work one :func:`close_match` may do (counted as ``name_likeness`` counts it): sixteen
#: comparisons of the costliest kind for difflib's first search, two names of
#: :data:`CLOSE_NAME` characters of one letter, whose every character is in the other's
#: every place. An ordinary look-up (a definition's keys or stages, the command line's
#: options) costs a small part of it.
CLOSE_WORK: Final = 16 * CLOSE_NAME * CLOSE_NAME
#: How close a candidate must be (``SequenceMatcher.ratio``), and how many of the closest are
#: weighed by their start: ``difflib.get_close_matches``'s defaults, which it used before.
_CUTOFF = 0.6
_WEIGHED = 3


def quote_meant(meant: str) -> str:
    """A "did you mean"'s name, quoted as ``quoting.quote`` quotes, but whole up to
    :data:`CLOSE_NAME` characters, not cut at 40: two long names that differ only at their
    end (``stage_…_eu``, ``stage_…_us``) read the same cut, and the hint would not say which
    one it means. Every name a definition holds is shown whole; a longer one (a remote
    source's pipeline name) is cut as any quote is, at that bound."""
    return quote(meant, CLOSE_NAME)


def close_match(name: str, candidates: Collection[str]) -> list[str]:
    """The candidate closest to a wrong ``name``, if any is close (a list of at most one): of
    the close ones, the one that begins as ``name`` does for longest, else the closest. A
    word is misspelt at its end more often than at its start: ``retries`` is ``retry`` with
    another ending, though ``triggers`` shares more of its letters. One rule for a
    definition's keys and choices, for the stage and loop names it refers to, and for the
    command line's sub-commands, choices and options.

    A ``name`` longer than :data:`CLOSE_NAME` gets none, whoever asks: each comparison costs
    the product of the two lengths or more, and the name comes from a file, a command line or a
    URL anyone writes. The bound is here, not in the callers, which had three values and some
    none (a pipeline name against the store's, a web ``?status=``). Its value is the longest
    name a definition allows, so that every name it can hold gets its hint; a longer one is
    no name a definition holds, and the caller's own message (the names there are, or what
    is expected) still says what to write. The number of ``candidates`` is each caller's
    bound, as only it knows where they come from.

    The work is bounded too (:data:`CLOSE_WORK`): at that length, names that share their
    letters (``s0417-sss…``) all pass difflib's cheap filters, which count letters and not
    their order, and each comparison then costs the product of the lengths, or many times it
    for names made of one short pattern. So the candidates are compared likeliest first, by
    how much of the name's start and end they share (``name_likeness.ends_shared``: a typo
    leaves both sides of it), and the comparing stops where the next step would go past the
    bound; the answer is the closest of those compared. Within the bound every candidate is
    compared, and the answer is exactly ``difflib.get_close_matches``'s, as before. Past it,
    a candidate sharing little of either end may go uncompared: a hint that may not be the
    closest, for an answer bounded in time. Answering nothing past the bound would have
    taken the hint from a long name among many, the very look-up the length bound keeps."""
    if len(name) > CLOSE_NAME:
        return []
    from taskdaemon.pipeline import name_likeness  # noqa: PLC0415 - difflib: start-up time

    total = len(name) or 1
    likeliest = sorted(
        (-2 * name_likeness.ends_shared(name, candidate) / (total + len(candidate)), candidate)
        for candidate in candidates
    )
    matcher = name_likeness.BoundedMatcher(name, CLOSE_WORK)
    close = []
    try:
        for _, candidate in likeliest:
            if (score := matcher.ratio_within(candidate, _CUTOFF)) is not None:
                close.append((score, candidate))
    except name_likeness.WorkSpentError:
        pass  # the closest of those compared
    weighed = [candidate for _, candidate in heapq.nlargest(_WEIGHED, close)]
    if not weighed:
        return []
    return [max(weighed, key=lambda candidate: name_likeness.shared_start(name, candidate))]
