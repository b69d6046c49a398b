"""The debugger prompt's breakpoint commands as typed (``cli/_debug_prompt.py``): ``break``,
``delete`` and ``info`` read, refused in one line, and answered, in-process over a real run
(``fuzz_targets_support.debug_conversation``: a DebugPrompt driving DebugOps through the run's
ControlServer, as ``debug attach`` does over the socket). The pseudo-terminal and pipe tests
of the same prompt run it in subprocesses (``pipeline_cli_debug_prompt_test.py``)."""

from __future__ import annotations

import re

from fuzz_targets_support import debug_conversation, scratch


def _typed(commands: list[str]) -> list[str]:
    """What the prompt printed for ``commands`` at a run paused before ``a`` (breakpoint #1),
    past its two opening lines, the run's id and its 8-character prefix each shown as RUN."""
    with scratch():
        _, shown = debug_conversation((), "".join(f"{line}\n" for line in commands))
    opening, paused, *lines = shown.splitlines()
    run_id = re.fullmatch(r"debugging run ([0-9a-f]{32}) \(p\).*", opening)
    assert run_id is not None, opening
    assert "paused at a.0.1 (#1 before a)" == paused
    return [line.replace(run_id[1], "RUN").replace(run_id[1][:8], "RUN") for line in lines]


def test_each_form_of_break_sets_its_breakpoint_and_info_lists_them() -> None:
    """A stage, a condition of one word or several kept as typed (its CEL string's quotes
    too), a failure: each set for this run, and ``info b`` lists them with their hits."""
    typed = [
        "break b",
        'break b if request.env == "prod"',
        "break b if request.n>0",
        "break c on failure",
        "break c on failure if request.n > 0",
    ]
    set_as = [
        "#2 before b (run RUN)",
        '#3 before b if request.env == "prod" (run RUN)',
        "#4 before b if request.n>0 (run RUN)",
        "#5 on failure of c (run RUN)",
        "#6 on failure of c if request.n > 0 (run RUN)",
    ]
    expected = [
        *(line for command, bp in zip(typed, set_as, strict=True)
          for line in (f"(taskdaemon) {command}", f"breakpoint {bp}")),
        "(taskdaemon) info b",
        "#1 before a  hits 1",
        *(f"{bp}  hits 0" for bp in set_as),
    ]  # fmt: skip
    assert expected == _typed([*typed, "info b"])


def test_delete_takes_a_number_with_or_without_its_hash_or_deletes_all() -> None:
    """``delete #2`` and ``delete 1`` delete one each, ``delete`` the rest, counted; then
    ``info break`` says there are none."""
    shown = _typed(["break b", "break c", "delete #2", "delete 1", "delete", "info break"])
    assert [
        "deleted 1 breakpoint",
        "deleted 1 breakpoint",
        "deleted 1 breakpoint",
        "no breakpoints",
    ] == [line for line in shown if not line.startswith(("(taskdaemon)", "breakpoint #"))]


#: Every form of ``break``: a mistyped one (``on failur``) is shown them all, not the form it
#: was not.
_BREAK_USAGE = "usage: break STAGE [on failure] [if CEL] | break on event TYPE"


def test_a_mistyped_breakpoint_command_is_refused_in_one_line_saying_its_usage() -> None:
    """Each mistake is one ``error:`` line naming the usage or the word refused (a number
    only of ASCII digits, up to nine), or the run's refusal of what it was asked (an event
    no stage listens for, a breakpoint it does not have), and no breakpoint is added or
    deleted."""
    mistakes = {
        "break": _BREAK_USAGE,
        "break b if": _BREAK_USAGE,
        "break b when request.n > 0": _BREAK_USAGE,
        "break c on failure if": _BREAK_USAGE,
        "break b on failur": _BREAK_USAGE,
        "break on event": _BREAK_USAGE,
        "break on event go": "no stage listens for event 'go' (events: none)",
        "delete x": "not a breakpoint number: 'x'",
        "delete 1234567890": "not a breakpoint number: '1234567890'",
        "delete 123456789": "run RUN has no breakpoint #123456789",
        "delete \uff13": "not a breakpoint number: '\uff13'",
        "info": "usage: info breakpoints",
        "info breakpoints now": "usage: info breakpoints",
    }
    expected = [
        line
        for typed, error in mistakes.items()
        for line in (f"(taskdaemon) {typed}", f"error: {error}")
    ]
    assert [*expected, "(taskdaemon) info breakpoints", "#1 before a  hits 1"] == _typed(
        [*mistakes, "info breakpoints"]
    )


def test_info_shows_the_last_error_of_a_condition_that_failed_to_evaluate() -> None:
    """A condition that cannot be evaluated does not pause; ``info breakpoints`` shows why."""
    shown = _typed(["break b if request.nope == 1", "break c", "continue", "info breakpoints"])
    assert [
        "#1 before a  hits 1",
        "#2 before b if request.nope == 1 (run RUN)  hits 0"
        "  (last error: 'request.nope == 1': no such key 'nope' (request has: 'n'))",
        "#3 before c (run RUN)  hits 1",
    ] == shown[-3:]
