"""An exporter's batch looked at again as it leaves (``masked_values.masked_batch``): the items
recorded before a value became known as a secret, and only those, go out masked. The set
of known values itself (``MaskedValues``): what it starts with, what a change empties. And a
text's stretches that values cover, each replaced once (``masked_text``; overlapping values in
``pipeline_secret_values_overlap_test.py``)."""

from __future__ import annotations

from collections.abc import Iterable

from taskdaemon.pipeline.masked_values import MaskedValues, masked_batch, masked_text
from taskdaemon.pipeline.redaction import REDACTED, redact_text
from taskdaemon.pipeline.secret_values import remember_secrets

SECRET = "s3cr3t-fetched-77"

Item = tuple[str, ...]


class _Masking:
    """The ``texts`` and ``masked`` an exporter gives: an item's strings, and a copy of the
    item with each string redacted; it counts the copies it made."""

    def __init__(self) -> None:
        self.copied: list[Item] = []

    def texts(self, item: Item) -> Iterable[str]:
        return item

    def masked(self, item: Item) -> Item:
        self.copied.append(item)
        return tuple(redact_text(text) for text in item)


def test_a_batch_leaves_as_it_is_while_no_value_is_known() -> None:
    """Nothing known: the very batch leaves, nothing is copied, even a text shaped like a
    secret (masking by shape was done when it was recorded)."""
    batch = [("password=hunter2",), ("plain",)]
    masking = _Masking()
    assert (True, []) == (
        masked_batch(batch, masking.texts, masking.masked) is batch,
        masking.copied,
    )


def test_a_batch_without_a_known_value_leaves_as_it_is() -> None:
    """A value known, none of the batch's texts holding it: the very batch leaves."""
    remember_secrets({"token": SECRET})
    batch = [("s3cr3t", "fetched-77"), ("plain",)]
    masking = _Masking()
    assert (True, []) == (
        masked_batch(batch, masking.texts, masking.masked) is batch,
        masking.copied,
    )


def test_only_the_items_holding_a_known_value_are_masked_in_place() -> None:
    """The items holding the value in any of their texts are replaced by their masked copies,
    in their places; the others leave as the same objects; the batch given is not changed."""
    remember_secrets({"token": SECRET})
    first, holding, middle, last = ("a",), ("b", f"got {SECRET}"), ("c", "d"), (SECRET,)
    batch = [first, holding, middle, last]
    masking = _Masking()
    out = masked_batch(batch, masking.texts, masking.masked)
    assert (
        list(out),
        [out[0] is first, out[2] is middle],
        masking.copied,
        batch,
    ) == (
        [first, ("b", f"got {REDACTED}"), middle, (REDACTED,)],
        [True, True],
        [holding, last],
        [first, holding, middle, last],
    )


def test_a_new_set_of_values_knows_none_and_empties_its_caches_at_each_change() -> None:
    """A fresh ``MaskedValues`` holds no value, needle or multi-line value; each replacement
    sets all three (the values holding a line break apart) and empties every cache it was
    given, a set and a dict alike, so a text found clean before is looked at again."""
    known = MaskedValues()
    found_clean: set[str] = {"plain text"}
    redacted: dict[str, str] = {"old": "old"}
    known.clears(found_clean)
    known.clears(redacted)
    fresh = (known.values, known.needles, known.across_lines)
    known.replace(("line one\nline two", "s3cr3t"), ("line", "s3c"))
    assert (
        fresh,
        (known.values, known.needles, known.across_lines),
        (found_clean, redacted),
    ) == (
        ((), (), ()),
        (("line one\nline two", "s3cr3t"), ("line", "s3c"), ("line one\nline two",)),
        (set(), {}),
    )


def test_each_change_is_a_generation_none_before_had() -> None:
    """A text redacted and kept with the generation read then (a definition's span attributes)
    is redacted again after any later change, the second as the first: no change gives a
    generation seen before."""
    known = MaskedValues()
    seen = [known.generation]
    for values in (("first-s3cr3t",), ("first-s3cr3t", "second-s3cr3t")):
        known.replace(values, values)
        seen.append(known.generation)
    assert 3 == len(set(seen))


def test_many_stretches_are_each_masked_in_order() -> None:
    """Thousands of stretches of two values: the text reads as one replacement per stretch, in
    order."""
    parts = [f"{n}:{'alpha-key-1234' if n % 2 else '1234-beta-key'};" for n in range(5_000)]
    masked = masked_text("".join(parts), ("alpha-key-1234", "1234-beta-key"), "[R]")
    assert "".join(f"{n}:[R];" for n in range(5_000)) == masked


def test_a_stretch_at_the_start_or_the_end_of_the_text() -> None:
    values = ("alpha-key-1234", "1234-beta-key")
    assert "[R] x [R]" == masked_text("alpha-key-1234 x 1234-beta-key", values, "[R]")
    assert "[R]" == masked_text("alpha-key-1234-beta-key", values, "[R]")
    assert "[R]-[R]" == masked_text("1234-beta-key-alpha-key-1234", values, "[R]")


def test_one_value_held_of_several_is_replaced_where_it_is() -> None:
    values = ("nowhere-in-text", "alpha-key-1234", "not-here-either")
    assert "a [R] b [R]" == masked_text("a alpha-key-1234 b alpha-key-1234", values, "[R]")
    assert "a [R] b" == masked_text("a alpha-key-1234 b", values[1:], "[R]")
