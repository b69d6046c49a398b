"""``wording.close_match``: the "did you mean" of a wrong name, bounded in the name's length
in one place. Before, its callers bounded it themselves, with three values (128, 100 and
``validation.MAX_NAME_LENGTH``), and some not at all: a pipeline name against the store's
names, a web ``?status=``."""

from __future__ import annotations

import time

import pytest

from taskdaemon.pipeline.errors import CLOSE_STAGES, no_such_stage
from taskdaemon.pipeline.quoting import quote
from taskdaemon.pipeline.validation import MAX_NAME_LENGTH
from taskdaemon.pipeline.web._data import check_status
from taskdaemon.pipeline.wording import CLOSE_NAME, close_match


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
    assert no_such_stage(wrong, stages).endswith(f"; did you mean {quote(stages[417])}?")


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
