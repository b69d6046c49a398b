"""The machinery shared by the CLI's interactive prompts (``debug`` and ``replay --step``).

:class:`CommandPrompt` reads command lines and dispatches each to a ``_do_<command>`` method:

* on a terminal it uses ``readline`` (stdlib, imported only then): line editing, a history
  file (its lines redacted as they are saved: a secret typed into a command, as a value to
  ``set`` or a literal in a breakpoint's condition, is not kept on disk), and Tab completion
  of the commands and of the words ``completion_words`` adds (stage names). Decided over
  ``prompt_toolkit``: readline needs no terminal queries, so it behaves the same under tmux,
  a pty or a dumb terminal, and it costs nothing at start-up;
* on a pipe it reads one command a line, echoes each after the prompt (so a transcript reads
  like a session; redacted as the history is) and runs them in order;
* ``help`` lists the commands with their one-line help, and their short forms; an unknown
  command, bad arguments or a refusal (``PipelineError`` or ``ValueError`` from a command) is
  one ``error: ...`` line, never a traceback, and the prompt goes on;
* on a terminal, Ctrl-C while a line is being typed drops that line and prompts again, saying
  how to leave (``INTERRUPTED``), as pdb and gdb do: a Ctrl-C meant to clear a half-typed
  command must not cancel a run that waited hours at a breakpoint. Ctrl-C at any other time
  (the prompt waiting for the run) and SIGTERM or SIGHUP still reach the command, which stops;
  a terminal found hung up at the prompt (its read or the line after it fails, EIO: the
  SIGHUP has not raised yet) stops it as that SIGHUP does (``sigterm.terminal_hung_up``), or,
  under ``nohup``, ends the input (``cli/hangup.py``);
* on a terminal, a line another thread writes while the prompt waits for a line (``debug
  FILE``'s progress, on stderr through :class:`LinesAbove`) shows above the prompt, which is
  drawn again below it with what was typed so far, as a shell shows a job's notice: it used
  to land in the middle of the typed text, prompt and text lost from view. A pipe or a file
  gets the lines unchanged;
* on a terminal, keys typed ahead while no line is read (the debugger waiting for its run)
  are read at the next prompt as typed: a Ctrl-D typed as the run ended, before the next
  prompt showed, ends the input (:meth:`CommandPrompt.keys_kept`). It used to reach readline
  as a NUL byte, and the command waited for ever. Lines and Ctrl-D typed before the prompt
  first took its terminal (the command still starting) are read first, each shown after the
  prompt as a pipe's lines are, a Ctrl-D as the end of input;

A Ctrl-C typed just as the prompt shows reaches it too (``_prompt_signals.py``). No Python
code runs inside ``input()`` (no ``set_pre_input_hook``): CPython's readline swallows what a
hook raises, the ``KeyboardInterrupt`` of a Ctrl-C among it. :class:`LinesAbove` tells from
the terminal whether readline drew its prompt: readline turns echo off to draw it.
"""

from __future__ import annotations

import collections
import contextlib
import errno
import io
import os
import shlex
import sys
import termios
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any, ClassVar

from taskdaemon.pipeline.cli._prompt_signals import PromptSignals
from taskdaemon.pipeline.cli.hangup import detach_terminal, hangup_handled
from taskdaemon.pipeline.cli.sigterm import terminal_hung_up
from taskdaemon.pipeline.cli.terminal_state import keys_as_typed
from taskdaemon.pipeline.cli.terminal_width import summary_width
from taskdaemon.pipeline.errors import PipelineError
from taskdaemon.pipeline.private_file import make_private_dirs
from taskdaemon.pipeline.quoting import quote
from taskdaemon.pipeline.table_fit import wrapped
from taskdaemon.pipeline.terminal_text import shown
from taskdaemon.pipeline.wording import close_match, counted, quote_meant

__all__ = ["CommandPrompt", "LinesAbove"]

#: The longest command line split like a shell's (quotes, escapes); a longer one is split at
#: white space. Commands are short: only a ``set`` value or a ``break`` condition is long.
#: Why: benchmarks/README.md, "Debug prompt lines split at white space past 64 KiB (qa24)".
_SHELL_SPLIT_MAX = 64 << 10


