"""The condition / filter / mapping language: CEL, through the maintained
``common-expression-language`` package (a Rust CEL implementation). Never ``eval``.

Expressions are compiled once when a pipeline is loaded; evaluating one costs tens of
microseconds. A missing key or an undefined variable is an evaluation error
(``MissingKeyError``, an ``ExpressionError``), which callers turn into "trigger not satisfied"
or "missing input"; any other evaluation error (a type error, say) is a plain ``ExpressionError``.

Bounded (docs/cel-limits.md): before compiling, an expression must pass the static limits of
``cel_limits`` (length, nesting, operators, member chains, estimated cost); over one it is an
``ExpressionLimitError`` naming the limit. The binding's own panics are caught. An expression
that is cheap by its estimate (the common case: comparisons, ``has``, ``size``, string
functions) is evaluated in-process; one with data-bound work (a comprehension over the run's
data, a long ``+`` chain of its values, many reads of it, in a comprehension's body too), or a
high estimate, is evaluated in the CEL worker process under a time limit (``cel_worker``), so
no evaluation blocks the caller for longer than that limit; the engine awaits it
(:meth:`Expression.evaluate_async`, ``engine/_isolated.py``), so its loop does not wait at all.
Either way the expression is given only the parts of its variables it can read
(``cel_paths``: the binding converts whatever it is given, whole, and the worker's pipe
carries it pickled). An expression that went over the time limit once is an error without
being evaluated for the rest of the process: a condition is re-evaluated on every change of its
run, and each attempt would cost the whole limit again.
"""

from __future__ import annotations

from collections.abc import Mapping
from itertools import islice
from typing import Any, Final

from taskdaemon.pipeline.cel_limits import (
    COST_BUDGET,
    IN_PROCESS_COST,
    LimitError,
    check_limits,
    clip,
    estimate_cost,
)
from taskdaemon.pipeline.cel_paths import MACRO_BINDING, Paths, prune, read_paths
from taskdaemon.pipeline.errors import ExpressionError
from taskdaemon.pipeline.frozen import field, frozen
from taskdaemon.pipeline.value_methods import ValueMethods

__all__ = [
    "BREAKPOINT_VARIABLES",
    "CONTEXT_VARIABLES",
    "Expression",
    "ExpressionLimitError",
    "MissingKeyError",
    "compile_expression",
]

#: The variables an expression may read.
CONTEXT_VARIABLES = frozenset({"request", "stages", "event", "result"})
#: The variables a breakpoint's condition may read (the engine's debugger, and the debug
#: operations that check a condition before setting it).
BREAKPOINT_VARIABLES = frozenset({"request", "stages", "event", "inputs", "error"})


class ExpressionLimitError(ExpressionError):
    """An expression over a static limit (size, nesting, estimated cost): never compiled."""


class MissingKeyError(ExpressionError):
    """An evaluation that read a key its data does not have (the value is missing, rather than
    of the wrong type)."""


