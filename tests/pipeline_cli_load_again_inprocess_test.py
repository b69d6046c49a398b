"""``built_despite_stage_code`` called in this process: the second try after the recursion limit
or the descriptors stage code took, and each failure it leaves as it is (``cli/load_again.py``).
The run-level cases (``pipeline_cli_load_again_test.py``) run ``taskdaemon`` in subprocesses."""

from __future__ import annotations

import errno
import logging
import os
import sys
from collections.abc import Callable, Iterator

import pytest

from taskdaemon.pipeline import descriptor_reserve
from taskdaemon.pipeline.cli.load_again import FLOOR, built_despite_stage_code

LOGGER = "taskdaemon.pipeline.cli.load_again"


@pytest.fixture(autouse=True)
def limit_and_reserve_put_back() -> Iterator[None]:
    """No reserve held when a case starts (a run before it may have left one), and the
    recursion limit as it was and none held after it, whatever the case did."""
    limit = sys.getrecursionlimit()
    descriptor_reserve.release_reserve()
    try:
        yield
    finally:
        sys.setrecursionlimit(limit)
        descriptor_reserve.release_reserve()


class Calls:
    """A build that fails with each of ``errors`` in turn, then returns ``"built"``; and a
    cleanup, counted."""

    def __init__(self, *errors: Callable[[], BaseException]) -> None:
        self.errors = list(errors)
        self.builds = 0
        self.cleanups = 0

    def build(self) -> str:
        self.builds += 1
        if self.errors:
            raise self.errors.pop(0)()
        return "built"

    def cleanup(self) -> None:
        self.cleanups += 1


def lowered_to(limit: int) -> Callable[[], BaseException]:
    """What a build meets after a handler's ``sys.setrecursionlimit(limit)``."""

    def error() -> BaseException:
        sys.setrecursionlimit(limit)
        return RecursionError("maximum recursion depth exceeded")

    return error


def emfile() -> BaseException:
    return OSError(errno.EMFILE, "Too many open files")


def test_a_build_that_works_is_returned_without_cleanup_or_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls = Calls()
    with caplog.at_level(logging.DEBUG, LOGGER):
        assert built_despite_stage_code(calls.build, calls.cleanup) == "built"
    assert (calls.builds, calls.cleanups, caplog.records) == (1, 0, [])


def test_a_lowered_recursion_limit_is_put_back_and_the_build_tried_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls = Calls(lowered_to(FLOOR - 1))
    with caplog.at_level(logging.DEBUG, LOGGER):
        assert built_despite_stage_code(calls.build, calls.cleanup) == "built"
    assert sys.getrecursionlimit() == FLOOR
    assert (calls.builds, calls.cleanups) == (2, 1)
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (
            logging.WARNING,
            f"stage code lowered Python's recursion limit to {FLOOR - 1} "
            f"(sys.setrecursionlimit): taskdaemon put it back to {FLOOR} to load its telemetry",
        )
    ]


@pytest.mark.parametrize("limit", [FLOOR, FLOOR + 1])
def test_a_recursion_error_at_the_starting_limit_or_above_is_raised(limit: int) -> None:
    """Not stage code's doing: the build really recursed too deep, and a second try would too."""
    calls = Calls(lowered_to(limit))
    with pytest.raises(RecursionError):
        built_despite_stage_code(calls.build, calls.cleanup)
    assert (calls.builds, calls.cleanups, sys.getrecursionlimit()) == (1, 0, limit)


def held() -> list[int]:
    """The reserve's descriptors (read, not counted in ``/proc``: the process's other threads
    may open and close descriptors meanwhile), each checked open."""
    for descriptor in descriptor_reserve._reserve:
        os.fstat(descriptor)
    return list(descriptor_reserve._reserve)


def test_descriptors_taken_give_up_the_reserve_and_the_build_is_tried_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    descriptor_reserve.keep_reserve()
    assert len(held()) == descriptor_reserve.RESERVE
    calls = Calls(emfile)
    with caplog.at_level(logging.DEBUG, LOGGER):
        assert built_despite_stage_code(calls.build, calls.cleanup) == "built"
    assert (held(), calls.builds, calls.cleanups) == ([], 2, 1)
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (
            logging.WARNING,
            "stage code keeps every file descriptor open ([Errno 24] Too many open files): "
            "taskdaemon gave up the ones it kept in reserve to load its telemetry",
        )
    ]


def test_descriptors_taken_with_no_reserve_left_are_raised() -> None:
    calls = Calls(emfile)
    with pytest.raises(OSError, match="Too many open files"):
        built_despite_stage_code(calls.build, calls.cleanup)
    assert (calls.builds, calls.cleanups) == (1, 0)


def test_another_os_error_is_raised_and_the_reserve_kept() -> None:
    descriptor_reserve.keep_reserve()
    before = held()
    calls = Calls(lambda: FileNotFoundError(errno.ENOENT, "No such file"))
    with pytest.raises(FileNotFoundError):
        built_despite_stage_code(calls.build, calls.cleanup)
    assert (calls.builds, calls.cleanups, held()) == (1, 0, before)


def test_a_failing_cleanup_does_not_stop_the_second_try(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def cleanup() -> None:
        raise RuntimeError("half-built")

    calls = Calls(lowered_to(FLOOR - 1))
    with caplog.at_level(logging.DEBUG, LOGGER):
        assert built_despite_stage_code(calls.build, cleanup) == "built"
    assert calls.builds == 2
    assert len(caplog.records) == 1


def test_the_second_try_failing_is_raised_and_said_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls = Calls(lowered_to(FLOOR - 1), lambda: ValueError("still broken"))
    with caplog.at_level(logging.DEBUG, LOGGER), pytest.raises(ValueError, match="still broken"):
        built_despite_stage_code(calls.build, calls.cleanup)
    assert (calls.builds, calls.cleanups, len(caplog.records)) == (2, 1, 1)
