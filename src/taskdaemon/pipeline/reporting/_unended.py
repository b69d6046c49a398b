"""What a report says of the runs it leaves out because they had not ended, in every source.

A report counts ended runs only: a run still going has no duration or status yet, and one whose
process was killed (``interrupted``: ``runs list`` shows it so) never will. Such runs started in
the window are not counted, but they are not hidden either: the report's notes say, per
pipeline, how many were left out and of which kind, so that "3 runs, 100% succeeded" cannot hide
two more that were killed. A pipeline whose runs in the window have all not ended gets its note
too (it has no figures to show). Runs waiting for an approval or paused at a breakpoint are
still running. See docs/reports.md, "Runs that had not ended".
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Unended", "unended_note"]


@dataclass(frozen=True, slots=True)
class Unended:
    """One pipeline's runs started in a window that had not ended when the report read them."""

    running: int = 0  # still running (a live process may end them), paused ones included
    interrupted: int = 0  # their process is gone: they will never end

    @property
    def total(self) -> int:
        """How many runs were left out."""
        return self.running + self.interrupted


def unended_note(pipeline: str, unended: Unended) -> str:
    """The report's note for ``pipeline``'s runs left out because they had not ended."""
    noun = "run" if unended.total == 1 else "runs"
    kinds = [
        f"{count} {kind}"
        for count, kind in (
            (unended.running, "still running"),
            (unended.interrupted, "interrupted (process killed)"),
        )
        if count
    ]
    return (
        f"{pipeline}: {unended.total} {noun} that had not ended left out of the figures: "
        f'{", ".join(kinds)}; see docs/reports.md, "Runs that had not ended"'
    )
