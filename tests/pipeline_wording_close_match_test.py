"""``wording.close_match``: the "did you mean" of a wrong name, bounded in the name's length
in one place. Before, its callers bounded it themselves, with three values (128, 100 and
``validation.MAX_NAME_LENGTH``), and some not at all: a pipeline name against the store's
names, a web ``?status=``."""

from __future__ import annotations

import difflib
import random
import time
from collections.abc import Collection

import pytest

from taskdaemon.pipeline.cli import COMMANDS
from taskdaemon.pipeline.cli._debug_prompt import DebugPrompt
from taskdaemon.pipeline.config_reader import (
    _BACKOFF_KEYS,
    _LOOP_KEYS,
    _MAPPING_KEYS,
    _PIPELINE_KEYS,
    _STAGE_KEYS,
)
from taskdaemon.pipeline.errors import CLOSE_STAGES, no_such_stage
from taskdaemon.pipeline.name_likeness import shared_start
from taskdaemon.pipeline.validation import MAX_NAME_LENGTH
from taskdaemon.pipeline.validation_warnings import WARNING_CODES
from taskdaemon.pipeline.web._data import _STATUSES, check_status
from taskdaemon.pipeline.wording import CLOSE_NAME, CLOSE_WORK, close_match


def _named(length: int, number: int) -> str:
    """A name of ``length`` characters, told from its neighbours by ``number`` at its start
    (a message quotes a name's first 40 characters)."""
    head = f"s{number:04d}-"
    return head + "s" * (length - len(head))


def test_the_bound_is_the_longest_name_a_definition_allows() -> None:
    """The two values are written apart (``validation`` imports ``wording``): every name a
    definition can hold is looked up, and none longer."""
    assert CLOSE_NAME == MAX_NAME_LENGTH


def test_a_name_at_the_bound_still_gets_its_hint_among_many() -> None:
    """A stage name of the longest length allowed, with a letter wrong, among as many stages
    as an unknown stage is compared with, gets the stage it was meant to be."""
    stages = [_named(CLOSE_NAME, number) for number in range(CLOSE_STAGES)]
    wrong = stages[417][:-1] + "x"
    assert [stages[417]] == close_match(wrong, stages)
    assert no_such_stage(wrong, stages).endswith(f"; did you mean '{stages[417]}'?")


def test_one_character_past_the_bound_gets_none() -> None:
    """The same name with one character more is past the bound: no hint, though difflib
    would find one; the caller's own list says what there is."""
    stages = [_named(CLOSE_NAME, number) for number in range(CLOSE_STAGES)]
    longer = stages[417] + "x"
    assert [] == close_match(longer, stages)
    assert no_such_stage(longer, stages).endswith(f" and {CLOSE_STAGES - 20} more)")


def test_a_long_hostile_name_answers_at_once_and_suggests_nothing() -> None:
    """A name of 20,000 characters against 1,000 candidates as long and all but alike: every
    comparison would cost the product of their lengths, and difflib would
    call one of them close. Past the bound, none is compared."""
    hostile = "a" * 20_000
    candidates = [hostile[:-5] + f"{number:05d}" for number in range(1000)]
    started = time.process_time()
    close = close_match(hostile, candidates)
    assert time.process_time() - started < 0.1
    assert [] == close


@pytest.mark.parametrize(("status", "meant"), [("sucess", True), ("s" * 10_000 + "ucess", False)])
def test_a_web_status_is_bounded_like_every_other_name(status: str, meant: bool) -> None:
    """The web's ``?status=`` had no bound of its own: a misspelt status gets its hint, a
    long one only the list of statuses, on one line."""
    with pytest.raises(ValueError, match="unknown status") as raised:
        check_status(status)
    said = str(raised.value)
    assert ("did you mean 'success'?" in said) is meant
    assert "(one of " in said
    assert "\n" not in said


def _before(name: str, candidates: Collection[str]) -> list[str]:
    """``close_match`` as it was before its work was bounded: difflib's three closest, the
    one that begins as ``name`` for longest."""
    if len(name) > CLOSE_NAME:
        return []
    close = difflib.get_close_matches(name, list(candidates), n=3)
    return [max(close, key=lambda candidate: shared_start(name, candidate))] if close else []


#: Ordinary typos, from the other tests' cases, against the candidates their callers pass.
_TYPOS: list[tuple[str, Collection[str], str | None]] = [
    ("nme", _STAGE_KEYS, "name"),
    ("trigers", _STAGE_KEYS, "triggers"),
    ("triger", _STAGE_KEYS, "triggers"),
    ("triggerz", _STAGE_KEYS, "triggers"),
    ("Command", _STAGE_KEYS, "command"),
    ("comand", _STAGE_KEYS, "command"),
    ("paralel_instances", _STAGE_KEYS, "parallel_instances"),
    ("retires", _STAGE_KEYS, "retry"),
    ("nmae", _PIPELINE_KEYS, "name"),
    ("hadler", _LOOP_KEYS, "handler"),
    ("intial", _BACKOFF_KEYS, "initial"),
    ("form", _MAPPING_KEYS, "from"),
    ("constant-conditon", WARNING_CODES, "constant-condition"),
    ("own-staus", WARNING_CODES, "own-status"),
    ("sucess", _STATUSES, "success"),
    ("succeeded", _STATUSES, "success"),
    ("rnu", COMMANDS, "run"),
    ("inptus", DebugPrompt.COMMANDS, "inputs"),
    ("planing", ["specification", "planning", "implementation", "review"], "planning"),
    ("fetch", ["fetcher", "parse", "store"], "fetcher"),
    ("cuont", ["count", "items", "total"], "count"),
    ("etll", ["etl", "nightly", "backup"], "etl"),
    ("nightyl", ["etl", "nightly", "backup"], "nightly"),
    ("xyz", _STAGE_KEYS, None),
    ("", _STAGE_KEYS, None),
]


