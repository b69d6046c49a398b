"""``python -m taskdaemon``: the ``taskdaemon`` command, for a venv whose ``bin`` is not on the
``PATH`` (or a Python chosen by hand); the same as ``python -m taskdaemon.pipeline.cli``.

:func:`main` is also the console script's entry point (``pyproject.toml``), so that Ctrl-C
while the command loads ends it with exit 130 and no traceback, as ``cli.main`` ends a command
it interrupts (``tests/pipeline_cli_module_test.py``).

Decisions:

* Importing ``taskdaemon.pipeline.cli`` (argparse, typing and the command's own modules)
  is most of what happens before a command runs. It used to sit outside any guard: Ctrl-C there
  was a ``KeyboardInterrupt`` traceback and a death by signal. It is now the guarded part.
* While the command loads, Ctrl-C is noted by a handler rather than raised: raised, it can land
  in one of importlib's weakref callbacks, where Python prints it as "Exception ignored" and
  drops it, and the run went on as if Ctrl-C had not been pressed. Once loaded, the command
  is not started and the exit is 130. A second Ctrl-C raises at once: an import that hangs (a
  dead network file system) can still be interrupted.
* The handler comes from ``_signal``, built into Python and loaded at its start; ``signal``
  would import ``enum`` and more inside the window it is there to close. A SIGINT that the
  parent set to be ignored (``nohup``, a background job) stays ignored.
* The process may adopt what its command stages leave outside their process groups
  (``pipeline/adopted_orphans.py``): only an entry point allows it, never ``cli.main`` alone.
* Once the command has returned, the process's end is bounded: what stage code left running
  (a thread, an ``atexit`` hook) is named and not waited for past a grace
  (``cli/process_end.py``).
* What is left unguarded is Python's own start-up (``site`` and the ``.pth`` files of the
  environment) and the console script's first lines: nothing of taskdaemon's runs there.
"""

import sys

TYPE_CHECKING = False  # typing's, without importing typing
if TYPE_CHECKING:
    from collections.abc import Callable

#: ``cli.EXIT_INTERRUPTED`` (128 + SIGINT), which this module cannot import before its guard.
EXIT_INTERRUPTED = 130


def main() -> int:
    """The ``taskdaemon`` command: ``cli.main``, exit 130 when Ctrl-C comes while it loads."""
    try:
        command = _load()
        if command is None:
            return EXIT_INTERRUPTED
        from taskdaemon.pipeline.adopted_orphans import allow  # noqa: PLC0415 - loaded by now

        allow()  # taskdaemon's own process adopts its stages' orphans
        code = command()
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    from taskdaemon.pipeline.cli.process_end import watch_end  # noqa: PLC0415 - loaded by now

    return watch_end(code)


def _load() -> "Callable[[], int] | None":
    """``cli.main``, or None when Ctrl-C came while it was imported (see the docstring)."""
    import _signal  # type: ignore[import-not-found]  # noqa: PLC0415 - built in, no stubs

    pressed: list[int] = []

    def note(signum: int, frame: object) -> None:
        if pressed:
            raise KeyboardInterrupt
        pressed.append(signum)

    previous = _signal.getsignal(_signal.SIGINT)
    guarded = previous is _signal.default_int_handler
    if guarded:
        _signal.signal(_signal.SIGINT, note)
    try:
        from taskdaemon.pipeline.cli import main as command  # noqa: PLC0415 - the guard's point
    finally:
        if guarded:
            _signal.signal(_signal.SIGINT, previous)
    return None if pressed else command


if __name__ == "__main__":
    sys.exit(main())