class LinesAbove(io.TextIOBase):
    """``stream`` (stderr) for what other threads write while a prompt reads a line.

    When ``stream`` is a terminal and a prompt reads (``reading``), a write first clears the
    prompt's line (``\\r`` and erase to its end; on a ``dumb`` terminal, which has no erase,
    a new line instead), then writes its text, and once that text ends its line, draws the
    prompt again with ``readline``'s buffer, what the user typed so far. Otherwise a write
    goes through unchanged, as it does while readline has not drawn its prompt yet (the
    ``keys`` terminal still echoes: readline turns echo off as it draws), or the prompt
    would show twice. The prompt is drawn with the cursor after the typed text: Python's
    ``readline`` tells the text, not where the cursor stood in it.
    """

    def __init__(self, stream: IO[str]) -> None:
        super().__init__()
        self._stream = stream
        self._lock = threading.Lock()
        self._prompt: str | None = None  # the prompt a line is being read at, else None
        self._keys: int | None = None  # the terminal it reads keys from, when known
        self._unseen = False  # the line read is a secret's: none of it is drawn
        self._open = False  # a write left the line above the prompt unfinished
        try:
            self._tty = stream.isatty()
        except (AttributeError, ValueError, OSError):
            self._tty = False
        dumb = os.environ.get("TERM", "dumb") in {"", "dumb"}
        self._clear = "\n" if dumb else "\r\x1b[K"

    def reading(self, prompt: str | None, keys: int | None = None, *, unseen: bool = False) -> None:
        """Say that a line is read at ``prompt`` from the terminal ``keys`` (a descriptor;
        None: the prompt is already drawn), or that none is (``prompt`` None); ``unseen``: a
        secret's, not by readline (``cli/hidden_value.py``): what is typed is not drawn."""
        with self._lock:
            self._prompt, self._keys = prompt, keys
            self._unseen = unseen
            self._open = False

    def _drawn(self) -> bool:
        """Whether readline has drawn the prompt: its terminal no longer echoes."""
        if self._keys is None:
            return True
        try:
            return not termios.tcgetattr(self._keys)[3] & termios.ECHO
        except termios.error:  # not a terminal after all: nothing to draw over
            return False

    def write(self, text: str) -> int:
        with self._lock:
            if self._prompt is None or not self._tty or not text or not self._drawn():
                self._stream.write(text)
                return len(text)
            import readline  # noqa: PLC0415 - a prompt reads: it imported readline

            head = "" if self._open else self._clear
            self._open = not text.endswith("\n")
            typed = "" if self._unseen else readline.get_line_buffer()
            tail = "" if self._open else self._prompt + typed
            self._stream.write(head + text + tail)
            self._stream.flush()
        return len(text)

    def flush(self) -> None:
        self._stream.flush()

    def isatty(self) -> bool:
        return self._tty

    def fileno(self) -> int:
        return self._stream.fileno()


def _terminal_gone(error: OSError) -> None:
    """A read or write of the terminal failed (``error``): if as a hung-up terminal's do
    (EIO), the SIGHUP that hang-up sends has not raised yet. Stop as it would, or, under
    ``nohup``, return: the input ends there. Any other error is raised."""
    if error.errno != errno.EIO:
        raise error
    if hangup_handled():
        raise terminal_hung_up() from None
    detach_terminal()  # nothing reads or shows the terminal any more