@frozen
class Expression(ValueMethods):
    """A compiled CEL expression and the top-level variables it reads.

    ``isolated``: evaluated in the CEL worker under its time limit (see the module docstring).
    """

    source: str
    variables: frozenset[str]
    _program: Any
    isolated: bool = False
    cost: int | None = None
    # The parts of its variables the expression reads (``cel_paths``), None: whole.
    paths: Paths | None = field(default=None, compare=False, repr=False)
    # Set once the expression went over the worker's time limit: never evaluated again.
    _over_budget: list[str] = field(default_factory=list, compare=False, repr=False)

    def evaluate(self, context: Mapping[str, Any]) -> Any:
        """Evaluate over ``context``; ExpressionError (with the source) on any failure,
        including going over the time limit.

        An isolated expression makes the caller wait for the worker, up to its time limit: code
        running on an event loop uses :meth:`evaluate_async` instead."""
        if self._over_budget:
            raise self._failure(ExpressionError(self._over_budget[0]))
        try:
            if self.isolated:
                from taskdaemon.pipeline.cel_worker import shared_worker  # noqa: PLC0415

                return shared_worker().evaluate(self.source, self._readable(context))
            return self._program.execute(self._readable(context))
        except BaseException as exc:
            raise self._failure(exc, context) from None

    def _readable(self, context: Mapping[str, Any]) -> dict[str, Any]:
        """``context`` with only the parts of its variables the expression reads
        (``cel_paths``): the binding converts whatever it is given, whole, and the worker's
        pipe carries it pickled whole."""
        paths = self.paths
        if paths is None:
            return dict(context)
        return {
            name: value if (trie := paths.get(name)) is None else prune(value, trie)
            for name, value in context.items()
        }

    async def evaluate_async(self, context: Mapping[str, Any]) -> Any:
        """:meth:`evaluate`, with an isolated expression's wait for the worker in the worker's
        own thread (``taskdaemon-cel``), so the event loop never waits for it. ``context`` is
        copied before the first ``await``: the caller may change its data meanwhile."""
        import asyncio  # noqa: PLC0415 - `validate` and `dag` never evaluate: no asyncio there

        if not self.isolated or self._over_budget:
            return self.evaluate(context)
        from taskdaemon.pipeline.cel_worker import shared_worker  # noqa: PLC0415

        try:
            worker = shared_worker()
            return await worker.evaluate_async(worker.encode(self.source, self._readable(context)))
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            raise self._failure(exc, context) from None

    def _failure(
        self, exc: BaseException, context: Mapping[str, Any] | None = None
    ) -> BaseException:
        """The ExpressionError that stands for ``exc`` (interrupts pass), its text redacted.

        The text quotes the expression (a token compared with its literal) and CEL's error,
        which can quote the value it could not read (a password): a condition's error and a
        breakpoint's ``last_error`` are kept and shown, so it is redacted here, once, where it
        is made. Only a failure pays for it."""
        # The worker (subprocess, pickle, a thread pool) is imported only by isolated
        # expressions: loading and validating a pipeline never starts it.
        from taskdaemon.pipeline.cel_worker import WorkerError  # noqa: PLC0415
        from taskdaemon.pipeline.quoting import quoted  # noqa: PLC0415
        from taskdaemon.pipeline.redaction import redact_text  # noqa: PLC0415

        source = quoted(clip(self.source, 200))
        if isinstance(exc, KeyboardInterrupt | SystemExit):
            return exc
        if isinstance(exc, KeyError):
            key = exc.args[0] if exc.args else "?"
            held = "" if context is None else _keys_beside(self.paths, context, key)
            shown = quoted(key) if isinstance(key, str) else repr(key)
            return MissingKeyError(redact_text(f"{source}: no such key {shown}{held}"))
        if isinstance(exc, WorkerError):
            self._over_budget.append(f"evaluation stopped: {exc} (not evaluated again)")
            return ExpressionError(redact_text(f"{source}: evaluation stopped: {exc}"))
        # ValueError/TypeError…, and the binding's PanicException (a BaseException)
        return ExpressionError(redact_text(f"{source}: {_type_error_words(_first_line(exc))}"))


def compile_expression(
    source: str, allowed: frozenset[str] | set[str] = CONTEXT_VARIABLES
) -> Expression:
    """Compile ``source``; ExpressionLimitError over a static limit, ExpressionError if it does
    not parse or reads a variable outside ``allowed`` (so a typo such as ``stage.x`` for
    ``stages.x`` is caught at load time)."""
    try:
        check_limits(source)
    except LimitError as exc:
        raise ExpressionLimitError(f"expression {exc}") from None
    estimate = estimate_cost(source)
    if estimate is not None and estimate.cost > COST_BUDGET:
        raise ExpressionLimitError(
            f"estimated cost {estimate.cost:,} is over the budget of {COST_BUDGET:,} "
            "(a comprehension over a large list?)"
        )
    try:
        # Imported here, as in ``model.py``: a pipeline without expressions never loads the CEL
        # extension (start-up time of ``run``).
        from taskdaemon.pipeline._cel import cel  # noqa: PLC0415

        program = cel.compile(source)
    except BaseException as exc:  # the binding may panic: a BaseException, not an Exception
        if isinstance(exc, KeyboardInterrupt | SystemExit):
            raise
        from taskdaemon.pipeline.cel_syntax import described  # noqa: PLC0415 - a failure only

        said = described(source, str(exc))
        error = ExpressionError(f"does not compile: {said or _first_line(exc)}")
        error.said = said
        raise error from None
    # Comprehension macros (``list.map(x, ...)``) bind their own names; those are not context.
    bound = set(MACRO_BINDING.findall(source))
    variables = frozenset(program.variables()) - bound
    unknown = sorted(variables - set(allowed))
    if unknown:
        names = ", ".join(sorted(allowed))
        # ``who: world``: a word meant as text, which CEL reads as a variable
        text = (
            f"; a text is quoted in CEL: write \"'{source.strip()}'\""
            if source.strip() == unknown[0]
            else ""
        )
        raise ExpressionError(f"unknown variable {unknown[0]!r} (available: {names}{text})")
    from taskdaemon.pipeline.cel_functions import unknown_function  # noqa: PLC0415

    problem = unknown_function(source, program.functions())
    if problem is not None:
        raise ExpressionError(problem)
    isolated = estimate is None or estimate.iterates_data or estimate.cost > IN_PROCESS_COST
    cost = None if estimate is None else estimate.cost
    paths = read_paths(source, variables)
    return Expression(source, variables, program, isolated, cost, paths)


