"""Validating a pipeline definition: ``validate_pipeline``, every problem its types cannot express.

Split from ``model`` (which had grown to the 700-line limit) because it is a responsibility of
its own: ``model`` says what a pipeline *is* (frozen records, the DAG's edges and order, the
canonical JSON), this module says what a *valid* one is (names, references, numeric ranges, CEL,
cycles, an entry stage). The dependency is one-way, this module on ``model`` and never the
reverse: a ``Pipeline`` does not validate itself when built (the loader ``config.load_pipeline``
and ``definition.pipeline_from_canonical`` call ``validate_pipeline`` after building one, and a
program that builds ``Pipeline(...)`` calls it itself), so ``model`` needs nothing from here, and
``model`` re-exports nothing from here either (that would be an import cycle): import
``validate_pipeline`` from this module.

The naming rules (``NAME_PATTERN``, ``MAX_NAME_LENGTH``) live here too: only validation reads
them. ``BUILTIN_LOOPS`` stays in ``model``: the loader reads it as well, and it describes the
model (the loop types it knows), not a check. An issue that says what to write writes it in the
``syntax`` of the file (``hint_syntax``): the loader passes its format.
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Mapping
from itertools import islice

from taskdaemon.pipeline.cel_syntax import message_position
from taskdaemon.pipeline.config_hints import entry_stage_hint
from taskdaemon.pipeline.errors import MAX_ISSUES, ExpressionError, ValidationIssue
from taskdaemon.pipeline.expressions import Expression, ExpressionLimitError, compile_expression
from taskdaemon.pipeline.graph import shortest_cycle, strongly_connected
from taskdaemon.pipeline.hint_syntax import Syntax, Word, setting, written
from taskdaemon.pipeline.model import (
    BUILTIN_LOOPS,
    InputMapping,
    LoopDef,
    Manual,
    OnCompletion,
    OnCondition,
    OnEvent,
    OutputMapping,
    Pipeline,
    RetryPolicy,
    Stage,
    Trigger,
)
from taskdaemon.pipeline.quoting import quote
from taskdaemon.pipeline.wording import close_match

__all__ = ["MAX_NAME_LENGTH", "NAME_PATTERN", "validate_pipeline"]

#: What pipeline and stage names look like (a full match is required).
NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9_.-]*")
#: The longest pipeline, stage, loop type or event type name, in characters: names end up in
#: span attributes, metric labels and graph labels (Graphviz refuses strings over 16,384).
MAX_NAME_LENGTH = 128
# "Did you mean" suggestions per validation (each one compares with every candidate).
_MAX_SUGGESTIONS = 20
#: Stages an unknown stage's issue lists when no name is close to it.
_LISTED_STAGES = 8

#: A command's environment variable of an input (``command_loop``: the name upper-cased, any
#: character but a letter, digit or ``_`` made ``_``), as a shell reads a name.
_INPUT_PREFIX = "TASKDAEMON_INPUT_"
_INPUT_VARIABLE = re.compile(_INPUT_PREFIX + r"[A-Za-z0-9_]+")
_ENV_NAME = re.compile(r"[^A-Za-z0-9_]")
_SHOWN_VARIABLE = 80  # characters of a variable's name an issue quotes

#: Stages visited in all by the searches for an input's upstream stage (``upstream_reads``).
_REACH_BUDGET = 1_000_000

_HANDLER_PATTERN = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*")

# ``stages.NAME`` or ``stages["NAME"]`` where ``stages`` is the context variable (not ``x.stages``).
_STAGE_REFERENCE = re.compile(
    r"""(?<![\w.])stages\s*(?:\.\s*([A-Za-z_]\w*)|\[\s*(?:"([^"]*)"|'([^']*)')\s*\])"""
)
# ``stages.NAME.outputs``: what a stage that has not ended yet does not have.
_OUTPUTS_REFERENCE = re.compile(_STAGE_REFERENCE.pattern + r"\s*\.\s*outputs\b")
# ``stages.release-gate``: CEL reads it as ``stages.release - gate``; worth a precise hint.
_DASHED_REFERENCE = re.compile(r"(?<![\w.])stages\.(\w+(?:-\w+)+)")

