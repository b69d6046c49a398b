"""A seeded mutation fuzzer over taskdaemon's readers of untrusted input (docs/input-limits.md,
"Fuzzing").

Each target makes one case from a ``random.Random`` (a mutated seed input) and feeds it to the
code in-process. The oracle: nothing escapes but the errors the entry point is documented to
raise (the project's one-line errors, or the ``ValueError`` an argparse type or a row decoder
is allowed), and what a command would print is encodable as UTF-8. Time and memory bounds are
the campaign's (``scripts/fuzz.py`` runs each target in a child process under an address-space
limit and a per-case alarm). A case is a function of its seed alone: ``case(target, seed)``
replays it.

``tests/reliability_fuzz_test.py`` runs a fixed slice of seeds; ``scripts/fuzz.py`` runs as
many as time allows and writes each distinct finding, with the real CLI's answer to it when
the target is a pipeline file.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import httpx
import yaml

from taskdaemon.pipeline.cli import options
from taskdaemon.pipeline.config import parse_pipeline
from taskdaemon.pipeline.durations import parse_age, parse_when
from taskdaemon.pipeline.engine import Engine
from taskdaemon.pipeline.errors import (
    ConfigError,
    ExpressionError,
    RunNotFoundError,
    SettingsError,
    SpanSourceError,
)
from taskdaemon.pipeline.expressions import compile_expression
from taskdaemon.pipeline.model import Manual, Pipeline, Stage
from taskdaemon.pipeline.server import create_app
from taskdaemon.pipeline.settings import _FIELDS, load_settings
from taskdaemon.pipeline.tracking import OtlpJsonSource, reconstruct_run
from taskdaemon.pipeline.tracking._rows import decode_span
from taskdaemon.pipeline.tracking.otlp_json import parse_traces
from taskdaemon.pipeline.visualization import render_dot, render_json, render_mermaid

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "feature_delivery.yaml"
SPANS = ROOT / "tests" / "fixtures" / "spans" / "schema2_run.json"
RUN_ID = "f22c00fc74d48b4f2875f0a81ee3a83a"  # the run of SPANS

#: Pieces of text that readers have tripped on, or that sit at a boundary of one.
ODD = (
    "\u0301",  # a combining mark
    "²",  # a superscript digit: str.isdigit() but not int()
    "٣",  # an Arabic-Indic digit: int() reads it
    "９",  # a full-width digit
    "\ud800",  # a lone surrogate: YAML and JSON escapes make one
    "\\ud800",
    "\x00",
    "\ufeff",
    "\r",
    "\u2028",
    "\x85",
    "\u200b",
    "\x1b[31m",
    "\t",
    "İ",
    "ﬁ",
    "'",
    '"',
    "\\",
    "{",
    "}",
    "[",
    "]",
    ":",
    ": ",
    ",",
    "#",
    "- ",
    "? ",
    "|",
    ">-",
    "~",
    "&a ",
    "*a",
    "<<: *a",
    "!!python/object/apply:os.system ",
    "!!binary ",
    "!!timestamp ",
    "!!set ",
    "!!omap ",
    "!!float ",
    "!!int ",
    "!!str ",
    "!x ",
    "null",
    ".nan",
    "-.inf",
    "0x1F",
    "0o17",
    "1_000",
    "1:20:30",
    "1e400",
    "9" * 5000,
    "-9223372036854775809",
    "18446744073709551616",
    "2001-12-14t21:59:43.10-05:00",
    "9999-12-31",
    "%YAML 1.1\n",
    "---\n",
    "\n...\n",
    "=",
    "." * 300,
    "x[²]",
    '{"' + "k" * 1100 + '": 1}',  # a simple key past libyaml's 1,024 characters
    "a.b.c.d.e.f.g.h",
    "999999999999999999d",
    "1e9999s",
    "-0",
    "nan",
    "inf",
    "0.0000001",
)

TextMutator = Callable[[random.Random, str], str]


def _at(rng: random.Random, text: str) -> int:
    return rng.randrange(len(text) + 1)


def _insert(rng: random.Random, text: str) -> str:
    at = _at(rng, text)
    return text[:at] + rng.choice(ODD) + text[at:]


def _replace_word(rng: random.Random, text: str) -> str:
    words = [i for i in range(1, len(text)) if text[i].isalnum() and not text[i - 1].isalnum()]
    if not words:
        return _insert(rng, text)
    start = rng.choice(words)
    end = start
    while end < len(text) and (text[end].isalnum() or text[end] in "_."):
        end += 1
    return text[:start] + rng.choice(ODD) + text[end:]


def _delete(rng: random.Random, text: str) -> str:
    at = _at(rng, text)
    return text[:at] + text[at + rng.randint(1, 8) :]


def _flip(rng: random.Random, text: str) -> str:
    data = bytearray(text.encode("utf-8", "surrogatepass"))
    if data:
        data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
    return data.decode("utf-8", "replace")


def _lines(rng: random.Random, text: str) -> str:
    lines = text.split("\n")
    i, j = rng.randrange(len(lines)), rng.randrange(len(lines))
    how = rng.randrange(4)
    if how == 0:
        lines.insert(j, lines[i])  # a duplicate key, stage or item
    elif how == 1:
        del lines[i]
    elif how == 2:
        lines[i], lines[j] = lines[j], lines[i]
    else:
        lines[i:i] = [lines[i]] * rng.randint(2, 200)
    return "\n".join(lines)


def _nest(rng: random.Random, text: str) -> str:
    at, depth = _at(rng, text), rng.choice((50, 101, 1000, 20_000))
    opening, closing = rng.choice((("[", "]"), ("{a: ", "}"), ("- ", ""), ('{"a":', "}")))
    return text[:at] + opening * depth + closing * depth + text[at:]


def _endings(rng: random.Random, text: str) -> str:
    return text.replace("\n", rng.choice(("\r", "\r\n", "\u2028", "\x85", "\n\n")))


def _bom(rng: random.Random, text: str) -> str:
    return "\ufeff" + text


MUTATORS: tuple[TextMutator, ...] = (
    _insert,
    _insert,
    _replace_word,
    _replace_word,
    _delete,
    _flip,
    _lines,
    _nest,
    _endings,
    _bom,
)


#: The longest case: a pipeline file may be 16 MiB, but the readers' cost per size is measured
#: by benchmarks (benchmarks/big_pipeline_memory.py), not here.
MAX_CASE = 1 << 20
#: The longest command-line argument Linux passes (``MAX_ARG_STRLEN``), for options and settings.
MAX_ARGUMENT = 1 << 17


def mutate(rng: random.Random, text: str, most: int = 4, longest: int = MAX_CASE) -> str:
    """``text`` changed by one to ``most`` mutators, cut to ``longest`` characters."""
    for _ in range(rng.randint(1, most)):
        text = rng.choice(MUTATORS)(rng, text)[:longest]
    return text


# --- seeds ---------------------------------------------------------------------------------------

EXTRA_YAML = """\
name: odd
concurrency: 2
error_strategy: continue
defaults: &d {handler: "examples.loops:plan"}
loops:
  plan: *d
  sh: {command: "echo {}"}
