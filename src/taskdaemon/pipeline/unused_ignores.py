"""The ``unused-ignore`` warning: a suppression that suppresses nothing (docs/validation.md,
"Unused suppressions").

An ``ignore_warnings: [CODE]`` or a ``# taskdaemon: ignore[CODE]`` whose warning went away (the
condition was fixed, the stage renamed, a later taskdaemon no longer warns) stays in the file
for ever, unnoticed, and hides the next real warning of that code in its place. ruff reports
such a ``# noqa`` (RUF100) and mypy such a ``# type: ignore`` (``--warn-unused-ignores``).

On by default, unlike those two: a warning leaves ``validate``'s exit code 0 (only ``--strict``
fails on it), and whether a suppression is used depends on the file alone, never on the
platform or the installed packages, which is why mypy leaves its check to ``--strict``. A
suppression that is meant to outlive its warning is kept quiet by naming this code: in the
same ``ignore_warnings`` list or ``# taskdaemon: ignore[...]`` comment, or in a comment on the
field's line, or on its stage's first line (every field code of the stage); the file's
``ignore_warnings: [unused-ignore]`` turns the check off for the whole file.

A suppression is used when it hid a warning. ``ignore_warnings`` fields are read first, so a
comment that repeats a field's code hides nothing and is reported; the stage's field and the
file's both count as used when they name the same code. A file whose warnings reached the cap
(``validation_warnings.MAX_WARNINGS``) was not looked at whole: no suppression is reported then.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from taskdaemon.pipeline.ignore_comments import ignore_comments
from taskdaemon.pipeline.validation_warnings import MAX_WARNINGS, ValidationWarning, placed

__all__ = ["CODE", "Used", "unused_ignores"]

#: This warning's code.
CODE = "unused-ignore"


class Used:
    """What suppressed a warning while a file's warnings were found: ``fields``, the
    ``(owner, code)`` of ``ignore_warnings`` (owner ``""``: the file's, ``stages[I]``: a
    stage's); ``comments``, the ``(line, code)`` of comments; ``complete``, whether every stage
    was looked at."""

    __slots__ = ("comments", "complete", "fields")

    def __init__(self) -> None:
        self.fields: set[tuple[str, str]] = set()
        self.comments: set[tuple[int, str]] = set()
        self.complete = False


def unused_ignores(
    used: Used,
    ignored: Mapping[str, tuple[str, ...]],
    *,
    text: str,
    fmt: str,
    lines_of: Callable[[list[str]], list[int | None]],
    source: str,
) -> list[ValidationWarning]:
    """The warnings of the suppressions of a valid file that ``used`` says hid nothing:
    ``ignored`` its ``ignore_warnings`` codes by owner, as the reader kept them (in the file's
    order: a valid file has no code that was dropped), and in YAML and TOML the comments of
    ``text``.
    Placed as every warning (``placed``, which also drops one a comment suppresses)."""
    if not used.complete or CODE in ignored.get("", ()):
        return []
    found = []
    for owner, codes in ignored.items():
        if CODE in codes:
            continue
        for index, code in enumerate(codes):
            if (owner, code) not in used.fields:
                where = "the file" if owner == "" else "this stage"
                found.append(
                    ValidationWarning(
                        f"{owner}.ignore_warnings[{index}]".lstrip("."),
                        f"{code} suppresses nothing: {where} has no {code} warning (remove it)",
                        CODE,
                    )
                )
    kept = placed(found, text, lines_of, source, used, fmt=fmt)  # a bare ignore hiding one is used
    kept += _comments(used, text, source, fmt)
    return kept[:MAX_WARNINGS]


def _comments(used: Used, text: str, source: str, fmt: str) -> list[ValidationWarning]:
    """A warning for each ``# taskdaemon: ignore`` comment of ``text`` with a code that hid
    nothing on its line (or, on a stage's first line, in its stage), at the comment's column."""
    found: list[ValidationWarning] = []
    for line, column, codes in ignore_comments(text, fmt):
        if codes is not None and CODE in codes:
            continue
        if codes is None:
            unused = [] if any(at == line for at, _ in used.comments) else ["ignore"]
        else:
            unused = [code for code in codes if code and (line, code) not in used.comments]
        if unused:
            what = "a bare ignore" if codes is None else ", ".join(unused)
            message = f"{what} suppresses nothing on this line or its stage (remove it)"
            found.append(ValidationWarning("ignore comment", message, CODE, source, line, column))
        if len(found) >= MAX_WARNINGS:
            break
    return found
