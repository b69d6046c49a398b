"""``descriptor_reserve`` in this process: what the reserve holds, when the process has fewer
descriptors left, how it is given up, and the limit its error text names
(``pipeline_descriptor_reserve_test.py`` counts them in a process of its own, which mutation
testing cannot credit)."""

from __future__ import annotations

import errno
import fcntl
import os
import resource
from collections.abc import Iterator

import pytest

from taskdaemon.pipeline import descriptor_reserve
from taskdaemon.pipeline.descriptor_reserve import RESERVE, exhaustion_text


@pytest.fixture(autouse=True)
def none_held() -> Iterator[None]:
    """No reserve held before a case (a run before it may have left one) nor after it."""
    descriptor_reserve.release_reserve()
    try:
        yield
    finally:
        descriptor_reserve.release_reserve()


@pytest.fixture
def soft_limit() -> Iterator[None]:
    """The descriptor limits put back after a case that lowers the soft one."""
    limits = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, limits)


def held() -> list[int]:
    return list(descriptor_reserve._reserve)


def test_the_reserve_holds_its_count_of_read_only_close_on_exec_dev_null() -> None:
    descriptor_reserve.keep_reserve()
    descriptors = held()
    assert len(set(descriptors)) == RESERVE
    for descriptor in descriptors:
        assert os.readlink(f"/proc/self/fd/{descriptor}") == os.devnull
        assert fcntl.fcntl(descriptor, fcntl.F_GETFL) & os.O_ACCMODE == os.O_RDONLY
        assert fcntl.fcntl(descriptor, fcntl.F_GETFD) & fcntl.FD_CLOEXEC
    descriptor_reserve.keep_reserve()  # kept again: topped up, not doubled
    assert held() == descriptors


def test_a_process_with_fewer_descriptors_left_holds_what_it_can(soft_limit: None) -> None:
    """The reserve is taken before the first stage; a process already near its limit keeps
    running with a smaller one (the EMFILE met on the way is not an error)."""
    highest = max(int(name) for name in os.listdir("/proc/self/fd"))
    fillers = []  # every free number up to the highest taken, so that exactly 3 are left
    try:
        while (last := os.open(os.devnull, os.O_RDONLY)) < highest:
            fillers.append(last)
        fillers.append(last)
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        resource.setrlimit(resource.RLIMIT_NOFILE, (last + 4, hard))
        descriptor_reserve.keep_reserve()
        assert sorted(held()) == [last + 1, last + 2, last + 3]
    finally:
        for descriptor in fillers:
            os.close(descriptor)


def test_giving_up_closes_each_descriptor_and_says_whether_any_were_held() -> None:
    descriptor_reserve.keep_reserve()
    descriptors = held()
    assert descriptor_reserve.release_reserve() is True
    assert held() == []
    for descriptor in descriptors:
        with pytest.raises(OSError, match="Bad file descriptor"):
            os.fstat(descriptor)
    assert descriptor_reserve.release_reserve() is False


def test_a_descriptor_closed_behind_its_back_does_not_stop_the_others_closing() -> None:
    descriptor_reserve.keep_reserve()
    descriptors = held()
    os.close(descriptors[-1])  # the first one given up
    assert descriptor_reserve.release_reserve() is True
    assert held() == []
    for descriptor in descriptors[:-1]:
        with pytest.raises(OSError, match="Bad file descriptor"):
            os.fstat(descriptor)


def test_the_text_names_the_soft_limit_the_process_meets(soft_limit: None) -> None:
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    soft = min(hard, 4096) - 1
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    text = exhaustion_text(OSError(errno.EMFILE, "Too many open files"))
    assert f"limit allows open ({soft}, ulimit -n)" in text


def test_an_unlimited_limit_is_named_so(monkeypatch: pytest.MonkeyPatch) -> None:
    """No process here may lift its hard limit: ``getrlimit`` answers as it would."""
    infinity = resource.RLIM_INFINITY
    monkeypatch.setattr(resource, "getrlimit", lambda _: (infinity, infinity))
    assert exhaustion_text(OSError(errno.EMFILE, "Too many open files")) == (
        "taskdaemon's process has all the file descriptors its limit allows open (unlimited, "
        "ulimit -n): code it runs (a stage's handler) keeps them: [Errno 24] Too many open files"
    )