class CommandPrompt:
    """A read-dispatch loop over ``COMMANDS`` (subclasses fill the tables and the commands)."""

    #: Each command with its one-line help, in the order ``help`` lists them.
    COMMANDS: ClassVar[dict[str, str]] = {}
    #: Short spellings of commands.
    ALIASES: ClassVar[dict[str, str]] = {}
    #: Words of another prompt's commands that this one does not offer, with what to type
    #: instead: "unknown command" would read as a typo of a word the user knows.
    NOT_HERE: ClassVar[dict[str, str]] = {}
    PROMPT: ClassVar[str] = "(taskdaemon) "
    #: What a Ctrl-C at the prompt says (how to leave, and what leaving does).
    INTERRUPTED: ClassVar[str] = "interrupted ('quit' or Ctrl-D leaves)"

    def __init__(
        self,
        *,
        stdin: IO[str] | None = None,
        stdout: IO[str] | None = None,
        history: Path | None = None,
        above: LinesAbove | None = None,
    ) -> None:
        self._in = stdin if stdin is not None else sys.stdin
        self._out = stdout if stdout is not None else sys.stdout
        self._history = history
        self._above = above  # where other threads' lines go while a line is read
        self._interactive = self._in.isatty()
        self._signals = PromptSignals()
        self._line = ""
        #: Lines (None: a Ctrl-D) typed before the prompt read its terminal (``keys_kept``).
        self._typed_ahead: collections.deque[str | None] = collections.deque()
        self.quit = False

    # ------------------------------------------------------------------ loop

    def loop(self) -> None:
        """Read and run commands until the input ends or a command sets ``quit``."""
        if self._interactive:
            self._setup_readline()
        with self.keys_kept(), self._signals if self._interactive else contextlib.nullcontext():
            try:
                while not self.quit:
                    line = self._read()
                    if line is None:
                        break
                    self.execute(line)
            finally:
                if self._interactive:
                    self._save_history()

    @contextlib.contextmanager
    def keys_kept(self) -> Iterator[None]:
        """Around all the time the prompt reads (a subclass's waits between its lines too):
        on a terminal, each key typed while no line is read is kept as typed for the next
        one, a Ctrl-D among them (``terminal_state.keys_as_typed``). The lines and Ctrl-D
        typed before (while the command started) are read first, each as at the prompt."""
        if not self._interactive:
            yield
            return
        with keys_as_typed() as typed:
            self._typed_ahead.extend(typed)
            yield

    def _read(self) -> str | None:
        if self._typed_ahead:  # typed before the prompt was there: shown after it now
            line = self._typed_ahead.popleft()
            if line is None:  # Ctrl-D: the end of input, as at the prompt
                self._print("")
                return None
            import readline  # noqa: PLC0415 - a terminal: loaded by _setup_readline

            readline.add_history(self.masked(line.rstrip("\n")))
            self._echo(line)
            return line
        while self._interactive:
            if self._above is not None:
                self._above.reading(self.PROMPT, self._in.fileno())
            try:
                with self._signals.waiting():
                    line = input(self.PROMPT)
                self._history_masked(line)
                return line
            except EOFError:
                try:
                    self._print("")
                except OSError as error:  # readline reads a hung-up terminal as its end
                    _terminal_gone(error)
                return None
            except OSError as error:
                _terminal_gone(error)
                return None
            except KeyboardInterrupt as stop:
                if type(stop) is not KeyboardInterrupt:  # SIGTERM or SIGHUP (cli/sigterm.py)
                    raise
                self._print(f"\n{self.INTERRUPTED}")
            finally:
                if self._above is not None:  # the line is read: the prompt is history
                    self._above.reading(None)
        line = self._in.readline()
        if not line:
            return None
        self._echo(line)
        return line

    def _history_masked(self, line: str) -> None:
        """readline's history (which Up and Ctrl-R recall, and the history file saves) holds
        ``line``, just read, as :meth:`masked` shows it: a secret typed in it (``set
        --secret x VALUE``) was shown back on the terminal by Up, Ctrl-R, or a line recalled
        to be edited, until the prompt ended and saved its history masked."""
        import readline  # noqa: PLC0415 - a terminal: loaded by _setup_readline

        last = readline.get_current_history_length()
        masked = self.masked(line)
        if masked != line and last and readline.get_history_item(last) == line:
            readline.replace_history_item(last - 1, masked)

    def _echo(self, line: str) -> None:
        """Show ``line`` after the prompt, as readline did not (read from a pipe, or typed
        ahead). Redacted as the history is: the transcript is output (a CI job's log, say),
        and a secret typed as a value to ``set`` or in a condition is not to be shown back."""
        self._print(self.PROMPT + self.masked(line.rstrip("\n")))

    def masked(self, line: str) -> str:
        """``line`` as the echo and the history show it: redacted by shape and by the values
        known as secrets (a subclass masks what its commands say is secret, too)."""
        from taskdaemon.pipeline.redaction import redact_text  # noqa: PLC0415 - not at once

        return redact_text(line)

    def meant(self, word: str) -> str:
        """What an unknown command's error adds: the command ``word`` is closest to, as a
        definition's misspelt name gets it (``did you mean 'inputs'?``), else where the
        commands are listed."""
        close = close_match(word, self.COMMANDS)
        return f"did you mean {quote_meant(close[0])}?" if close else "'help' lists them"

    def _print(self, text: str) -> None:
        # What the commands print comes from the run (errors, log records, reasons): each
        # line's control characters are escaped (``terminal_text``).
        self._out.write("\n".join(map(shown, text.split("\n"))) + "\n")
        self._out.flush()

    def _print_records(self, rows: Sequence[Any], last: int) -> None:
        """``logs``' tail: the last ``last`` of a stage's stored log records, each ``[LEVEL]``
        and, for a command's output, its stream (``[stderr]``, as ``taskdaemon logs`` says it:
        else a line the command printed read as one of taskdaemon's), a record of several
        lines (a failure's stderr tail) indented under its first, not at the prompt's margin."""
        if len(rows) > last:
            self._print(
                f"  ... {counted(len(rows) - last, 'earlier record')}; taskdaemon logs shows all"
            )
        # Of several executions (a fan-out's instances, a retry's attempts), a command's output
        # says whose it is, as ``taskdaemon logs`` does: ``[stdout] {"done": 1}`` did not.
        several = len({(row.instance, row.attempt) for row in rows}) > 1
        for row in rows[-last:]:
            stream = row.attributes.get("log.iostream")
            whose = f"{row.stage}.{row.instance}.{row.attempt} " if several and stream else ""
            head = f"  [{row.level}] {whose}" + (f"[{stream}] " if stream else "")
            self._print(head + row.body.replace("\n", "\n" + " " * len(head)))

    def execute(self, line: str) -> None:
        """Run one command line, printing its answer or its one-line error."""
        self._line = line.strip()
        try:
            # shlex builds each word a character at a time, in time quadratic in its length:
            # a long line (a large ``set`` value) is split at white space instead (the commands
            # that take a long argument read it from the line as typed: ``rest_of_line``).
            words = shlex.split(line) if len(line) <= _SHELL_SPLIT_MAX else line.split()
        except ValueError as exc:  # shlex's, capitalized ("No closing quotation") unlike ours
            self._print(f"error: {str(exc)[:1].lower()}{str(exc)[1:]}")
            return
        if not words:
            self.empty_line()
            return
        command = self.ALIASES.get(words[0], words[0])
        if command not in self.COMMANDS:
            instead = self.NOT_HERE.get(words[0])
            if instead is not None:
                self._print(f"error: {quote(words[0])} {instead} ('help' lists the commands)")
            else:
                self._print(f"error: unknown command {quote(words[0])} ({self.meant(words[0])})")
            return
        try:
            getattr(self, "_do_" + command)(words[1:])
        except (PipelineError, ValueError) as exc:
            self._print(f"error: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}")
            return
        self.after(command)

    def rest_of_line(self, words: int) -> str:
        """The command line being run as typed, after its first ``words`` words (split at
        white space): a CEL condition or a JSON value keeps its quotes, which the shell-like
        split of the arguments removes."""
        parts = self._line.split(None, words)
        return parts[words] if len(parts) > words else ""

    def empty_line(self) -> None:
        """What an empty line does: nothing (a subclass may repeat a command)."""

    def after(self, command: str) -> None:
        """Called after ``command`` succeeded (a subclass may wait for the run)."""

    def completion_words(self) -> Sequence[str]:
        """Words Tab completes besides the commands (stage names, keywords)."""
        return ()

    def _do_help(self, args: Sequence[str]) -> None:
        for text in self.COMMANDS.values():
            self._print_prose("  " + text)
        if self.ALIASES:  # pdb's and gdb's users type them: say they work
            short = " ".join(f"{alias}={command}" for alias, command in self.ALIASES.items())
            self._print_prose(f"short forms: {short}")

    def _print_prose(self, text: str) -> None:
        """Each line of ``text`` (words of ours, not the run's) wrapped between words to the
        terminal's width, as the prompt's opening is: a terminal of 60 columns broke
        ``help``'s lines mid-word (``a`` / ``nd leave step mode``). Whole on a pipe."""
        width = summary_width(self._out)
        self._print("\n".join(part for line in text.split("\n") for part in wrapped(line, width)))

    # ------------------------------------------------------------------ readline

    def _setup_readline(self) -> None:
        import readline  # noqa: PLC0415 - a terminal only

        if self._history is not None:
            with contextlib.suppress(OSError):  # no history yet
                readline.read_history_file(self._history)
        words = sorted(set(self.COMMANDS) | set(self.completion_words()))

        def complete(text: str, state: int) -> str | None:
            matches = [w for w in words if w.startswith(text)]
            return matches[state] + " " if state < len(matches) else None

        readline.set_completer(complete)
        readline.set_completer_delims(" \t")
        readline.parse_and_bind("tab: complete")

    def _save_history(self) -> None:
        if self._history is None:
            return
        import readline  # noqa: PLC0415

        for index in range(readline.get_current_history_length()):
            line = readline.get_history_item(index + 1)  # 1-based, unlike the replacement
            if line and (masked := self.masked(line)) != line:
                readline.replace_history_item(index, masked)
        try:
            make_private_dirs(self._history.parent)
            readline.set_history_length(1000)
            readline.write_history_file(self._history)
        except OSError:
            pass  # history is a convenience