_BASE_VARIABLES = frozenset({"request", "stages"})
_EVENT_VARIABLES = _BASE_VARIABLES | {"event"}
_OUTPUT_VARIABLES = _BASE_VARIABLES | {"result"}


def validate_pipeline(
    pipeline: Pipeline,
    *,
    registered_loops: Collection[str] = (),
    ran: bool = False,
    compiled: dict[str, Expression] | None = None,
    syntax: Syntax = "yaml",
) -> list[ValidationIssue]:
    """Every problem of ``pipeline`` that its types cannot express, in a stable order.

    Pure: ``registered_loops`` are the loop types known besides the built-in ones and the
    pipeline's ``loops:`` (the loader passes the names of the ``taskdaemon.loops`` entry points).
    Paths are those of the canonical file form (``stages[2].triggers[0].on_event.type``); issues
    carry ``pipeline.source`` as their file and no line (the loader adds lines). Runs in time
    linear in the size of the definition (plus the number of edges); the "did you mean" look-ups
    only run for names that are wrong.

    Checked: names, duplicate stages, empty stages/triggers, numeric ranges (concurrency,
    parallel instances, attempts, backoff, timeouts > 0), loop types and their handler/command,
    trigger references (stages, event types), CEL expressions and the variables and stages they
    read, cycles over ``edges`` (reported with their path), and that some stage can start when
    the run starts.

    ``ran``: ``pipeline`` is the definition a run span recorded, which ran, and which a drawing
    is to read back from a span store that anyone may have written. Only what every pipeline
    the engine runs obeys, loaded from a file or built in code, is checked: names' lengths and
    uniqueness, numeric ranges, the stages triggers name, cycles. Not the rules of a file that
    code need not follow: a pipeline built in code runs ``python`` stages whose handlers are
    callables (no ``handler`` recorded), any names, events it publishes itself, and had its
    loop types and CEL resolved and compiled by the engine.

    ``compiled``, when given, receives every expression compiled, by its path: what the
    warnings read (``validation_warnings``), so that they tokenize nothing again.
    """
    return _Validator(pipeline, frozenset(registered_loops), ran, compiled, syntax).run()


