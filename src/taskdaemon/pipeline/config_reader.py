"""A pipeline file's plain values read into the model, with an issue for every field that is
wrong (``config`` reads the file into plain values first, with ``config_text``, and validates
what this module builds; the rules of the format are ``config``'s docstring).

One reader per file (:class:`ConfigReader`): it checks each field's type and keys, gives a
wrong field its default or drops the element so that the rest of the file is still checked,
and keeps the field paths of what it refused, so that the validator's issues about the same
fields are not reported twice and its list indices are numbered as in the file (that
bookkeeping is ``config_issues``'; the line an issue adds for a newcomer's slip,
``config_hints``').
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection
from typing import Any, Final, TypeVar

from taskdaemon.pipeline.config_hints import (
    TRIGGER_FIELD,
    argv_hint,
    boolean_hint,
    each_stage,
    entry_stage_hint,
    one_of,
    quote_hint,
    several_stages_hint,
    shown_number,
    trigger_body_hint,
    trigger_example,
    unquote,
)
from taskdaemon.pipeline.config_issues import FileIssues
from taskdaemon.pipeline.config_text import Aliases, Lines, ValueLines
from taskdaemon.pipeline.errors import MAX_ISSUES
from taskdaemon.pipeline.finite_number import is_finite_number, is_number
from taskdaemon.pipeline.frozen import lazy_maker
from taskdaemon.pipeline.hint_syntax import Syntax, Word, setting, written
from taskdaemon.pipeline.model import (
    Backoff,
    ErrorStrategy,
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
    TriggerMode,
)
from taskdaemon.pipeline.other_tools import (
    ORDERING_KEYS,
    completion_body_hint,
    stage_key_hint,
    trigger_kind_hint,
)
from taskdaemon.pipeline.quoting import quote
from taskdaemon.pipeline.trigger_values import TRIGGER_KEYS as _TRIGGER_KEYS
from taskdaemon.pipeline.trigger_values import quick_trigger
from taskdaemon.pipeline.validation_warnings import unknown_code
from taskdaemon.pipeline.wording import close_match
from taskdaemon.pipeline.yaml_values import kind_of

__all__ = ["ConfigReader"]

_PIPELINE_KEYS: Final = (
    "name",
    "description",
    "concurrency",
    "timeout",
    "error_strategy",
    "retry",
    "loops",
    "external_events",
    "stages",
    "ignore_warnings",
)
_STAGE_KEYS: Final = (
    "name",
    "description",
    "loop",
    "handler",
    "command",
    "emits",
    "triggers",
    "trigger_mode",
    "inputs",
    "outputs",
    "parallel_instances",
    "timeout",
    "retry",
    "ignore_warnings",
)
#: A stage's optional fields and the ``ConfigReader`` method that converts each, in the order their
#: issues are found. A field a stage leaves out (most, in most files) costs a membership test
#: and takes ``Stage``'s own default: the defaults live in the model only.
_STAGE_OPTIONAL: Final = (
    ("description", "string"),
    ("emits", "names"),
    ("trigger_mode", "trigger_mode"),
    ("inputs", "inputs"),
    ("outputs", "outputs"),
    ("parallel_instances", "integer"),
    ("timeout", "duration"),
    ("retry", "retry"),
)
_RETRY_KEYS: Final = ("max_attempts", "backoff")
_BACKOFF_KEYS: Final = ("initial", "factor", "max")
_LOOP_KEYS: Final = ("handler", "command")
_MAPPING_KEYS: Final = ("from", "required")
#: The keys a stage may have, for the common case's one test (``_STAGE_KEYS`` words an issue).
_STAGE_KEY_SET: Final = frozenset(_STAGE_KEYS)
#: The keys of a stage that are not in ``_STAGE_OPTIONAL`` (a stage with no other key is built
#: without looking for them).
_STAGE_REQUIRED_SET: Final = _STAGE_KEY_SET - {key for key, _ in _STAGE_OPTIONAL}

_TRIGGER_MODES: Final = {mode.value: mode for mode in TriggerMode}

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)", re.ASCII)  # ASCII: float takes any digits
_DURATION = re.compile(r"(?:\d+(?:\.\d+)?(?:ms|s|m|h))+", re.ASCII)
_UNIT_SECONDS: Final = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_NUMBER = re.compile(r"\d+(?:\.\d+)?", re.ASCII)
_DIGITS = re.compile(r"\d+", re.ASCII)

_MISSING: Final[Any] = object()
_T = TypeVar("_T")


#: The reader builds one ``Stage`` (thirteen fields) a stage of the file: through its maker,
#: compiled when a file's first stage is read, in place of ``Stage.__init__``, which the
#: commands that read a file then never compile.
_make_stage = lazy_maker(Stage)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _habit_hint(allowed: Collection[str], key: str, value: Any, syntax: Syntax) -> str | None:
    """The line to write for an unknown ``key`` another tool uses (``other_tools``), where
    ``allowed`` is a stage's keys, the trigger kinds or an ``on_completion``'s keys."""
    if allowed is _STAGE_KEYS:
        return stage_key_hint(key, value, syntax)
    if allowed is _TRIGGER_KEYS:
        return trigger_kind_hint(key, value, syntax)
    return completion_body_hint(key) if allowed is _TRIGGER_KEYS["on_completion"] else None


class ConfigReader(FileIssues):
    """Builds the model from plain values, collecting an issue for every field that is wrong
    (:class:`~taskdaemon.pipeline.config_issues.FileIssues`: where each is in the file).

    A wrong field gets its default (or the element is dropped) so that reading goes on and the
    rest of the file is still checked. An issue that says what to write writes it in the
    file's ``syntax`` (``hint_syntax``).
    """

    def __init__(
        self,
        file: str,
        lines: Lines,
        syntax: Syntax = "yaml",
        value_lines: ValueLines | None = None,
        aliases: Aliases | None = None,
    ) -> None:
        super().__init__(file, lines, value_lines, aliases)
        self.syntax = syntax
        self.fatal = False
        #: The paths an unknown key's "did you mean" names (``trigers`` means
        #: ``stages[0].triggers``): such a field is not missing as well.
        self.meant: set[str] = set()
        #: The warning codes each ``ignore_warnings`` suppresses, by its owner's path (``""``
        #: the pipeline, ``stages[I]`` a stage): not the model's, as a comment is not (below).
        self.ignored: dict[str, tuple[str, ...]] = {}

    # typed accessors: each returns ``default`` after reporting a wrong value

    def keys(self, data: dict[str, Any], allowed: Collection[str], path: str) -> None:
        for key, value in data.items():
            if key not in allowed:
                close = close_match(key, allowed)
                hint = f"did you mean {close[0]!r}?" if close else f"expected {one_of(allowed)}"
                if close:
                    self.meant.add(_join(path, close[0]))
                habit = _habit_hint(allowed, key, value, self.syntax)
                self.issue(_join(path, key), f"unknown key ({habit or hint})")

    def mapping(self, value: Any, path: str) -> dict[str, Any] | None:
        if isinstance(value, dict):
            return value
        self.issue(path, f"expected a mapping, got {kind_of(value)}")
        return None

    def field(
        self,
        data: dict[str, Any],
        key: str,
        path: str,
        convert: Callable[[Any, str], _T | None],
        default: _T,
        *,
        required: bool = False,
        hint: str = "",
    ) -> _T:
        value = data.get(key, _MISSING)
        if value is _MISSING or (value is None and not required):
            if required and (field := _join(path, key)) in self.meant:
                self.cover(field)  # its misspelt key's issue says it; nor is it empty
            elif required:
                self.issue(field, f"missing required field{hint}")
            return default
        result = convert(value, f"{path}.{key}" if path else key)
        return default if result is None else result

    def string(self, value: Any, path: str) -> str | None:
        if not isinstance(value, str):
            hint = quote_hint(value, self.syntax) or argv_hint(value, path, self.syntax)
            self.issue(path, f"expected a string, got {kind_of(value)}{hint}")
            return None
        return value

    def name(self, value: Any, path: str) -> str | None:
        """A non-empty string (an event type, a stage reference)."""
        text = self.string(value, path)
        if text is not None and not text.strip():
            self.issue(path, "must not be empty")
            return None
        return text

    def boolean(self, value: Any, path: str) -> bool | None:
        if not isinstance(value, bool):
            self.issue(path, f"expected a boolean, got {kind_of(value)}{boolean_hint(value)}")
            return None
        return value

    def integer(self, value: Any, path: str) -> int | None:
        if isinstance(value, bool) or not isinstance(value, int):
            self.issue(path, f"expected an integer, got {kind_of(value)}{unquote(value, _DIGITS)}")
            return None
        return value

    def number(self, value: Any, path: str) -> float | None:
        if not is_number(value):
            self.issue(path, f"expected a number, got {kind_of(value)}{unquote(value, _NUMBER)}")
            return None
        if not is_finite_number(value):  # NaN, inf, an int too large for a float
            shown = value if isinstance(value, float) else quote(str(value))
            self.issue(path, f"expected a finite number, got {shown}")
            return None
        return float(value)

    def duration(self, value: Any, path: str) -> float | None:
        if is_number(value):
            return self.number(value, path)
        if not isinstance(value, str):
            self.issue(path, f"expected a duration, got {kind_of(value)}")
            return None
        text = value.strip()
        if _NUMBER.fullmatch(text):  # types are strict: "300" is no more seconds than "3" an int
            number = shown_number(text)
            unit = written(Word(f"{number}s"), self.syntax)
            why = f"seconds are a number: write {number} without quotes, or {unit}"
            self.issue(path, f"invalid duration {quote(value)} ({why})")
            return None
        if not _DURATION.fullmatch(text):
            joined = "".join(text.split())  # `10 m`: its parts written apart
            fits = _DURATION.fullmatch(joined) and not _NUMBER.fullmatch(joined)
            why = (
                f"write {written(Word(joined), self.syntax)}, without spaces"
                if fits
                else "expected seconds or 500ms, 30s, 10m, 2h"
            )
            self.issue(path, f"invalid duration {quote(value)} ({why})")
            return None
        return sum(float(n) * _UNIT_SECONDS[unit] for n, unit in _DURATION_PART.findall(text))

    def names(self, value: Any, path: str) -> tuple[str, ...] | None:
        if not isinstance(value, list):
            self.issue(path, f"expected a list, got {kind_of(value)}")
            return None
        return self._compacted(
            path, [self.name(item, f"{path}[{i}]") for i, item in enumerate(value)]
        )

    def choice(self, value: Any, path: str, choices: Collection[str], noun: str) -> str | None:
        text = self.string(value, path)
        if text is None:
            return None
        if text not in choices:
            close = close_match(text, choices)
            hint = f"did you mean {close[0]!r}?" if close else f"expected {one_of(choices)}"
            self.issue(path, f"unknown {noun} {quote(text)} ({hint})")
            return None
        return text

    # the canonical form

    def pipeline(self, data: Any) -> Pipeline:
        if not isinstance(data, dict):
            self.issue("", f"expected a mapping at the top level, got {kind_of(data)}")
            self.fatal = True
            return Pipeline(name="", stages=(), source=self.file)
        self.keys(data, _PIPELINE_KEYS, "")
        if "ignore_warnings" in data:
            self.ignore_warnings(data["ignore_warnings"], "")
        strategy = self.field(
            data,
            "error_strategy",
            "",
            lambda v, p: self.choice(v, p, [s.value for s in ErrorStrategy], "error strategy"),
            ErrorStrategy.FAIL.value,
        )
        return Pipeline(
            name=self.field(data, "name", "", self.string, "", required=True),
            description=self.field(data, "description", "", self.string, ""),
            concurrency=self.field(data, "concurrency", "", self.integer, 4),
            timeout=self.field(data, "timeout", "", self.duration, None),
            error_strategy=ErrorStrategy(strategy),
            retry=self.field(data, "retry", "", self.retry, RetryPolicy()),
            loops=self.field(data, "loops", "", self.loops, {}),
            external_events=self.field(data, "external_events", "", self.names, ()),
            stages=self.field(data, "stages", "", self.stages, (), required=True),
            source=self.file,
        )

    def retry(self, value: Any, path: str) -> RetryPolicy | None:
        if type(value) is int:  # ``retry: 3``, as other tools write it
            write = setting("retry", {"max_attempts": value}, self.syntax)
            self.issue(path, f"expected a mapping, got integer (write {write})")
            return None
        data = self.mapping(value, path)
        if data is None:
            return None
        self.keys(data, _RETRY_KEYS, path)
        return RetryPolicy(
            max_attempts=self.field(data, "max_attempts", path, self.integer, 1),
            backoff=self.field(data, "backoff", path, self.backoff, Backoff()),
        )

    def backoff(self, value: Any, path: str) -> Backoff | None:
        data = self.mapping(value, path)
        if data is None:
            return None
        self.keys(data, _BACKOFF_KEYS, path)
        default = Backoff()
        return Backoff(
            initial=self.field(data, "initial", path, self.duration, default.initial),
            factor=self.field(data, "factor", path, self.number, default.factor),
            max=self.field(data, "max", path, self.duration, default.max),
        )

    def loops(self, value: Any, path: str) -> dict[str, LoopDef] | None:
        data = self.mapping(value, path)
        if data is None:
            return None
        result: dict[str, LoopDef] = {}
        for name, body in data.items():
            loop_path = _join(path, name)
            loop = self.mapping(body, loop_path)
            if loop is None:
                continue
            self.keys(loop, _LOOP_KEYS, loop_path)
            result[name] = LoopDef(
                name=name,
                handler=self.field(loop, "handler", loop_path, self.string, None),
                command=self.field(loop, "command", loop_path, self.string, None),
            )
        return result

    def stages(self, value: Any, path: str) -> tuple[Stage, ...] | None:
        if not isinstance(value, list):
            hint = (
                each_stage(self.syntax) if type(value) is dict else ""
            )  # one stage's fields, unlisted
            self.issue(path, f"expected a list, got {kind_of(value)}{hint}")
            return None
        read = self.stage
        return self._compacted(path, [read(item, f"{path}[{i}]") for i, item in enumerate(value)])

    def stage(self, value: Any, path: str) -> Stage | None:
        # A field present with its type (or absent where allowed) is taken with a type test;
        # any other goes through ``field``, which reports it: the same issues, in this order.
        data = value if type(value) is dict else self.mapping(value, path)
        if data is None:
            return None
        keys = data.keys()
        if not keys <= _STAGE_KEY_SET:
            self.keys(data, _STAGE_KEYS, path)
        if "ignore_warnings" in data:
            self.ignore_warnings(data["ignore_warnings"], path)
        get = data.get
        handler = get("handler")
        # Given, if of a wrong type: the loop type is still told (its issue alone, not a
        # "missing loop" beside it).
        given_handler, given_command = handler is not None, get("command") is not None
        if given_handler and not isinstance(handler, str):
            handler = self.field(data, "handler", path, self.string, None)
        command = get("command")
        if command is not None and not isinstance(command, str):
            command = self.field(data, "command", path, self.string, None)
        loop = get("loop")
        if "loop" not in data and given_handler != given_command:
            loop = "python" if given_handler else "command"
        elif "loop" not in data and given_handler:  # and a command: which one runs?
            both = "both command and handler given: keep one (a command runs in a shell, a"
            self.issue(f"{path}.handler", f"{both} handler is a Python module:function)")
            self.cover(f"{path}.loop")
            loop = ""
        elif "loop" not in data and self.meant & {f"{path}.command", f"{path}.handler"}:
            self.cover(f"{path}.loop")  # a misspelt key's issue says it (`Command:`)
            loop = ""
        elif not isinstance(loop, str):  # the hint: the other way to say it (a typo'd command)
            hint = " (or exactly one of handler and command)"
            loop = self.field(data, "loop", path, self.string, "", required=True, hint=hint)
        name = get("name")
        if not isinstance(name, str):
            name = self.field(data, "name", path, self.string, "", required=True)
        triggers: tuple[Trigger, ...] | None = None
        if isinstance(found := get("triggers"), list):
            # Most lists are all right: read at once (a trigger is never false); any other
            # is read item by item, which words each issue.
            if len(found) == 1:  # most stages: the comprehension below, without its frame
                only = quick_trigger(found[0])
                triggers = (only,) if only else self.triggers(found, f"{path}.triggers")
            else:
                quick: list[Any] = [quick_trigger(item) for item in found]
                triggers = tuple(quick) if all(quick) else self.triggers(found, f"{path}.triggers")
        if triggers is None:
            no_triggers: tuple[Trigger, ...] = ()
            after = not keys.isdisjoint(ORDERING_KEYS)  # its unknown key says what to write
            triggers = self.field(
                data,
                "triggers",
                path,
                self.triggers,
                no_triggers,
                required=True,
                hint="" if after else entry_stage_hint(self.syntax),
            )
        if keys <= _STAGE_REQUIRED_SET:  # no optional field: nothing more to read
            return _make_stage()(
                name=name, loop=loop, handler=handler, command=command, triggers=triggers
            )
        given: dict[str, Any] = {}
        for key, convert in _STAGE_OPTIONAL:
            if key in data:
                value = self.field(data, key, path, getattr(self, convert), None)
                if value is not None:  # else its issue is recorded: the default stands
                    given[key] = value
        return _make_stage()(
            name=name,
            loop=loop,
            handler=handler,
            command=command,
            triggers=triggers,
            **given,
        )

    def ignore_warnings(self, value: Any, owner: str) -> None:
        """``ignore_warnings: [CODE, ...]``, the warnings of ``owner`` (the pipeline: ``""``, or a
        stage) that are not to be shown (docs/validation.md, "Suppressing a warning"), kept in
        :attr:`ignored`. Not a field of the model: like a comment, it says nothing of what the
        pipeline does, so adding one changes neither its definition nor the hash its runs
        record. An unknown code is an issue, with a "did you mean"."""
        path = _join(owner, "ignore_warnings")
        if not isinstance(value, list):
            # the hint quotes the text raw: only a code's (a line break in it forged a line)
            known = isinstance(value, str) and unknown_code(value) is None
            hint = f" (write {written([Word(value)], self.syntax)})" if known else ""
            self.issue(path, f"expected a list, got {kind_of(value)}{hint}")
            return
        codes = []
        for index, item in enumerate(value):
            if len(self.issues) > MAX_ISSUES:  # no more are shown: no "did you mean" looked
                break  # for in each of a list of hundreds of thousands of unknown codes
            reason = unknown_code(item) if isinstance(item, str) else None
            if not isinstance(item, str):
                self.issue(f"{path}[{index}]", f"expected a warning code, got {kind_of(item)}")
            elif reason is not None:
                self.issue(f"{path}[{index}]", reason)
            else:
                codes.append(item)
        self.ignored[owner] = tuple(codes)

    def trigger_mode(self, value: Any, path: str) -> TriggerMode | None:
        mode = self.choice(value, path, _TRIGGER_MODES, "trigger mode")
        return None if mode is None else _TRIGGER_MODES[mode]

    def triggers(self, value: Any, path: str) -> tuple[Trigger, ...] | None:
        if not isinstance(value, list):
            example = trigger_example(value) or trigger_example("manual")
            listed = setting("triggers", [example], self.syntax)
            hint = f" (a list of one-key mappings: {listed})" if isinstance(value, str) else ""
            self.issue(path, f"expected a list, got {kind_of(value)}{hint}")
            return None
        triggers = []
        for i, item in enumerate(value):
            # Most items are right: read at once; any other is read field by field.
            trigger = quick_trigger(item)
            if trigger is None:
                trigger = self.trigger(item, f"{path}[{i}]")
            triggers.append(trigger)
        return self._compacted(path, triggers)

    def trigger(self, value: Any, path: str) -> Trigger | None:
        if not isinstance(value, dict):
            kinds = one_of(_TRIGGER_KEYS)
            # ``triggers: [manual]``: the kind alone, with no mapping around it
            example = trigger_example(value)
            hint = f" (write {written(example, self.syntax)})" if example else ""
            self.issue(path, f"expected a mapping with one of {kinds}, got {kind_of(value)}{hint}")
            return None
        self.keys(value, _TRIGGER_KEYS, path)
        present = [key for key in value if key in _TRIGGER_KEYS]
        if len(present) != 1:
            if len(present) > 1:
                found = " and ".join(present)
                self.issue(path, f"expected one trigger per list item, got {found}")
            elif not value:
                self.issue(path, f"expected one of {one_of(_TRIGGER_KEYS)}, got an empty mapping")
            return None
        kind = present[0]
        body_path = _join(path, kind)
        body = value[kind]
        if body is None and kind == "manual":
            body = {}
        if kind in TRIGGER_FIELD and isinstance(body, str | list):
            self.issue(body_path, trigger_body_hint(kind, body, self.syntax))
            return None
        data = self.mapping(body, body_path)
        if data is None:
            return None
        self.keys(data, _TRIGGER_KEYS[kind], body_path)
        if kind == "on_completion":
            if isinstance(data.get("stage"), list):
                self.issue(_join(body_path, "stage"), several_stages_hint(self.syntax))
                return None
            stage = self.field(data, "stage", body_path, self.name, None, required=True)
            success_only = self.field(data, "success_only", body_path, self.boolean, True)
            return None if stage is None else OnCompletion(stage, success_only)
        if kind == "on_event":
            event_type = self.field(data, "type", body_path, self.name, None, required=True)
            event_filter = self.field(data, "filter", body_path, self.string, None)
            return None if event_type is None else OnEvent(event_type, event_filter)
        if kind == "on_condition":
            expression = self.field(data, "expression", body_path, self.string, None, required=True)
            return None if expression is None else OnCondition(expression)
        return Manual(
            approval_required=self.field(data, "approval_required", body_path, self.boolean, False),
            timeout=self.field(data, "timeout", body_path, self.duration, None),
        )

    def inputs(self, value: Any, path: str) -> tuple[InputMapping, ...] | None:
        found = self.mappings(value, path)
        return None if found is None else tuple(InputMapping(*item) for item in found)

    def outputs(self, value: Any, path: str) -> tuple[OutputMapping, ...] | None:
        found = self.mappings(value, path)
        return None if found is None else tuple(OutputMapping(*item) for item in found)

    def mappings(self, value: Any, path: str) -> list[tuple[str, str, bool]] | None:
        """``{name: "CEL"}`` (required) or ``{name: {from: CEL, required: bool}}``."""
        data = self.mapping(value, path)
        if data is None:
            return None
        result: list[tuple[str, str, bool]] = []
        for name, spec in data.items():
            item_path = _join(path, name)
            if isinstance(spec, str):
                result.append((name, spec, True))
                continue
            if not isinstance(spec, dict):
                reason = f"expected a CEL string or a mapping with 'from', got {kind_of(spec)}"
                self.issue(item_path, reason)
                continue
            self.keys(spec, _MAPPING_KEYS, item_path)
            source = self.field(spec, "from", item_path, self.string, None, required=True)
            required = self.field(spec, "required", item_path, self.boolean, True)
            if source is not None:
                result.append((name, source, required))
        return result
