"""The process-group watchdog: a command stage's processes do not outlive their taskdaemon.

A command stage runs in a process group of its own (``command_loop.command_handler``), and
taskdaemon ends that group itself when the stage ends, is cancelled or times out, and on SIGINT
or SIGTERM. It cannot when it is killed outright (``kill -9``, the OOM killer, a second Ctrl-C,
which leaves through ``os._exit``): the shell and everything it started would go on, orphaned,
with nobody to stop them. So each taskdaemon process that runs a command stage also runs one
small watchdog process, holding the read end of a pipe whose write end only taskdaemon holds.
taskdaemon writes ``+PGID`` when a stage's group starts and ``-PGID`` once the group is gone;
when the pipe reaches end-of-file, taskdaemon has ended, however it ended (the kernel closes its
descriptors even after SIGKILL), and the watchdog sends SIGTERM to every group still listed,
waits up to the grace period (``command_loop.KILL_GRACE``) for the groups' processes to end,
SIGKILLs the remainder, and exits. A group it was not told about is never signalled.

Why this design (docs/architecture.md, "Run semantics"):

* ``PR_SET_PDEATHSIG`` on the command (``preexec_fn``, or an exec wrapper) reaches the shell
  only: the pipeline's real work is often a grandchild (``make`` under ``sh``), which it misses.
  ``preexec_fn`` also moves every spawn off ``subprocess``'s ``vfork`` path onto ``fork``
  (copying the page tables of a process with a span store and threads) and runs Python between
  ``fork`` and ``exec`` in a process with threads, which the ``subprocess`` documentation warns
  can deadlock. And the signal fires when the *thread* that forked the child exits (prctl(2)),
  not the process: a command started from a worker thread would be killed when that thread
  retires.
* ``PR_SET_CHILD_SUBREAPER`` changes who reaps orphans, not whether they die: when taskdaemon
  itself is killed, its orphans go to the next subreaper or to init as before. (While
  taskdaemon lives, it is what lets it find a stage's processes that left its group:
  ``adopted_orphans``.)
* A cgroup per stage (``cgroup.kill``) would also reach processes that left the group with
  ``setsid``, but needs a delegated, writable cgroup v2 subtree (systemd's ``Delegate=``, or
  root), which an unprivileged user or an ordinary container does not have.

The watchdog itself (``_watchdog_process``): started lazily, at the first command stage of the
process (a run without command stages never starts it), as ``python -I -S`` of its file (a few
stdlib modules: its start imports neither taskdaemon nor site-packages), in a session of its
own, so that a Ctrl-C on the terminal or a signal to taskdaemon's process group (``kill -9 %1``)
does not reach it. Its stdin is the pipe; stdout and stderr go to ``/dev/null``, so a reader of
taskdaemon's output sees its end when taskdaemon ends. It forks nothing, and dies with its
parent: at end-of-file, and, should a process forked from taskdaemon other than through
Python's ``os.fork`` (whose children close the write end at once) still hold the write end, on
``PR_SET_PDEATHSIG`` (SIGUSR1), which it heeds only when its parent really changed (the signal
also comes when the thread that started it ends). When the interpreter exits normally, the
write end is closed and the watchdog waited for: no watchdog process is left behind.

Process-group ids are reused once a group is empty and its leader reaped, so ``-PGID`` is
written as soon as taskdaemon has reaped the group's leader and its group is gone, and the
watchdog ends its groups at once at end-of-file: a group id it signals is still the stage's.

The instant between the spawn and its ``+PGID`` line (the fork, then a few loop turns until
the spawn's coroutine resumes) is covered by a token: before each spawn, ``spawning`` draws 16
random bytes, writes ``?TOKEN`` (hex), and the command gets ``TASKDAEMON_SPAWN_TOKEN=TOKEN`` in
its environment, which its children inherit; once its group is known, ``started`` writes
``+PGID`` and ``!TOKEN`` in one write (a spawn that failed: ``!TOKEN`` alone). Should
taskdaemon die with a token still listed, the watchdog ends, as it ends a group, every process
of this user whose environment carries that token (``_watchdog_process``: through ``/proc``,
so on Linux only; elsewhere that instant stays uncovered). The token is not a secret, and is
not kept out of the command's output: it means something only to this watchdog, only while its
spawn is unreported, and naming it can only get a process that carries it ended. Why not more:

* A token of the run, searched for whenever taskdaemon dies, would also reach a process that
  left a reported stage's group (``setsid``): a normal stage end leaves such a process alone
  (it ends the group), and the watchdog is no harsher. Only the processes of a spawn whose
  group was never reported are found by their token, wherever they are, since nothing yet
  tells the stage's group from one a process of it made in that instant.
* The search reads the environment of each of the user's processes (its cost:
  ``benchmarks/README.md``), once, then at each look while the grace lasts; taskdaemon dying
  in that instant is rare, and a watchdog without tokens listed never searches.

Out of reach: a process that leaves its stage's group (``setsid``, ``setpgid``, a daemon that
double-forks into a session of its own) after the group was listed is no longer in any group
taskdaemon knows, after ``kill -9`` (a normal stage end kills it on Linux, adopted:
``adopted_orphans``); so is a process of a spawn not yet
reported that drops the token from its environment (``env -i``).

When the watchdog cannot be started (no interpreter to run, no processes left), or has died,
command stages run as before without it: one warning, and nothing else changes. (A write to a
dead watchdog's pipe is an error Python handles because it ignores SIGPIPE; a program that
embeds the engine and restores SIGPIPE's default action would die of that write instead.)
There is no natural counter for it (a new metric would change the exported telemetry, which
this must not), so the warning is the signal.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import subprocess
import sys
import threading

from taskdaemon.pipeline._watchdog_process import TOKEN_VARIABLE

__all__ = ["PROGRAM", "TOKEN_VARIABLE", "GroupWatchdog", "shared_watchdog"]

_log = logging.getLogger(__name__)

#: The watchdog process's program: a file beside this one (its name shows in ``ps``).
PROGRAM = "_watchdog_process.py"


class GroupWatchdog:
    """One taskdaemon process's watchdog: ``started(pgid)`` and ``ended(pgid)`` tell it the
    groups to end should this process die, ``spawning()`` the spawns whose group it is not told
    yet; all are safe from any thread and never raise.

    The watchdog process starts at the first ``spawning`` or ``started`` call. When it cannot
    start or has died, one warning is logged and the calls do nothing from then on (but for
    drawing tokens).
    """

    def __init__(self, grace: float, executable: str = sys.executable) -> None:
        self.grace = grace
        self._executable = executable
        self._lock = threading.Lock()
        self._fd = -1  # the pipe's write end; -1 before the start, and after a failure
        self._process: subprocess.Popen[bytes] | None = None
        self._failed = False

    @property
    def pid(self) -> int | None:
        """The watchdog process's pid, or None when none runs for this object."""
        return None if self._process is None else self._process.pid

    def spawning(self) -> str:
        """A new token for the environment of a spawn about to start, listed (the watchdog
        process started first if needed) until ``started`` or ``spawn_failed`` is told it."""
        token = os.urandom(16).hex()
        if self._fd >= 0 or self._start():
            self._send(b"?%s\n" % token.encode())
        return token

    def started(self, pgid: int, token: str = "") -> None:
        """List ``pgid`` (and unlist the spawn of ``token``, which made it), starting the
        watchdog process first if this is the first call."""
        if self._fd < 0 and not self._start():
            return
        self._send(b"+%d\n!%s\n" % (pgid, token.encode()) if token else b"+%d\n" % pgid)

    def spawn_failed(self, token: str) -> None:
        """Unlist the spawn of ``token``: it started no process."""
        if self._fd >= 0:
            self._send(b"!%s\n" % token.encode())

    def ended(self, pgid: int) -> None:
        """Unlist ``pgid``: its group is gone (its leader reaped, its members ended)."""
        if self._fd >= 0:
            self._send(b"-%d\n" % pgid)

    def close(self) -> None:
        """Close the pipe and wait for the watchdog to exit (it ends the groups still listed
        first, as when this process dies)."""
        with self._lock:
            fd, self._fd = self._fd, -1
            process, self._process = self._process, None
        if fd >= 0:
            with contextlib.suppress(OSError):
                os.close(fd)
        if process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(self.grace + 5.0)

    def _start(self) -> bool:
        with self._lock:
            if self._fd >= 0:
                return True
            if self._failed:
                return False
            read_end, write_end = os.pipe()  # neither is inherited by what spawns later
            try:
                self._process = subprocess.Popen(
                    [
                        self._executable,
                        "-I",
                        "-S",
                        os.path.join(os.path.dirname(os.path.abspath(__file__)), PROGRAM),
                        str(os.getpid()),
                        repr(self.grace),
                    ],
                    stdin=read_end,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    close_fds=True,
                    start_new_session=True,
                )
            except (OSError, subprocess.SubprocessError) as error:
                os.close(write_end)
                self._fail(f"cannot start it: {error}")
                return False
            finally:
                os.close(read_end)
            self._fd = write_end
            return True

    def _send(self, line: bytes) -> None:
        # One write of less than PIPE_BUF bytes is atomic: writers on other threads never
        # interleave, so no lock. The watchdog reads as it comes, so the pipe never fills.
        try:
            os.write(self._fd, line)
        except OSError as error:  # the watchdog died (BrokenPipeError), or the fd was closed
            with self._lock:
                if self._fd < 0:
                    return
                fd, self._fd = self._fd, -1
                with contextlib.suppress(OSError):
                    os.close(fd)
                if self._process is not None:
                    self._process.poll()  # reap it
                self._fail(f"it has ended ({error})")

    def _fail(self, why: str) -> None:
        self._failed = True
        _log.warning(
            "process-group watchdog: %s; command stages still end with their stage, but no "
            "longer when this process is killed (kill -9)",
            why,
        )

    def _forget(self) -> None:
        """In a child made by ``os.fork``: drop the parent's write end (so the parent's
        watchdog sees the parent's end, not the child's) and start afresh if needed."""
        if self._fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self._fd)
        self._fd = -1
        self._process = None
        self._failed = False
        self._lock = threading.Lock()


_shared: GroupWatchdog | None = None
_shared_lock = threading.Lock()


def shared_watchdog(grace: float) -> GroupWatchdog:
    """The process's watchdog (its process is started by the first ``started``), closed when
    the interpreter exits, forgotten in ``os.fork`` children."""
    global _shared  # noqa: PLW0603 - one watchdog per process, made on first use
    watchdog = _shared
    if watchdog is None:
        with _shared_lock:
            watchdog = _shared
            if watchdog is None:
                watchdog = _shared = GroupWatchdog(grace)
                atexit.register(watchdog.close)
                os.register_at_fork(after_in_child=watchdog._forget)
    return watchdog