class _Validator:
    def __init__(
        self,
        pipeline: Pipeline,
        registered_loops: frozenset[str],
        ran: bool,
        compiled: dict[str, Expression] | None,
        syntax: Syntax,
    ) -> None:
        self.pipeline = pipeline
        self.syntax = syntax  # the file's, in which a hint writes what to write
        self.ran = ran  # ``validate_pipeline``'s: a file's own rules are not checked
        self.compiled = compiled  # ``validate_pipeline``'s: the expressions, by path
        self.issues: list[ValidationIssue] = []
        self.loop_names = BUILTIN_LOOPS | set(pipeline.loops) | registered_loops
        self.stage_names = {stage.name for stage in pipeline.stages}
        self.listed: str | None = None  # ``stages_listed``, made at its first need
        self.emitted = {event_type for stage in pipeline.stages for event_type in stage.emits}
        self.external = set(pipeline.external_events)
        self.suggestions = 0
        self.handlers: set[str] = set()  # the handlers found valid
        # Stages the upstream searches of ``upstream_reads`` may visit in all: each search is
        # linear, and a hostile chain of 100,000 stages each reading the first would make
        # them quadratic; past the budget an input is not judged (no issue).
        self.reach_budget = _REACH_BUDGET
        # The triggers a cycle's issue says to remove, by stage: ``entry`` judges the graph
        # as it will be once they are gone.
        self.removed: set[tuple[str, OnCompletion | OnEvent]] = set()

    def issue(self, path: str, message: str, value_at: tuple[int, int] | None = None) -> None:
        if len(self.issues) <= MAX_ISSUES:  # past it, ``ConfigError`` says more were found
            source = self.pipeline.source
            self.issues.append(ValidationIssue(path, message, source, value_at=value_at))

    def suggest(self, name: str, candidates: Collection[str]) -> str:
        # difflib compares with every candidate: quadratic over a hostile file's wrong names. A
        # definition that ran is checked for a drawing, which tells nobody what was wrong.
        if self.ran or self.suggestions >= _MAX_SUGGESTIONS:
            return ""
        self.suggestions += 1
        close = close_match(name, candidates)
        return f" (did you mean {close[0]!r}?)" if close else ""

    def stages_listed(self) -> str:
        """`` (the stages: 'a', 'b')``, what to write for an unknown stage no name is close to
        (a name from another file, a stage not written yet): the first
        :data:`_LISTED_STAGES` in the file's order, then how many more. Made once: a hostile
        file of many unknown stages pays for it once."""
        if self.ran:
            return ""
        if self.listed is None:
            unique = dict.fromkeys(stage.name for stage in self.pipeline.stages)
            names = list(islice(unique, _LISTED_STAGES))
            more = len(self.stage_names) - len(names)
            shown = ", ".join(map(quote, names))
            shown += f" and {more} more" if more > 0 else ""
            self.listed = f" (the stages: {shown})" if names else ""
        return self.listed

    def run(self) -> list[ValidationIssue]:
        pipeline = self.pipeline
        self.name("name", pipeline.name)
        for index, event_type in enumerate(pipeline.external_events):
            self.name_length(f"external_events[{index}]", event_type, "event type")
        self.at_least("", "concurrency", pipeline.concurrency, 1)
        self.positive("", "timeout", pipeline.timeout)
        self.retry("", "retry", pipeline.retry)
        for name, loop in pipeline.loops.items() if not self.ran else ():
            self.loop_def(f"loops.{name}", name, loop)
        if not pipeline.stages:
            self.issue("stages", "must not be empty")
            return self.issues
        first_index: dict[str, int] = {}
        # A stage's own path, its name's and its event types' are formatted only for an issue,
        # and its name is tested inline, ``name``'s two tests in the same order: ``name`` (the
        # same checks, the same issues) runs only for a name that fails one, so the issues are
        # those of calling it for every stage, without two frames a stage.
        fullmatch = NAME_PATTERN.fullmatch
        for index, stage in enumerate(pipeline.stages):
            name = stage.name
            if name in first_index:
                first = f"stages[{first_index[name]}]"
                message = f"duplicate stage name {quote(name)} (first at {first}: rename one)"
                self.issue(f"stages[{index}].name", message)
            else:
                first_index[name] = index
                if len(name) > MAX_NAME_LENGTH or not fullmatch(name):
                    self.name(f"stages[{index}].name", name)
            if stage.emits:
                for position, event_type in enumerate(stage.emits):
                    if len(event_type) > MAX_NAME_LENGTH:  # ``name_length``'s test
                        path = f"stages[{index}].emits[{position}]"
                        self.name_length(path, event_type, "event type")
            self.stage(index, stage)
        if len(first_index) == len(pipeline.stages):
            # Edges join stages by name: with duplicate names the graph is ambiguous, and
            # conclusions about cycles or entry stages would only add noise to that issue.
            self.cycles(first_index)
            if not self.ran:
                self.entry()
                if not self.issues:  # a graph with no cycle, and every expression compiled
                    self.upstream_reads()
        return self.issues

    def name(self, path: str, name: str) -> None:
        if (
            self.name_length(path, name, "name")
            and not self.ran
            and not NAME_PATTERN.fullmatch(name)
        ):
            self.issue(path, _bad_name(name, self.syntax))

    def name_length(self, path: str, name: str, what: str) -> bool:
        """False (and an issue) if ``name`` is longer than MAX_NAME_LENGTH characters."""
        if len(name) <= MAX_NAME_LENGTH:
            return True
        self.issue(
            path,
            f"{what} {quote(name)} is {len(name)} characters long (the limit is {MAX_NAME_LENGTH})",
        )
        return False

    # The checks of a field take the path of what holds it and the field's name, and join the
    # two only for an issue: a valid file has none, and a path per field was most of the cost
    # of validating a stage.

    def at_least(self, owner: str, field: str, value: float, minimum: int) -> None:
        if value < minimum:
            self.issue(_path(owner, field), f"must be >= {minimum}, got {value:g}")

    def positive(self, owner: str, field: str, value: float | None) -> None:
        """A duration: over 0, and finite (``float("9" * 400)`` is inf, which the renderers,
        timers and reports cannot turn into a time: ``dag`` of such a file was a traceback)."""
        if value is not None and not value > 0:
            self.issue(_path(owner, field), f"must be > 0, got {value:g}")
        elif value == math.inf:
            self.issue(_path(owner, field), "must be finite, got inf")

    def retry(self, owner: str, field: str, retry: RetryPolicy | None) -> None:
        if retry is None:
            return
        path = _path(owner, field)
        self.at_least(path, "max_attempts", retry.max_attempts, 1)
        self.positive(path, "backoff.initial", retry.backoff.initial)
        self.at_least(path, "backoff.factor", retry.backoff.factor, 1)
        self.positive(path, "backoff.max", retry.backoff.max)

    def loop_def(self, path: str, name: str, loop: LoopDef) -> None:
        self.name_length(path, name, "loop type")
        if name in BUILTIN_LOOPS:
            self.issue(path, f"shadows the built-in loop type {quote(name)}")
        if (loop.handler is None) == (loop.command is None):
            self.issue(path, "expected exactly one of 'handler' or 'command'")
        self.handler(path, loop.handler)
        if loop.command is not None and not loop.command.strip():
            self.issue(f"{path}.command", "must not be empty")

    def handler(self, owner: str, handler: str | None) -> None:
        if handler is None:
            return
        if not _HANDLER_PATTERN.fullmatch(handler):
            # ``steps.count``, a Python dotted path: the function follows the last dot
            meant = ":".join(handler.rsplit(".", 1))
            shown = written(meant, self.syntax)
            write = f": write {shown}" if _HANDLER_PATTERN.fullmatch(meant) else ""
            message = f"invalid handler {quote(handler)} (expected module:function{write})"
            self.issue(f"{owner}.handler", message)
        else:  # stages share handlers: each valid one is matched once
            self.handlers.add(handler)

    def stage(self, index: int, stage: Stage) -> None:
        # ``index`` rather than the stage's path ``stages[INDEX]``: each issue formats it, so a
        # stage with none (most of them) never does. The same paths as before, in each branch.
        if not self.ran:
            self.loop(index, stage)
        # The checks most stages pass, tested here before a call that would only pass them.
        if not stage.parallel_instances >= 1:
            self.at_least(f"stages[{index}]", "parallel_instances", stage.parallel_instances, 1)
        elif (
            stage.parallel_instances > 1
            and not self.ran
            and not any(type(t) is OnEvent for t in stage.triggers)
        ):
            # Only published events start a stage more than once at a time: set on another
            # stage, the cap would be read as a promise of parallel work that never comes.
            self.issue(
                f"stages[{index}].parallel_instances",
                "caps concurrent on_event instances, and this stage has no on_event trigger",
            )
        if stage.timeout is not None and not 0 < stage.timeout < math.inf:  # ``positive``'s test
            self.positive(f"stages[{index}]", "timeout", stage.timeout)
        if stage.retry is not None:
            self.retry(f"stages[{index}]", "retry", stage.retry)
        if not stage.triggers and not self.ran:
            hint = entry_stage_hint(self.syntax)
            self.issue(f"stages[{index}].triggers", f"must not be empty{hint}")
        for position, trigger in enumerate(stage.triggers):
            if type(trigger) is OnCompletion and trigger.stage in self.stage_names:
                continue  # a known stage: nothing to report (``trigger`` says the same)
            self.trigger(f"stages[{index}]", position, trigger)
        if self.ran:
            return  # the mappings are read by CEL only
        if stage.inputs:
            event_triggered = any(isinstance(t, OnEvent) for t in stage.triggers)
            variables = _EVENT_VARIABLES if event_triggered else _BASE_VARIABLES
            self.mappings(f"stages[{index}].inputs", stage.inputs, variables, "input")
        if stage.outputs:
            self.mappings(f"stages[{index}].outputs", stage.outputs, _OUTPUT_VARIABLES, "output")
        if stage.command is not None and _INPUT_PREFIX in stage.command:
            self.command_inputs(index, stage.command, stage.inputs)

    def command_inputs(self, index: int, command: str, inputs: tuple[InputMapping, ...]) -> None:
        """A command that reads ``$TASKDAEMON_INPUT_X`` where no input of its stage is ``x``: the
        shell reads an unset variable as empty, so a misspelt name ran with nothing, silently.
        One issue a command; a loop type's shared command is not judged (each stage using it
        has its own inputs)."""
        given = {_INPUT_PREFIX + _ENV_NAME.sub("_", m.name).upper() for m in inputs}
        for match in _INPUT_VARIABLE.finditer(command):
            variable = match.group(0)
            if variable in given:
                continue
            hint = self.suggest(variable, given)
            if not hint and given:
                names = ", ".join(quote(name, _SHOWN_VARIABLE) for name in sorted(given)[:10])
                hint = f" (the stage's inputs set {names})"
            elif not hint:
                write = setting("inputs", {"NAME": Word("CEL")}, self.syntax)
                hint = f" (the stage has no inputs: {write} sets {_INPUT_PREFIX}<NAME>)"
            shown = quote(variable, _SHOWN_VARIABLE)
            self.issue(f"stages[{index}].command", f"reads {shown}, which no input sets{hint}")
            return

    def loop(self, index: int, stage: Stage) -> None:
        """The stage's loop type and what it needs (a handler, a command)."""
        if stage.loop not in self.loop_names:
            known = ", ".join(sorted(self.loop_names)) if len(self.loop_names) <= 20 else "…"
            hint = self.suggest(stage.loop, self.loop_names) or f" (known: {known})"
            self.issue(f"stages[{index}].loop", f"unknown loop type {quote(stage.loop)}{hint}")
        if stage.loop == "python":
            if stage.handler is None:
                self.issue(f"stages[{index}].handler", "required for loop 'python'")
            if stage.command is not None:
                self.issue(f"stages[{index}].command", "not used by loop 'python'")
        elif stage.loop == "command":
            if stage.command is None:
                self.issue(f"stages[{index}].command", "required for loop 'command'")
            if stage.handler is not None:
                self.issue(f"stages[{index}].handler", "not used by loop 'command'")
        if stage.handler is not None and stage.handler not in self.handlers:
            self.handler(f"stages[{index}]", stage.handler)
        if stage.command is not None and not stage.command.strip():
            self.issue(f"stages[{index}].command", "must not be empty")

    def mappings(
        self,
        path: str,
        mappings: tuple[InputMapping | OutputMapping, ...],
        variables: frozenset[str],
        noun: str,
    ) -> None:
        seen: set[str] = set()
        for mapping in mappings:
            if mapping.name in seen:
                self.issue(f"{path}.{mapping.name}", f"duplicate {noun} name")
            seen.add(mapping.name)
            self.expression(f"{path}.{mapping.name}.from", mapping.source, variables)

    def trigger(self, owner: str, index: int, trigger: Trigger) -> None:
        if isinstance(trigger, OnCompletion):
            # A completion of the stage itself is a cycle ``a -> a``, reported by ``cycles``.
            if trigger.stage not in self.stage_names:
                hint = self.suggest(trigger.stage, self.stage_names) or self.stages_listed()
                path = f"{owner}.triggers[{index}].on_completion.stage"
                self.issue(path, f"unknown stage {quote(trigger.stage)}{hint}")
            return
        path = f"{owner}.triggers[{index}].{trigger.kind}"
        if isinstance(trigger, OnEvent):
            known = self.ran or trigger.type in self.emitted or trigger.type in self.external
            if self.name_length(f"{path}.type", trigger.type, "event type") and not known:
                external = setting("external_events", [trigger.type], self.syntax)
                hint = self.suggest(trigger.type, self.emitted) or (
                    " (add it to the emits of the stage that publishes it, or write "
                    f"{external} for one published from outside the run)"
                )
                self.issue(
                    f"{path}.type",
                    f"no stage emits {quote(trigger.type)} and it is not in external_events{hint}",
                )
            if trigger.filter is not None:
                self.expression(f"{path}.filter", trigger.filter, _EVENT_VARIABLES)
        elif isinstance(trigger, OnCondition):
            self.expression(f"{path}.expression", trigger.expression, _BASE_VARIABLES)
        else:
            self.positive(path, "timeout", trigger.timeout)
            if trigger.timeout is not None and not trigger.approval_required and not self.ran:
                self.issue(f"{path}.timeout", "only used when approval_required is true")

    def expression(self, path: str, source: str, allowed: frozenset[str]) -> None:
        if self.ran:
            return  # compiled by the engine when it ran; a drawing shows it as text
        try:
            expression = compile_expression(source, allowed)
        except ExpressionLimitError as exc:  # never compiled: the binding may crash on it
            self.issue(path, f"{quote(source)}: {exc}")
            return
        except ExpressionError as exc:
            message = self.expression_message(source, exc)
            self.issue(path, message, message_position(message))
            return
        if self.compiled is not None:
            self.compiled[path] = expression
        for match in _STAGE_REFERENCE.finditer(source):
            name = next(group for group in match.groups() if group is not None)
            if name not in self.stage_names:
                hint = self.suggest(name, self.stage_names) or self.stages_listed()
                self.issue(path, f"reads unknown stage {quote(name)}{hint}")

    def expression_message(self, source: str, exc: ExpressionError) -> str:
        for match in _DASHED_REFERENCE.finditer(source):
            if match.group(1) in self.stage_names:
                name = match.group(1)
                return f'stages.{name} is a subtraction in CEL (write stages["{name}"])'
        return exc.said or str(exc)

    def cycles(self, first_index: Mapping[str, int]) -> None:
        try:
            # Orders every stage only when the graph has no cycle; the engine reads the same
            # cached order for each run, so a valid file pays one linear pass, not two.
            self.pipeline.topological_order  # noqa: B018
        except ValueError:
            pass  # a cycle, or an edge from an unknown stage: look for cycles to report
        else:
            return
        for component in strongly_connected(self.pipeline.downstream):
            start = min(component, key=first_index.__getitem__)
            if len(component) == 1 and start not in self.pipeline.downstream[start]:
                continue
            cycle = shortest_cycle(self.pipeline.downstream, start, set(component))
            closing = cycle[-2]  # the edge closing -> start is the one reported, on ``start``
            index = first_index[start]
            stage = self.pipeline.stages[index]
            closing_emits = set(self.pipeline.stage(closing).emits)
            for position, trigger in enumerate(stage.triggers):
                if isinstance(trigger, OnCompletion) and trigger.stage == closing:
                    field_ = "on_completion.stage"
                elif isinstance(trigger, OnEvent) and trigger.type in closing_emits:
                    field_ = "on_event.type"
                else:
                    continue
                path = f"stages[{index}].triggers[{position}].{field_}"
                waits = "itself" if closing == start else quote(closing)
                why = f"none of them can start: {quote(start)} waits for {waits} here"
                self.issue(path, f"cycle: {' -> '.join(cycle)} ({why}; remove this trigger)")
                self.removed.add((start, trigger))
                break

    def upstream_reads(self) -> None:
        """A required input that reads the outputs of a stage which is not upstream of its own:
        the stage may start first (an entry stage starts with the run), and then fails with
        ``missing required input`` or not, by a race, after ``validate`` passed.

        Not judged, to give no false alarm: a stage with an ``on_condition`` trigger (its
        condition may wait for that stage) or an approval (granted when a person sees fit), an
        input with ``required: false``, and one that tests ``has(...)``. The searches upstream
        share a budget of stages visited (``_REACH_BUDGET``), past which nothing is judged."""
        pipeline = self.pipeline
        for index, stage in enumerate(pipeline.stages):
            if not stage.inputs or any(
                type(t) is OnCondition or (type(t) is Manual and t.approval_required)
                for t in stage.triggers
            ):
                continue
            for mapping in stage.inputs:
                if not mapping.required or "has(" in mapping.source:
                    continue
                for match in _OUTPUTS_REFERENCE.finditer(mapping.source):
                    name = next(group for group in match.groups() if group is not None)
                    if name not in self.stage_names or self.upstream_of(stage.name, name):
                        continue
                    wait = setting("triggers", [{"on_completion": {"stage": name}}], self.syntax)
                    why = (
                        "reads the stage's own outputs, which it has only once it ended (what "
                        "the handler returns is result, in outputs:)"
                        if name == stage.name
                        else f"reads stage {quote(name)}, which is not upstream of "
                        f"{quote(stage.name)}: it may start first and fail (wait for it, {wait}, "
                        "or make the input required: false)"
                    )
                    self.issue(f"stages[{index}].inputs.{mapping.name}.from", why)
                    break

    def upstream_of(self, stage: str, name: str) -> bool:
        """True if ``name`` is upstream of ``stage`` (or past the search's budget: no issue)."""
        upstream, seen, waiting = self.pipeline.upstream, {stage}, [stage]
        while waiting:
            for source in upstream.get(waiting.pop(), ()):
                if source == name:
                    return True
                if source not in seen:
                    self.reach_budget -= 1
                    seen.add(source)
                    waiting.append(source)
            if self.reach_budget < 0:
                return True
        return False

    def entry(self) -> None:
        # An on_completion of an unknown stage adds an edge whose source is not a stage: the
        # stage waits on it, so it is no entry stage, but that stage's issue says so and names
        # the stage meant. "No entry stage" beside it, saying to add the trigger the stage
        # has, would only mislead. So would it beside a cycle through a stage that has an
        # entry trigger: the cycle's issue says which trigger to remove, and that stage is
        # then an entry stage; "no entry stage" stays only if none would be left.
        names, removed = self.stage_names, self.removed
        targets = {
            edge.target
            for edge in self.pipeline.edges
            if edge.source in names and (edge.target, edge.trigger) not in removed
        }
        for stage in self.pipeline.stages:
            if stage.name in targets:
                continue
            for trigger in stage.triggers:
                if isinstance(trigger, Manual | OnCondition) or (
                    isinstance(trigger, OnEvent) and trigger.type in self.external
                ):
                    return
        manual = setting("triggers", [{"manual": {}}], self.syntax)
        self.issue(
            "stages",
            "no entry stage (a stage with no upstream stages and a manual, on_condition "
            f"or external on_event trigger: give the first stage {manual})",
        )


def _path(owner: str, field: str) -> str:
    return f"{owner}.{field}" if owner else field


def _bad_name(name: str, syntax: Syntax) -> str:
    """The issue of a name the pattern refuses, with the name to write (``'Build step'``:
    ``'build-step'``) when lowering it and joining its words with ``-`` makes one."""
    meant = re.sub(r"[^a-z0-9_.-]+", "-", name.lower()).strip("-")
    fits = NAME_PATTERN.fullmatch(meant) and meant != name
    write = f": write {written(meant, syntax)}" if fits else ""
    return f"invalid name {quote(name)} (expected [a-z0-9][a-z0-9_.-]*{write})"