@pytest.mark.parametrize(("name", "candidates", "meant"), _TYPOS)
def test_an_ordinary_typo_gets_the_hint_it_got_before(
    name: str, candidates: Collection[str], meant: str | None
) -> None:
    """Within the work bound every candidate is compared: the hint is difflib's, as before."""
    assert close_match(name, candidates) == _before(name, candidates) == ([meant] if meant else [])


def test_random_typos_among_many_names_get_the_hints_they_got_before() -> None:
    """Typos of every kind (a letter dropped, doubled, swapped, changed) in names among up to
    a thousand stages of a few words: the same hint as before, each time."""
    rng = random.Random(60)
    words = [*_STAGE_KEYS, *WARNING_CODES, "build", "deploy", "fetch", "report", "staging"]
    for _ in range(300):
        names = sorted(
            {
                "_".join(rng.sample(words, rng.randint(1, 3)))
                for _ in range(rng.choice([5, 50, 1000]))
            }
        )
        name = list(rng.choice(names))
        at = rng.randrange(len(name))
        kind = rng.randrange(4)
        if kind == 0:
            del name[at]
        elif kind == 1:
            name.insert(at, name[at])
        elif kind == 2 and at + 1 < len(name):
            name[at], name[at + 1] = name[at + 1], name[at]
        else:
            name[at] = rng.choice("abcdefghijklmnopqrstuvwxyz_")
        wrong = "".join(name)
        assert close_match(wrong, names) == _before(wrong, names), wrong


class _Work:
    """The work difflib does, counted as its loops run: the letters ``quick_ratio`` counts,
    and each longest-match search's characters walked and their places in the name."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.done = 0
        search = difflib.SequenceMatcher.find_longest_match
        quick = difflib.SequenceMatcher.quick_ratio

        def counted_search(
            matcher: difflib.SequenceMatcher[str],
            alo: int = 0,
            ahi: int | None = None,
            blo: int = 0,
            bhi: int | None = None,
        ) -> difflib.Match:
            ahi = len(matcher.a) if ahi is None else ahi
            bhi = len(matcher.b) if bhi is None else bhi
            for at in range(alo, ahi):
                self.done += 1
                for place in matcher.b2j.get(matcher.a[at], ()):
                    if place >= bhi:
                        break
                    self.done += 1
            return search(matcher, alo, ahi, blo, bhi)

        def counted_quick(matcher: difflib.SequenceMatcher[str]) -> float:
            self.done += len(matcher.a)
            return quick(matcher)

        monkeypatch.setattr(difflib.SequenceMatcher, "find_longest_match", counted_search)
        monkeypatch.setattr(difflib.SequenceMatcher, "quick_ratio", counted_quick)


def _mirrored(count: int) -> tuple[str, list[str]]:
    """A name at the bound made of one short pattern, and ``count`` candidates of its
    reverse, as long as difflib's length filter lets through: each comparison of them costs
    many times the product of their lengths."""
    return ("cbd" * 43)[:CLOSE_NAME], [
        ("dbc" * 100)[: CLOSE_NAME + n % 171] + str(n) for n in range(count)
    ]


def test_the_work_of_a_look_up_at_the_bound_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """Names that share their letters pass difflib's cheap filters, and comparing them all
    cost far past the bound: compared likeliest first, the look-up stops at ``CLOSE_WORK``,
    and the name at the bound among as many as an unknown stage is compared with still gets
    its stage."""
    work = _Work(monkeypatch)
    stages = [_named(CLOSE_NAME, number) for number in range(CLOSE_STAGES)]
    wrong = stages[417][:-1] + "x"
    assert [stages[417]] == close_match(wrong, stages)
    assert 0 < work.done <= CLOSE_WORK

    work.done = 0
    name, mirrored = _mirrored(CLOSE_STAGES)
    close_match(name, mirrored)
    assert 0 < work.done <= CLOSE_WORK


def test_unbounded_the_mirrored_names_cost_far_more(monkeypatch: pytest.MonkeyPatch) -> None:
    """The case above is a real one: ten of those mirrored names cost difflib alone, counted
    alike, several times ``CLOSE_WORK`` (the thousand above, a hundred times as many)."""
    work = _Work(monkeypatch)
    name, mirrored = _mirrored(10)
    _before(name, mirrored)
    assert work.done > 3 * CLOSE_WORK


@pytest.mark.parametrize("length", [60, CLOSE_NAME])
def test_a_long_hint_says_which_name_it_is(length: int) -> None:
    """Two long stage names that differ only at their end: the hint names the one meant whole,
    where it was cut to 40 characters and read the same for both."""
    stages = ["s" * (length - 1) + "a", "s" * (length - 1) + "b", "other"]
    wrong = "s" * (length - 2) + "b"
    assert no_such_stage(wrong, stages).endswith(f"; did you mean '{stages[1]}'?")