stages:
  - &base
    name: a
    loop: plan
    timeout: 1s
    retry: {max_attempts: 3, backoff: {initial: 1s, factor: 2, max: 10s}}
    triggers: [{manual: {approval_required: false}}]
    inputs: {x: {from: "request.x", required: false}}
  - <<: *base
    name: b
    loop: sh
    trigger_mode: any
    triggers:
      - on_condition: {expression: "stages.a.outputs.n > 1"}
      - on_event: {type: go, filter: "event.k in ['a', 'b']"}
      - manual: {approval_required: true, timeout: 1h}
"""


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    if isinstance(value, dict):
        pairs = (f"{json.dumps(key)} = {_toml_value(item)}" for key, item in value.items())
        return "{" + ", ".join(pairs) + "}"
    return json.dumps(str(value), ensure_ascii=False)


def _yaml_seeds() -> tuple[str, ...]:
    return (EXAMPLE.read_text(encoding="utf-8"), EXTRA_YAML)


def _plain_seeds() -> list[dict[str, Any]]:
    return [yaml.safe_load(text) for text in _yaml_seeds()]


SEEDS: dict[str, Callable[[], tuple[str, ...]]] = {
    "yaml": _yaml_seeds,
    "json": lambda: tuple(json.dumps(data, indent=1) for data in _plain_seeds()),
    "toml": lambda: tuple(
        "\n".join(f"{key} = {_toml_value(item)}" for key, item in data.items())
        for data in _plain_seeds()
    ),
}


# --- targets -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """One entry point: ``make`` builds a case from a random source; ``run`` feeds it to the
    code, raising only the ``allowed`` errors when the code is right."""

    make: Callable[[random.Random], Any]
    run: Callable[[Any], None]
    allowed: tuple[type[BaseException], ...]


def _encodable(text: str) -> None:
    """What a command would print must be UTF-8: stdout is strict (``dag`` of a file whose
    names hold a lone surrogate)."""
    text.encode("utf-8")


def _pipeline_target(fmt: Literal["yaml", "json", "toml"]) -> Target:
    seeds: list[str] = []

    def make(rng: random.Random) -> str:
        if not seeds:
            seeds.extend(SEEDS[fmt]())
        return mutate(rng, rng.choice(seeds))

    def run(text: str) -> None:
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:  # no file holds it: ``load_pipeline`` reads UTF-8 only
            return
        try:
            pipeline = parse_pipeline(text, fmt=fmt, source=f"fuzz.{fmt}", registered_loops=())
        except ConfigError as error:
            str(error)  # what ``validate`` prints (stderr escapes what UTF-8 cannot hold)
            raise
        for render in (render_dot, render_json, render_mermaid):
            _encodable(render(pipeline))

    return Target(make, run, (ConfigError,))


CEL_ATOMS = (
    "request",
    "stages",
    "event",
    "result",
    "request.a",
    "stages.a.outputs.n",
    "event.k",
    "request['a']",
    "request[0]",
    "0",
    "-1",
    "9223372036854775807",
    "9223372036854775808",
    "-9223372036854775808",
    "18446744073709551615u",
    "18446744073709551616u",
    "0x7fffffffffffffff",
    "1e308",
    "1e309",
    ".5",
    "'a'",
    "'\\u0301'",
    "'\\xff'",
    "b'\\xff'",
    "'''x'''",
    'r"\\d"',
    "null",
    "true",
    "[1, 2, 3]",
    "{'a': 1}",
    "{1: 'a', true: 2}",
    "'²'",
)
CEL_UNARY = ("size({})", "has({}.a)", "!{}", "-{}", "({})", "int({})", "double({})", "string({})",
             "bytes({})", "dyn({})", "type({})", "uint({})", "timestamp({})", "duration({})",
             "{}.matches('(a+)+$')", "{}.startsWith('a')", "{}.contains('')",
             "{}.exists(x, x > 0)", "{}.all(x, x == x)", "{}.map(x, x * 2)",
             "{}.filter(x, x)", "{}.exists_one(x, true)", "[{}, {}]", "{{'k': {}}}")  # fmt: skip
CEL_BINARY = (" + ", " - ", " * ", " / ", " % ", " == ", " != ", " < ", " >= ", " && ",
              " || ", " in ", "[", ".")  # fmt: skip


def _cel_expression(rng: random.Random, depth: int = 0) -> str:
    roll = rng.random()
    if depth > 5 or roll < 0.3:
        return rng.choice(CEL_ATOMS)
    if roll < 0.6:
        inner = _cel_expression(rng, depth + 1)
        return rng.choice(CEL_UNARY).replace("{}", inner)
    if roll < 0.9:
        left, right = _cel_expression(rng, depth + 1), _cel_expression(rng, depth + 1)
        op = rng.choice(CEL_BINARY)
        closing = "]" if op == "[" else ""
        return left + op + right + closing
    return " ? ".join((_cel_expression(rng, depth + 1), _cel_expression(rng, depth + 1))) + (
        " : " + _cel_expression(rng, depth + 1)
    )


def _json_value(rng: random.Random, depth: int = 0) -> Any:
    roll = rng.random()
    if depth > 3 or roll < 0.5:
        return rng.choice(
            (0, -1, 2**63, -(2**63) - 1, 2**64, 0.5, 1e308, True, None, "", "a", "\ud800", "²")
        )
    if roll < 0.75:
        return [_json_value(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    return {rng.choice(("a", "n", "k", "x", "")): _json_value(rng, depth + 1) for _ in range(3)}


def _cel_target() -> Target:
    def make(rng: random.Random) -> tuple[str, dict[str, Any]]:
        source = _cel_expression(rng)
        if rng.random() < 0.3:
            source = mutate(rng, source, 2)
        context = {
            "request": {"a": _json_value(rng)},
            "stages": {"a": {"outputs": {"n": _json_value(rng)}}},
            "event": {"k": _json_value(rng)},
            "result": _json_value(rng),
        }
        return source, context

    def run(case: tuple[str, dict[str, Any]]) -> None:
        source, context = case
        try:
            expression = compile_expression(source)
        except ExpressionError as error:
            _encodable(str(error).encode("utf-8", "backslashreplace").decode())
            raise
        expression.evaluate(context)

    return Target(make, run, (ExpressionError,))


WORDS = ("90", "30s", "10m", "2h", "30d", "1h", "0", "2025-01-31T12:00", "2025-01-31T12:00Z",
         "1999-01-01", "9090", "0.5", "60", "sqlite:///tmp/x.db", "tempo://127.0.0.1:3200",
         "jaeger://h:16686", "otlp-json:///tmp/x", "dump:///tmp/x.tar.gz", "feature-delivery",
         "127.0.0.1", "console,otlp", "INFO", "json", "text", "grpc", "http/protobuf",
         "http://127.0.0.1:4318", "service.name=x,a=b", "*password*,token", "/tmp/home", "true",
         "1e3", "-1", "")  # fmt: skip


def _word(rng: random.Random) -> str:
    word = rng.choice(WORDS)
    return mutate(rng, word, 3, MAX_ARGUMENT) if rng.random() < 0.8 else word


def _durations_target() -> Target:
    def run(text: str) -> None:
        for parse in (parse_age, parse_when):
            try:
                parse(text)
            except ValueError as error:
                str(error)

    return Target(_word, run, ())


def _options_target() -> Target:
    def run(text: str) -> None:
        parsers = (
            options.whole_number,
            options.poll_interval,
            options.port_number,
            options.span_source,
            options.pipeline_name,
        )
        for parse in parsers:  # argparse turns these three errors into a usage error
            with contextlib.suppress(argparse.ArgumentTypeError, TypeError, ValueError):
                parse(text)

    return Target(_word, run, ())


def _settings_target() -> Target:
    def make(rng: random.Random) -> tuple[str, str]:

        return rng.choice(sorted(_FIELDS)), _word(rng)

    def run(case: tuple[str, str]) -> None:
        name, value = case
        try:
            load_settings(**{name: value})
        except SettingsError as error:
            str(error)
            raise

    return Target(make, run, (SettingsError,))


def _otlp_target() -> Target:
    def make(rng: random.Random) -> str:
        text = SPANS.read_text(encoding="utf-8")
        if rng.random() < 0.5:  # JSON lines: one document per line, each mutated alone
            line = json.dumps(json.loads(text))
            return "\n".join(mutate(rng, line, 2) for _ in range(rng.randint(1, 3)))
        return mutate(rng, text)

    def run(text: str) -> None:
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder, "spans.json")
            path.write_text(text, encoding="utf-8", errors="surrogatepass")
            source = OtlpJsonSource(path)
            for trace_id in (RUN_ID, "0" * 32):  # the run, and a run no span has
                try:
                    record = source.get_run(trace_id)
                except RunNotFoundError:
                    continue
                _encodable(render_dot(run=record))

    return Target(make, run, (SpanSourceError, RunNotFoundError))


def _row_seeds() -> list[tuple[str, list[Any]]]:
    """A trace id and a ``spans`` row ``(span_id, start_ns, end_ns, body)`` per span of SPANS,
    the body as the writer lays it out (``tracking._tables``) but not yet encoded."""
    spans = parse_traces(json.loads(SPANS.read_text(encoding="utf-8")))
    rows = []
    for span in spans:
        body = [
            span.parent_span_id,
            span.name,
            span.kind,
            span.status_code,
            span.status_message,
            dict(span.attributes),
            [[e.name, e.time_ns, dict(e.attributes)] for e in span.events],
            [[link.trace_id, link.span_id, dict(link.attributes)] for link in span.links],
        ]
        rows.append((span.trace_id, [span.span_id, span.start_ns, span.end_ns, body]))
    return rows


def _row_target() -> Target:
    seeds: list[tuple[str, list[Any]]] = []

    def make(rng: random.Random) -> tuple[str, list[list[Any]]]:
        if not seeds:
            seeds.extend(_row_seeds())
        rows = []
        for _, (span_id, start, end, body) in seeds:
            text = json.dumps(body, default=list)
            if rng.random() < 0.2:
                text = mutate(rng, text, 2)
            columns: list[Any] = [span_id, start, end, text]
            if rng.random() < 0.05:
                columns[rng.randrange(3)] = _json_value(rng)
            rows.append(columns)
        return seeds[0][0], rows

    def run(case: tuple[str, list[list[Any]]]) -> None:
        trace_id, rows = case
        spans = []
        for row in rows:
            try:  # what the store's readers do with a row they cannot read
                spans.append(decode_span(trace_id, row, {}))
            except (ValueError, RecursionError):
                continue
        if not spans:
            raise RunNotFoundError(trace_id)
        _encodable(render_dot(run=reconstruct_run(spans)))

    return Target(make, run, (RunNotFoundError,))


ROUTES = ("/api", "/api/runs", "/api/runs/recent", "/api/runs/{id}", "/api/runs/{id}/dag",
          "/api/runs/{id}/logs", "/api/pipelines", "/api/runs/{id}/approve/a",
          "/api/runs/{id}/reject/a", "/api/runs/{id}/events", "/api/runs/{id}/cancel",
          "/api/runs/{id}/debug", "/api/runs/{id}/debug/breakpoints",
          "/api/runs/{id}/debug/breakpoints/1", "/api/runs/{id}/debug/continue", "/healthz",
          "/readyz", "/metrics", "/")  # fmt: skip
QUERIES = ("limit=5", "status=running", "since=1h", "until=2025-01-31T12:00", "format=dot",
           "format=svg", "stage=a", "pipeline=api", "before=1", "finished=1")  # fmt: skip
BODIES = ('{"type": "go", "payload": {"k": 1}}', '{"comment": "ok"}',
          '{"reason": "no", "comment": "x"}', '{"stage": "a", "when": "start", "on": "true"}',
          '{"name": "x", "value": 1}', "")  # fmt: skip


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: str
    body: str
    content_type: str


def _http_make(rng: random.Random) -> Request:
    path = rng.choice(ROUTES)
    if rng.random() < 0.3:
        path = mutate(rng, path, 2)
    query = "&".join(rng.choice(QUERIES) for _ in range(rng.randint(0, 3)))
    if rng.random() < 0.5:
        query = mutate(rng, query, 2)
    body = rng.choice(BODIES)
    if rng.random() < 0.7:
        body = mutate(rng, body, 3)
    method = rng.choice(("GET", "GET", "POST", "POST", "PUT", "DELETE", "OPTIONS", "HEAD", "PATCH"))
    content_type = rng.choice(("application/json", "text/plain", "", "application/json; x=\x7f"))
    return Request(method, path, query, body, content_type)


#: A pipeline whose run waits for an approval: the API's requests have a run to act on.
APPROVAL = Pipeline("api", (Stage("a", "command", (Manual(approval_required=True),)),))


async def http_answers(requests: list[Request]) -> list[int]:
    """The status of each request, sent in turn with the token to a real app over an engine
    holding one run that waits for an approval."""
    statuses = []
    async with Engine() as engine:
        app = create_app(engine=engine)  # first: its watcher of the live runs sees the run start
        handle = await engine.start_run(APPROVAL, {})
        headers = {"authorization": f"Bearer {app.state.auth.token}"}
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            for request in requests:
                path = request.path.replace("{id}", handle.run_id)
                url = path + ("?" + request.query if request.query else "")
                sent = dict(headers)
                if request.content_type:
                    sent["content-type"] = request.content_type
                try:
                    answer = await client.request(
                        request.method,
                        url,
                        content=request.body.encode("utf-8", "surrogatepass"),
                        headers=sent,
                    )
                except (httpx.InvalidURL, httpx.UnsupportedProtocol, UnicodeEncodeError):
                    statuses.append(0)  # the client would not send it: nothing to test
                    continue
                statuses.append(answer.status_code)
        handle.cancel()
        await handle.wait()
    return statuses


class ServerError(Exception):
    """An answer of 500 or more."""


def _http_target() -> Target:
    def run(request: Request) -> None:
        (status,) = asyncio.run(http_answers([request]))
        if status >= 500:
            raise ServerError(status)

    return Target(_http_make, run, ())


TARGETS: dict[str, Callable[[], Target]] = {
    "yaml": lambda: _pipeline_target("yaml"),
    "json": lambda: _pipeline_target("json"),
    "toml": lambda: _pipeline_target("toml"),
    "cel": _cel_target,
    "durations": _durations_target,
    "options": _options_target,
    "settings": _settings_target,
    "otlp": _otlp_target,
    "row": _row_target,
    "http": _http_target,
}


def case(target: Target, seed: int) -> Any:
    """The case of ``seed``: the same on every machine and Python of this project."""
    return target.make(random.Random(seed))
