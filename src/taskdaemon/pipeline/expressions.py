"""The condition / filter / mapping language: CEL, through the maintained
``common-expression-language`` package (a Rust CEL implementation). Never ``eval``.

Expressions are compiled once when a pipeline is loaded; evaluating one costs tens of
microseconds. A missing key or an undefined variable is an evaluation error
(``ExpressionError``), which callers turn into "trigger not satisfied" or "missing input".
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from taskdaemon.pipeline._cel import cel
from taskdaemon.pipeline.errors import ExpressionError

__all__ = ["CONTEXT_VARIABLES", "Expression", "compile_expression"]

_MACRO_BINDING = re.compile(r"\b(?:map|filter|all|exists|exists_one)\(\s*([A-Za-z_]\w*)\s*,")

#: The variables an expression may read.
CONTEXT_VARIABLES = frozenset({"request", "stages", "event", "result"})


@dataclass(frozen=True, slots=True)
class Expression:
    """A compiled CEL expression and the top-level variables it reads."""

    source: str
    variables: frozenset[str]
    _program: Any

    def evaluate(self, context: Mapping[str, Any]) -> Any:
        """Evaluate over ``context``; ExpressionError (with the source) on any failure."""
        try:
            return self._program.execute(dict(context))
        except KeyError as exc:
            raise ExpressionError(f"{self.source!r}: no such key {exc.args[0]!r}") from None
        except Exception as exc:  # the binding raises RuntimeError/ValueError/TypeError
            raise ExpressionError(f"{self.source!r}: {exc}") from None


def compile_expression(
    source: str, allowed: frozenset[str] | set[str] = CONTEXT_VARIABLES
) -> Expression:
    """Compile ``source``; ExpressionError if it does not parse or reads a variable outside
    ``allowed`` (so a typo such as ``stage.x`` for ``stages.x`` is caught at load time)."""
    try:
        program = cel.compile(source)
    except Exception as exc:
        first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ExpressionError(f"does not compile: {first_line}") from None
    # Comprehension macros (``list.map(x, ...)``) bind their own names; those are not context.
    bound = set(_MACRO_BINDING.findall(source))
    variables = frozenset(program.variables()) - bound
    unknown = sorted(variables - set(allowed))
    if unknown:
        names = ", ".join(sorted(allowed))
        raise ExpressionError(f"unknown variable {unknown[0]!r} (available: {names})")
    return Expression(source, variables, program)