#: The most keys :func:`_keys_beside` names.
_KEYS_SHOWN = 10
#: The result of a command that printed no JSON object (``command_loop``).
_COMMAND_RESULT: Final = {"stdout", "exit_code"}


def _keys_beside(paths: Paths | None, context: Mapping[str, Any], key: object) -> str:
    """`` (stages.fetch.outputs has: 'stdout', 'exit_code')``: the keys of the mapping an expression
    read ``key`` from and did not find it in, found along the paths it reads (``cel_paths``),
    else ``""``. A misspelt key shows beside the right one, and a command that printed no JSON
    object shows its ``stdout`` and the JSON object to print: "no such key 'count'" alone sent
    its author to the command.
    Not for a stage missing from ``stages`` (a condition waiting for it reads it so until it
    ends), nor for an empty mapping."""
    import json  # noqa: PLC0415 - a failure only

    from taskdaemon.pipeline.quoting import quote  # noqa: PLC0415 - a failure only

    found = _holder(paths or {}, context, key, ())
    if found is None or found[0] == ("stages",) or not found[1]:
        return ""
    where, mapping = found
    names = [quote(str(name)) for name in islice(mapping, _KEYS_SHOWN)]
    more = len(mapping) - len(names)
    tail = f" and {more} more" if more > 0 else ""
    if mapping.keys() == _COMMAND_RESULT and isinstance(key, str):  # what to print instead
        tail += (
            f"; a command's result is the JSON object it prints, such as {{{json.dumps(key)}: ...}}"
        )
    return f" ({'.'.join(where)} has: {', '.join(names)}{tail})"


def _holder(
    trie: Mapping[str, Any], value: Any, key: object, where: tuple[str, ...]
) -> tuple[tuple[str, ...], Mapping[Any, Any]] | None:
    """The path to, and the mapping of, the first place along ``trie`` where ``value`` lacks
    ``key`` (depth first, as the paths were read)."""
    if not isinstance(value, Mapping):
        return None
    for name, below in trie.items():
        if name not in value:
            if name == key and where:
                return where, value
            continue
        if below is not None:
            found = _holder(below, value[name], key, (*where, name))
            if found is not None:
                return found
    return None


#: Where the binding's advice on a type mismatch starts, after its first sentence.
_NO_COERCION = " CEL does not coerce between types"


def _type_error_words(text: str) -> str:
    """The binding's type mismatch (``No such overload: ...``, ``Unsupported operation: string
    + int. ...``) as its first sentence and a short hint: its advice ran to 400 characters, so
    that a skip reason, cut to 200, ended in the middle of a list of "common causes" and the
    hint that says what to write was never shown."""
    at = text.find(_NO_COERCION)
    if at <= 0:
        return text
    return (
        f"{text[:at].rstrip().rstrip('.')} (CEL converts no type: compare like with like, "
        "or convert with int(x), double(x) or string(x))"
    )


def _first_line(exc: BaseException) -> str:
    text = str(exc)
    return text.splitlines()[0] if text.strip() else type(exc).__name__
