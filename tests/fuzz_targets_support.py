"""The fuzzer's targets past the input readers of ``fuzz_support``: debug dumps read back by
the commands, Tempo's and Jaeger's answers, the debug prompt's
commands and the control socket's requests over a real run, the step prompt's commands over a
recorded one (``replay --step``), and the command line itself (docs/input-limits.md, "Fuzzing").
:data:`TARGETS` holds every target, these and ``fuzz_support``'s.

The commands run in-process (``cli.main``) with their output captured, in a temporary home and
working directory: the oracle is that nothing escapes ``main`` but ``SystemExit`` and that no
traceback is written. Every path a case names lies in its own temporary directory (the
campaign runs as whoever runs it, root included): a directory, a fifo with a writer that never
writes, links to ``/dev/zero`` and ``/dev/null``, and a real dump whose run the commands read.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import hashlib
import io
import json
import os
import random
import sys
import tarfile
import tempfile
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import httpx

import fuzz_support
from fuzz_support import MAX_ARGUMENT, ODD, RUN_ID, SPANS, Target, mutate
from pipeline_engine_support import Resolver, after, pipeline, stage
from taskdaemon.pipeline.cli import build_parser, main
from taskdaemon.pipeline.cli._debug_prompt import DebugPrompt
from taskdaemon.pipeline.control import ControlServer
from taskdaemon.pipeline.debug_ops import DebugOps
from taskdaemon.pipeline.dump import write_dump
from taskdaemon.pipeline.engine import Engine
from taskdaemon.pipeline.errors import PipelineError, RunNotFoundError, SpanSourceError
from taskdaemon.pipeline.model import InputMapping
from taskdaemon.pipeline.tracking import JaegerSource, TempoSource
from taskdaemon.pipeline.tracking.otlp_json import parse_traces
from taskdaemon.pipeline.visualization import render_dot

FIXTURES = Path(__file__).resolve().parent / "fixtures"


class CommandBrokeError(Exception):
    """A command let an exception escape, or wrote a traceback."""


def one_line(error: str) -> None:
    """An error as the commands print it: one line of UTF-8."""
    if "\n" in error or "\r" in error or not error.strip():
        raise CommandBrokeError(f"not a one-line error: {error!r:.300}")
    error.encode("utf-8")


# --- JSON documents reshaped ---------------------------------------------------------------------

#: What a node of a document is replaced with: each type at each key, and the values readers
#: have tripped on (a lone surrogate is written escaped, as json.dumps writes it).
ODD_VALUES: tuple[Any, ...] = (
    None, True, 0, -1, 2**63, -(2**63) - 1, 2**64, 10**400, 0.5, 1e308, float("nan"),
    float("inf"), "", "x", "\ud800", "²", "9" * 30, "-1", "1e400", "\x00", "\u2028", [], {},
    [[[[]]]], {"": None}, ["a", 1], {"a": {"b": [1]}},
)  # fmt: skip


def _nodes(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield path
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _nodes(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _nodes(item, (*path, index))


def _set(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    value[path[0]] = _set(value[path[0]], path[1:], new)
    return value


def reshape(rng: random.Random, document: Any, most: int = 3) -> Any:
    """``document`` (a copy) with one to ``most`` nodes replaced: by an odd value, a deep
    nest, a copy of another node, or nothing (the key or item removed)."""
    document = json.loads(json.dumps(document))
    for _ in range(rng.randint(1, most)):
        paths = list(_nodes(document))
        path = rng.choice(paths)
        roll = rng.random()
        if roll < 0.6:
            new = rng.choice(ODD_VALUES)
        elif roll < 0.7:
            new = json.loads("[" * 90 + "]" * 90)
        elif roll < 0.85:
            new = _get(document, rng.choice(paths))
        elif path:
            parent = _get(document, path[:-1])
            del parent[path[-1]]
            continue
        else:
            new = {}
        document = _set(document, path, json.loads(json.dumps(new)))
    return document


def _get(value: Any, path: tuple[Any, ...]) -> Any:
    for key in path:
        value = value[key]
    return value


def mutated_json(rng: random.Random, text: str) -> str:
    """A JSON text changed as a document (:func:`reshape`) or as text (``mutate``)."""
    if rng.random() < 0.6:
        with contextlib.suppress(ValueError, RecursionError):  # a text mutated before
            return json.dumps(reshape(rng, json.loads(text)))
    return mutate(rng, text, 3)


# --- the command line, in-process ------------------------------------------------------------


@contextlib.contextmanager
def scratch() -> Iterator[Path]:
    """A temporary folder made the working directory and ``TASKDAEMON_HOME`` (``home``), with
    ``dir``, ``fifo`` (held open for writing, never written), ``zero``, ``null`` and a real dump,
    ``run.tar.gz``, in it. ``sys.path`` is put back too: ``run`` and ``validate`` put the
    working directory on it, as the command does for its handlers."""
    saved_cwd, saved_home = os.getcwd(), os.environ.get("TASKDAEMON_HOME")
    saved_path = list(sys.path)
    with tempfile.TemporaryDirectory(prefix="td-fz-", dir="/tmp") as folder:
        root = Path(folder)
        (root / "home").mkdir(mode=0o700)
        (root / "dir").mkdir()
        os.mkfifo(root / "fifo")
        writer = os.open(root / "fifo", os.O_RDWR | os.O_NONBLOCK)
        (root / "zero").symlink_to("/dev/zero")
        (root / "null").symlink_to("/dev/null")
        (root / "run.tar.gz").write_bytes(_archive(_dump_members()))  # a run to read
        os.chdir(root)
        os.environ["TASKDAEMON_HOME"] = str(root / "home")
        try:
            yield root
        finally:
            os.close(writer)
            os.chdir(saved_cwd)
            sys.path[:] = saved_path
            if saved_home is None:
                os.environ.pop("TASKDAEMON_HOME", None)
            else:
                os.environ["TASKDAEMON_HOME"] = saved_home


def run_command(argv: list[str], stdin: str = "") -> tuple[int, str]:
    """``taskdaemon ARGV`` in-process, reading ``stdin`` (``replay --step``'s commands): its
    exit code and its output (stdout, then stderr); CommandBrokeError when an exception escapes
    or a traceback is written."""
    out, err = io.StringIO(), io.StringIO()
    saved = sys.stdin
    sys.stdin = io.StringIO(stdin)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(argv)
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 1
    except Exception as error:
        raise CommandBrokeError(f"{argv!r}: {type(error).__name__}: {error}") from error
    finally:
        sys.stdin = saved
    shown = out.getvalue() + err.getvalue()
    if "Traceback (most recent call last)" in shown:
        raise CommandBrokeError(f"{argv!r} wrote a traceback: {shown[-2000:]}")
    shown.encode("utf-8", "surrogateescape")  # stdout writes back what argv read
    return code, shown


# --- debug dumps ---------------------------------------------------------------------------------

_DUMP: dict[str, bytes] = {}


def _dump_members() -> dict[str, bytes]:
    """The members of a real dump of SPANS' run (made once)."""
    if not _DUMP:
        spans = parse_traces(json.loads(SPANS.read_text(encoding="utf-8")))
        with tempfile.TemporaryDirectory() as folder:
            path = write_dump(Path(folder, "run.tar.gz"), RUN_ID, spans)
            with tarfile.open(path, "r:gz") as archive:
                for member in archive:
                    stream = archive.extractfile(member)
                    assert stream is not None
                    _DUMP[member.name] = stream.read()
    return _DUMP


def _archive(members: dict[str, bytes]) -> bytes:
    raw = io.BytesIO()
    with (
        gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as zipped,
        tarfile.open(fileobj=zipped, mode="w") as archive,
    ):
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o600
            archive.addfile(info, io.BytesIO(data))
    return raw.getvalue()


def _dump_make(rng: random.Random) -> bytes:
    members = dict(_dump_members())
    for _ in range(rng.randint(1, 2)):
        name = rng.choice(("manifest.json", "spans.otlp.json", "spans.otlp.json", "logs.otlp.json"))
        text = members[name].decode("utf-8", "surrogatepass")
        members[name] = mutated_json(rng, text).encode("utf-8", "surrogatepass")
    manifest = members["manifest.json"]
    if rng.random() < 0.8:  # the hashes made again: else the manifest stops most cases
        with contextlib.suppress(ValueError, TypeError, KeyError, AttributeError, RecursionError):
            data = json.loads(manifest)
            for name in ("spans.otlp.json", "logs.otlp.json"):
                digest = hashlib.sha256(members[name]).hexdigest()
                data["files"][name]["sha256"] = digest
            manifest = json.dumps(data).encode()
    members["manifest.json"] = manifest
    archive = bytearray(_archive(members))
    if rng.random() < 0.1:
        archive[rng.randrange(len(archive))] ^= 1 << rng.randrange(8)
    return bytes(archive)


#: What reads a dump back: ``{url}`` is its ``dump://`` URL.
DUMP_COMMANDS = (
    ("runs", "show", RUN_ID, "--source", "{url}"),
    ("runs", "show", "--json", RUN_ID[:6], "--source", "{url}"),
    ("runs", "list", "--source", "{url}"),
    ("dag", "--run", RUN_ID, "--source", "{url}", "--format", "json"),
    ("logs", RUN_ID, "--source", "{url}"),
    ("replay", RUN_ID, "--dry-run", "--source", "{url}"),
    ("replay", RUN_ID, "--step", "--source", "{url}"),
    ("report", "--source", "{url}"),
    ("report", "--source", "{url}", "--since", "1900-01-01", "--format", "html"),
)


def _dump_run(data: bytes) -> None:
    with scratch() as root:
        path = root / "run.tar.gz"
        path.write_bytes(data)
        for command in DUMP_COMMANDS:
            run_command([word.replace("{url}", f"dump://{path}") for word in command])


# --- Tempo and Jaeger answers --------------------------------------------------------------------


def _fixture(name: str) -> str:
    return (FIXTURES / name).read_text(encoding="utf-8")


#: Per backend: (the answer of a trace by id, of a search) recorded, the source's class.
BACKENDS: dict[str, tuple[tuple[str, ...], tuple[str, ...], type[Any]]] = {
    "tempo": (
        ("tempo/api_v2_traces_response.json", "tempo/api_v1_traces_batches_fixture.json",
         "tempo/jsonpb_resourceSpans_trace-with-virtual-nodes.json"),
        ("tempo/api_search_traceql_response.json",),
        TempoSource,
    ),
    "jaeger": (
        ("jaeger/api_v3_trace_128bit.json", "jaeger/api_v3_trace_64bit.json",
         "jaeger/grpc_gateway_trace_stream.jsonl", "jaeger/grpc_gateway_stream_error.jsonl"),
        ("jaeger/api_v3_find_traces.json", "jaeger/api_v3_not_found.txt",
         "jaeger/api_v3_bad_request.txt"),
        JaegerSource,
    ),
}  # fmt: skip


def _answer(rng: random.Random, names: tuple[str, ...]) -> tuple[int, str, str]:
    text = _fixture(rng.choice(names))
    try:
        json.loads(text)
        text = mutated_json(rng, text)
    except ValueError:  # JSON lines, or an error's text
        text = mutate(rng, text, 3)
    status = rng.choice((200, 200, 200, 200, 404, 400, 302, 500))
    kind = rng.choice(("application/json", "text/plain; charset=utf-8", "application/x-ndjson"))
    return status, kind, text


def _backend_target(name: str) -> Target:
    traces, searches, source_class = BACKENDS[name]
    ids: list[str] = []

    def make(rng: random.Random) -> tuple[tuple[int, str, str], tuple[int, str, str]]:
        return _answer(rng, traces), _answer(rng, searches)

    def run(case: tuple[tuple[int, str, str], tuple[int, str, str]]) -> None:
        if not ids:  # the trace ids of the recorded answers
            for fixture in traces:
                with contextlib.suppress(ValueError):
                    ids.extend({s.trace_id for s in parse_traces(json.loads(_fixture(fixture)))})

        def answer(request: httpx.Request) -> httpx.Response:
            is_search = request.url.path in ("/api/search", "/api/v3/traces")
            status, kind, text = case[1] if is_search else case[0]
            headers = {"content-type": kind, "location": "http://elsewhere/"}
            # A stream, as a network answer comes: ``content=`` would be read (and inflated)
            # by httpx as the response is made, a path no real backend's answer takes.
            body = httpx.ByteStream(text.encode("utf-8", "surrogatepass"))
            return httpx.Response(status, stream=body, headers=headers)

        source = source_class(
            "http://127.0.0.1:9", transport=httpx.MockTransport(answer), retries=1
        )
        with source:
            for call in (
                lambda: source.search(limit=5),
                *(lambda i=i: source.get_run(i) for i in ids),
            ):
                try:
                    found = call()
                except (SpanSourceError, RunNotFoundError) as error:
                    one_line(str(error))
                    continue
                if not isinstance(found, list):
                    render_dot(run=found).encode("utf-8")

    return Target(make, run, ())


# --- the debug prompt and the control socket, over a real run ------------------------------------

DEBUGGED = pipeline(
    stage("a"),
    stage("b", *after("a"), inputs=(InputMapping("n", "request.n"),)),
    stage("c", *after("a")),
)


@contextlib.asynccontextmanager
async def paused_debug_server() -> AsyncIterator[ControlServer]:
    """A run of DEBUGGED paused before ``a``, and a ControlServer of it with DebugOps (not
    started: a target sends it lines, or starts it for its socket); the run is cancelled and
    waited for on the way out."""
    async with Engine(resolver=Resolver()) as engine:
        session = engine.with_debug(True)
        session.set_breakpoint("a", None, "start")
        handle = await engine.start_run(DEBUGGED, {"n": 1})
        ops = DebugOps(engine, handle.run_id)
        try:
            yield ControlServer(handle.run_id, handle, extra_ops={"debug": ops})
        finally:
            engine.with_debug(False)
            handle.cancel()
            await handle.wait()


def debug_conversation(
    lines: Iterable[bytes], prompt: str | None
) -> tuple[list[dict[str, Any]], str]:
    """A run of DEBUGGED paused before ``a``, served by a ControlServer with DebugOps (its
    ``handle``, as a connection's lines reach it): each of ``lines`` sent to it, then the
    ``prompt``'s commands (when given) typed at a DebugPrompt driving it. The answers to
    ``lines``, as the client reads them, and what the prompt printed; CommandBrokeError when
    the prompt broke."""

    async def converse() -> tuple[list[dict[str, Any]], str]:
        async with paused_debug_server() as server:
            loop = asyncio.get_running_loop()
            answers, shown = [], ""
            for line in lines:
                answer = await server.handle(line)
                answers.append(json.loads(json.dumps(answer, default=str)))
            if prompt is not None:

                def call(request: dict[str, Any]) -> dict[str, Any]:
                    op = (
                        {"op": "cancel"}
                        if request.get("action") == "cancel"
                        else {"op": "debug", **request}
                    )
                    line = json.dumps(op).encode()
                    sent = asyncio.run_coroutine_threadsafe(server.handle(line), loop)
                    answer = json.loads(json.dumps(sent.result(60), default=str))
                    if not answer.get("ok"):
                        raise PipelineError(str(answer.get("error", "request refused")))
                    return answer

                shown = await loop.run_in_executor(None, _prompt_run, call, prompt)
            return answers, shown

    return asyncio.run(converse())


def _prompt_run(call: Callable[[dict[str, Any]], dict[str, Any]], commands: str) -> str:
    out = io.StringIO()
    debugger = DebugPrompt(call, stdin=io.StringIO(commands), stdout=out, history=None)
    try:
        debugger.run()
    except PipelineError:
        pass  # the run ended or refused: the prompt says so and leaves (as ``debug`` does)
    except Exception as error:
        raise CommandBrokeError(
            f"{type(error).__name__}: {error}; shown: {out.getvalue()[-1500:]}"
        ) from error
    out.getvalue().encode("utf-8", "surrogateescape")  # stdout writes what stdin read
    return out.getvalue()


PROMPT_LINES = ("break b", "break b if request.n > 0", "break c on failure", "break on event go",
                "b a", "where", "info breakpoints", "inputs", "inputs b", "outputs a", "logs a",
                "set b n 5", 'set b n {"k": [1, 2]}', "set b n '\"text\"'", "step", "s a",
                "continue", "c b", "skip c", "retry a", "delete", "delete 1", "delete #2",
                "inspect a", "a#0", "continue a#1", "step b#0", "help", "?", "",
                "quit")  # fmt: skip


def _prompt_make(rng: random.Random) -> str:
    lines = []
    for _ in range(rng.randint(1, 6)):
        line = rng.choice(PROMPT_LINES)
        roll = rng.random()
        if roll < 0.5:
            line = mutate(rng, line, 3, 1 << 16)
        elif roll < 0.6:
            odd, length = rng.choice(ODD), rng.choice((1, 1000, 70_000))
            line += " " + (odd * (length // len(odd) + 1))[:length]
        # Standard input reads a byte not of UTF-8 as a lone surrogate of U+DC80 to U+DCFF.
        lines.append(line.replace("\n", " ").replace("\ud800", "\udcff"))
    return "\n".join(lines) + "\n"


def _prompt_run_case(commands: str) -> None:
    with scratch():  # ``logs STAGE`` reads the home's store
        debug_conversation((), commands)


STEP_LINES = ("next", "", "n", "prev", "p", "goto 12.5s", "goto 1m30s", "goto 500ms", "g 0.004",
              "goto 3", "where", "inputs build", "outputs deploy", "logs test", "logs plan",
              "inputs gate", "help", "?", "quit", "q")  # fmt: skip


def _step_make(rng: random.Random) -> str:
    """Commands typed at ``replay --step``'s prompt, one a line, as ``_prompt_make`` makes the
    debug prompt's."""
    lines = []
    for _ in range(rng.randint(1, 8)):
        line = rng.choice(STEP_LINES)
        roll = rng.random()
        if roll < 0.5:
            line = mutate(rng, line, 3, 1 << 16)
        elif roll < 0.7:  # its argument, or one more, odd
            odd = rng.choice((*ODD, "1e300", "9" * 400 + "ms", "-0", "1e-400", "٣s", "0x1p9"))
            line = " ".join((*line.split()[:1], odd) if rng.random() < 0.7 else (line, odd))
        lines.append(line.replace("\n", " ").replace("\ud800", "\udcff"))
    return "\n".join(lines) + "\n"


def _step_run(commands: str) -> None:
    with scratch():  # its dump, ``run.tar.gz``, is the run stepped through
        source = "dump://run.tar.gz"
        run_command(["replay", RUN_ID, "--step", "--source", source], stdin=commands)


REQUESTS: tuple[dict[str, Any], ...] = (
    {"op": "status"},
    {"op": "approve", "stage": "a", "comment": "ok"},
    {"op": "reject", "stage": "a", "reason": "no"},
    {"op": "publish", "type": "go", "payload": {"k": 1}},
    {"op": "cancel"},
    *(
        {"op": "debug", "action": action, **fields}
        for action, fields in (
            ("state", {"client": "x", "pid": 1}),
            ("wait", {"timeout": 0}),
            ("continue", {"stage": "a"}),
            ("step", {}),
            ("skip", {"stage": "a"}),
            ("retry", {"stage": "a"}),
            ("set", {"stage": "b", "input": "n", "value": 2}),
            ("inspect", {"stage": "a"}),
            ("break", {"stage": "b", "when": "request.n > 0", "on": "start"}),
            ("break", {"on": "event:go"}),
            ("delete", {"id": 1}),
            ("detach", {"client": "x", "all": True}),
            ("sync", {}),
            ("dump", {"path": "x.tar.gz"}),
            ("settling", {}),
        )
    ),
)


def _control_make(rng: random.Random) -> list[bytes]:
    lines = []
    for _ in range(rng.randint(1, 4)):
        text = json.dumps(rng.choice(REQUESTS))
        if rng.random() < 0.8:
            text = mutated_json(rng, text)
        lines.append(text.encode("utf-8", "surrogatepass") + b"\n")
    return lines


def _control_run(lines: list[bytes]) -> None:
    with scratch():
        answers, _ = debug_conversation(lines, None)
    for answer in answers:
        if not isinstance(answer.get("ok"), bool):
            raise CommandBrokeError(f"an answer without ok: {answer!r:.300}")
        error = answer.get("error")
        if not answer["ok"] and not isinstance(error, str):
            raise CommandBrokeError(f"a refusal without its error: {answer!r:.300}")
        if not answer["ok"]:
            one_line(error)


# --- the command line ----------------------------------------------------------------------------

#: Commands left out: they run pipelines, serve, or follow a run until stopped.
LEFT_OUT_COMMANDS = frozenset({"run", "debug", "serve", "ui", "watch"})
LEFT_OUT_OPTIONS = frozenset({"--watch", "--follow", "-f", "--help", "-h", "--version"})

#: Argument values: numbers at and past every bound, odd text, and paths of a scratch folder.
VALUES = ("0", "-1", "1", "5", "nan", "NaN", "inf", "-inf", "1e400", "9" * 400, "-" + "9" * 30,
          "0x10", "1_000", "²", "٣", "", " ", "-", "--", "=", "a=b", "k=", "=v", "x" * 5000,
          "\u202e", "\x00", "\x1b[31m", "ﬁ", "dir", "fifo", "zero", "null", "missing.yaml",
          "dir/", "../", "sqlite://zero", "otlp-json://fifo", "dump://dir", "dump://zero",
          "dump://run.tar.gz", "dump://run.tar.gz", "dump://run.tar.gz", "run.tar.gz",
          "tempo+http://127.0.0.1:9", "jaeger+http://[::1", "file:///etc/passwd",
          "feature-delivery", "1h", "30d", "2025-01-31T12:00", "9999-12-31T23:59", "json", "text",
          "dot", "svg", "mermaid", "a", "b#1", RUN_ID, RUN_ID[:4], "0" * 32, "a,b", "DEBUG",
          "warning")  # fmt: skip


def _commands() -> dict[tuple[str, ...], Any]:
    """Each command's words (``runs list``) and its parser."""
    found: dict[tuple[str, ...], Any] = {}

    def walk(parser: Any, words: tuple[str, ...]) -> None:
        children = [
            a for a in parser._actions if isinstance(a.choices, dict) and not a.option_strings
        ]
        if not children and words:
            found[words] = parser
        for action in children:
            for name, child in action.choices.items():
                if not words and name in LEFT_OUT_COMMANDS:
                    continue
                walk(child, (*words, name))

    walk(build_parser(), ())
    return found


_PARSERS: dict[tuple[str, ...], Any] = {}


def _value(rng: random.Random, action: Any) -> str:
    if action.choices and rng.random() < 0.5:
        return str(rng.choice(list(action.choices)))
    value = rng.choice(VALUES)
    if rng.random() < 0.3:
        value = mutate(rng, value, 2, MAX_ARGUMENT)
    # No argv holds a NUL; a byte not of UTF-8 reads as a lone surrogate of U+DC80 to U+DCFF.
    return value.replace("\x00", "").replace("\ud800", "\udcff") or "''"


def _argv_make(rng: random.Random) -> list[str]:
    if not _PARSERS:
        _PARSERS.update(_commands())
    words = rng.choice(sorted(_PARSERS))
    parser = _PARSERS[words]
    argv = list(words)
    options = [
        a
        for a in parser._actions
        if a.option_strings and not set(a.option_strings) & LEFT_OUT_OPTIONS
    ]
    positionals = [a for a in parser._actions if not a.option_strings]
    for action in positionals:
        if rng.random() < 0.9:
            argv.append(_value(rng, action))
    for _ in range(rng.randint(0, 4)):
        if not options:
            break
        action = rng.choice(options)
        option = rng.choice(action.option_strings)
        if action.nargs == 0:
            argv.append(option)
        elif rng.random() < 0.5:
            argv.append(f"{option}={_value(rng, action)}")
        else:
            argv.extend((option, _value(rng, action)))
    if "replay" in words and "--dry-run" not in argv and "--step" not in argv:
        argv.append("--dry-run")  # never a replay that runs the recorded commands
    return argv


def _argv_run(argv: list[str]) -> None:
    with scratch():
        run_command(argv)


TARGETS: dict[str, Callable[[], Target]] = {
    **fuzz_support.TARGETS,
    "dump": lambda: Target(_dump_make, _dump_run, ()),
    "tempo": lambda: _backend_target("tempo"),
    "jaeger": lambda: _backend_target("jaeger"),
    "prompt": lambda: Target(_prompt_make, _prompt_run_case, ()),
    "step": lambda: Target(_step_make, _step_run, ()),
    "control": lambda: Target(_control_make, _control_run, ()),
    "argv": lambda: Target(_argv_make, _argv_run, ()),
}
