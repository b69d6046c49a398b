"""Start-up: each CLI command imports what it needs and nothing else (timings are measured by
``benchmarks/cli_startup.py``; this guards the import structure that makes them).

The real CLI runs in a subprocess that records ``sys.modules`` after ``main()`` returns (for
``run``, the stage's handler records it when the first stage starts), with the default settings
of a fresh ``TASKDAEMON_HOME``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import textwrap
from importlib import import_module
from pathlib import Path

import pytest
from opentelemetry import metrics as metrics_api

from cli_support import without_settings
from taskdaemon.pipeline import cli, tracking
from taskdaemon.pipeline.cli import COMMAND_MODULES, COMMANDS, build_parser
from taskdaemon.pipeline.cli.telemetry import build_telemetry
from taskdaemon.pipeline.settings import Settings, load_settings

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = "examples/feature_delivery.yaml"

#: Never loaded by these commands: the web server, exporters, the ``cel`` package's own CLI.
NEVER = (
    "uvicorn",
    "starlette",
    "prompt_toolkit",
    "cel.cli",
    "typer",
    "rich",
    "grpc",
    "opentelemetry.exporter",
    "prometheus_client",
    "taskdaemon.pipeline.server",
)
#: Nor by the commands that only read: no OTel at all, no settings model, no HTTP client.
READING = (
    *NEVER,
    "opentelemetry",
    "pydantic",
    "pydantic_settings",
    "httpx",
    "taskdaemon.pipeline.monitor",
    "taskdaemon.pipeline.tracking.writer",
)

AUDIT = textwrap.dedent(
    """
    import json, sys
    from taskdaemon.pipeline.cli import main
    try:
        code = main(sys.argv[2:])
    except SystemExit as exc:
        code = exc.code
    with open(sys.argv[1], "w") as out:
        json.dump({"code": code, "modules": sorted(sys.modules)}, out)
    """
)

PIPELINE = """\
name: startup
loops:
  mark: {handler: "startup_marker:mark"}
stages:
  - name: first
    loop: mark
    triggers:
      - manual: {approval_required: false}
"""

MARKER = """\
import json
import os
import sys


def mark(ctx):
    with open(os.environ["AUDIT_MODULES"], "w") as out:
        json.dump(sorted(sys.modules), out)
    return {}
"""


def loaded(modules: list[str], prefixes: tuple[str, ...]) -> list[str]:
    """The modules that are one of ``prefixes`` or inside one of them."""
    return [m for m in modules if any(m == p or m.startswith(p + ".") for p in prefixes)]


def environment(home: Path) -> dict[str, str]:
    """This environment without taskdaemon or OTel settings, with its own home."""
    return without_settings(TASKDAEMON_HOME=str(home))


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory with the trivial pipeline, its handler module and a home."""
    path = tmp_path_factory.mktemp("startup")
    (path / "startup.yaml").write_text(PIPELINE)
    (path / "startup_marker.py").write_text(MARKER)
    return path


@pytest.fixture(scope="module")
def run_modules(workdir: Path) -> list[str]:
    """``taskdaemon run startup.yaml`` once (which also fills the store): what its first stage
    saw imported."""
    out = workdir / "run-modules.json"
    env = {**environment(workdir / "home"), "AUDIT_MODULES": str(out)}
    done = subprocess.run(
        [sys.executable, "-m", "taskdaemon.pipeline.cli", "run", "startup.yaml", "--quiet"],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert 0 == done.returncode, done.stderr
    modules: list[str] = json.loads(out.read_text())
    return modules


def audit(argv: list[str], *, cwd: Path, home: Path) -> list[str]:
    """Run the CLI with ``argv`` in a subprocess; the modules imported when ``main()`` ended."""
    out = home.parent / "audit.json"
    done = subprocess.run(
        [sys.executable, "-c", AUDIT, str(out), *argv],
        cwd=cwd,
        env=environment(home),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    result = json.loads(out.read_text())
    assert 0 == result["code"], done.stdout + done.stderr
    modules: list[str] = result["modules"]
    return modules


@pytest.mark.slow
def test_version_imports_no_sub_command(workdir: Path) -> None:
    """``--version`` loads the parser only: no sub-command module, no pipeline model, not even
    the error classes (dataclasses, and inspect with it)."""
    modules = audit(["--version"], cwd=workdir, home=workdir / "home")
    extra = (
        "taskdaemon.pipeline.cli.",
        "taskdaemon.pipeline.model",
        "taskdaemon.pipeline.errors",
        "dataclasses",
        "yaml",
        "asyncio",
    )
    assert [] == loaded(modules, READING) + [m for m in modules if m.startswith(extra)]


@pytest.mark.slow
def test_validate_imports_neither_telemetry_nor_the_cel_cli(workdir: Path) -> None:
    """``validate`` of the example (CEL, Python handlers) loads no OTel, web server or span
    store, and of ``cel`` only its compiled core, not the package and its prompt_toolkit CLI,
    nor the CEL worker (nothing is evaluated), nor hashlib (resolving handlers needs no
    definition hash), nor ``dataclasses`` and ``inspect`` (the stage context's class is only
    imported when a stage runs), nor the settings (it reads none: ``cli._check_settings``)."""
    modules = audit(["validate", EXAMPLE], cwd=ROOT, home=workdir / "home")
    unneeded = ("taskdaemon.pipeline.tracking", "taskdaemon.pipeline.cel_worker", "pickle")
    unneeded += ("taskdaemon.pipeline.settings",)
    assert [] == loaded(modules, (*READING, *unneeded, "difflib", "hashlib"))
    assert [] == [m for m in modules if m in ("dataclasses", "inspect")]
    assert "examples.loops" in modules  # the handlers were resolved
    assert "cel.cel" in modules
    assert "cel" not in modules


COMMAND_PIPELINE = """\
name: commands
stages:
  - name: build
    loop: command
    command: "echo built"
    triggers:
      - manual: {approval_required: false}
"""


@pytest.mark.slow
def test_validate_needs_no_event_loop(workdir: Path) -> None:
    """``validate`` imports no asyncio (nor the worker threads and output capture of running
    stages) for a pipeline of command stages, with ``--no-resolve``, or for the example, whose
    handler module imports what only a running handler needs inside the handlers."""
    (workdir / "commands.yaml").write_text(COMMAND_PIPELINE)
    unneeded = (
        "asyncio",
        "taskdaemon.pipeline._threads",
        "taskdaemon.pipeline.stage_output",
        "concurrent.futures",
    )
    for argv in (
        ["validate", "commands.yaml"],
        ["validate", "--no-resolve", EXAMPLE],
        ["validate", EXAMPLE],
    ):
        cwd = workdir if argv[1] == "commands.yaml" else ROOT
        modules = audit(argv, cwd=cwd, home=workdir / "home")
        assert [] == loaded(modules, unneeded), argv


@pytest.mark.slow
def test_runs_list_and_show_read_without_otel(workdir: Path, run_modules: list[str]) -> None:
    """``runs list`` and ``runs show`` read the store without the OTel SDK, the span writer,
    the HTTP client, the pipeline model, asyncio or sockets, and without orjson and what it
    imports (uuid, platform, ``dataclasses``, ``inspect``): ``runs list`` decodes no span, and
    ``runs show`` decodes its few with the standard library (``stored_json.py``)."""
    home = workdir / "home"
    listed = subprocess.run(
        [sys.executable, "-m", "taskdaemon.pipeline.cli", "runs", "list", "--json"],
        cwd=workdir,
        env=environment(home),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    run_id = json.loads(listed.stdout)[0]["run_id"]
    for argv in (["runs", "list"], ["runs", "show", run_id]):
        modules = audit(argv, cwd=workdir, home=home)
        extra = ("taskdaemon.pipeline.model", "yaml", "asyncio", "cel", "socket")
        extra += ("orjson", "uuid", "platform", "dataclasses", "inspect")
        assert [] == loaded(modules, (*READING, *extra)), argv


@pytest.mark.slow
def test_report_reads_the_aggregates_without_otel(workdir: Path, run_modules: list[str]) -> None:
    """``report`` reads the store's aggregates without the OTel SDK: it imported it (and
    psutil, through the SDK's resources) for the span readers of the aggregates' writer side,
    which it never runs."""
    modules = audit(["report"], cwd=workdir, home=workdir / "home")
    assert [] == loaded(modules, (*READING, "psutil"))


@pytest.mark.slow
def test_dag_of_a_file_imports_no_store_and_no_live_views(workdir: Path) -> None:
    """``dag FILE`` loads neither the span store nor the live views (asyncio, engine events),
    nor the CEL worker and its subprocess module, nor orjson (nothing is encoded), nor what
    only a run's legend (html), ``--watch`` (tempfile) or the JSON format's definition hash
    (hashlib) needs, nor ``dataclasses`` and ``inspect`` (its records are ``@frozen``), nor the
    status state machines (``state.py``: the trigger codec keys its result tables by value),
    nor the settings (a file is drawn without any: ``cli._check_settings``)."""
    modules = audit(["dag", EXAMPLE], cwd=ROOT, home=workdir / "home")
    extra = (
        "taskdaemon.pipeline.settings",
        "taskdaemon.pipeline.tracking",
        "taskdaemon.pipeline.events",
        "taskdaemon.pipeline.cel_worker",
        "taskdaemon.pipeline.state",
        "asyncio",
        "subprocess",
        "orjson",
        "html",
        "tempfile",
        "hashlib",
        "dataclasses",
        "inspect",
    )
    assert [] == loaded(modules, (*READING, *extra))


@pytest.mark.slow
def test_run_starts_its_first_stage_without_server_or_exporters(run_modules: list[str]) -> None:
    """A plain ``run`` (no ``--serve``, default settings) reaches its first stage without the
    web server, any exporter, the metrics or logs SDK, httpx or pydantic. (The tracing SDK and
    the span writer load on a thread once the stage has started, ``cli/deferred.py``: a thread
    switch may let them begin before the handler's first line.)"""
    unneeded = (
        *NEVER,
        "httpx",
        "pydantic",
        "opentelemetry.sdk.metrics",
        "opentelemetry.sdk._logs",
    )
    assert [] == loaded(run_modules, unneeded)


@pytest.mark.slow
def test_run_imports_its_debug_and_dump_code_when_first_used(run_modules: list[str]) -> None:
    """A ``run`` reaches its first stage without the debugger's ops (``debug_ops``), the dump
    code (``cli/_dump_hook``) and, without breakpoints, the debugger itself (``engine/_debug``
    and its records): the control socket's ``debug`` op and the SIGUSR1 handler import them at
    their first use, ``Engine.with_debug`` when debug mode is first turned on."""
    unneeded = (
        "taskdaemon.pipeline.debug_ops",
        "taskdaemon.pipeline.cli._dump_hook",
        "taskdaemon.pipeline.engine._debug",
        "taskdaemon.pipeline.engine._debug_records",
    )
    assert [] == loaded(run_modules, unneeded)


@pytest.mark.slow
def test_run_of_a_pipeline_without_expressions_loads_no_cel(run_modules: list[str]) -> None:
    """The trivial pipeline has no CEL expression: its ``run`` reaches the first stage without
    the CEL extension (``_cel`` is imported by the first compile; a pipeline with expressions
    loads it while it is validated, as ``validate`` of the example shows)."""
    assert [] == loaded(run_modules, ("cel", "taskdaemon.pipeline._cel"))


def test_the_cel_lexer_is_compiled_by_the_first_check() -> None:
    """``cel_limits`` compiles its lexer at the first check, once, and checks with it."""
    cel_limits = import_module("taskdaemon.pipeline.cel_limits")
    cel_limits._lexer.cache_clear()
    assert cel_limits._lexer.cache_info().currsize == 0
    cel_limits.check_limits("request.n + 1 > 2")
    assert cel_limits._lexer.cache_info().currsize == 1
    with pytest.raises(cel_limits.LimitError, match="nests brackets deeper"):
        cel_limits.check_limits("(" * 200 + "1" + ")" * 200)


def test_the_debugger_names_of_the_engine_package_resolve_lazily() -> None:
    """``Breakpoint``, ``DebugSession`` and ``PausedExecution`` of the engine package are the
    classes of ``engine/_debug.py``; another unknown name is an AttributeError."""
    engine = import_module("taskdaemon.pipeline.engine")
    debug = import_module("taskdaemon.pipeline.engine._debug")
    for name in ("Breakpoint", "DebugSession", "PausedExecution"):
        assert name in engine.__all__
        assert getattr(engine, name) is getattr(debug, name)
    with pytest.raises(AttributeError, match="no_such_name"):
        engine.no_such_name  # noqa: B018


def test_commands_table_matches_what_each_module_registers() -> None:
    """``COMMANDS`` names every sub-command each module registers, and no other."""
    for module in COMMAND_MODULES:
        parser = argparse.ArgumentParser()
        subparsers = parser.add_subparsers()
        import_module(f"taskdaemon.pipeline.cli.{module}").register(subparsers)
        expected = {name for name, home in COMMANDS.items() if home == module}
        assert expected == set(subparsers.choices), module


@pytest.mark.parametrize(
    "argv",
    [
        ["run", "x.yaml", "--input", "a=1", "-q"],
        ["validate", "a.yaml", "b.yaml", "--no-resolve"],
        ["runs", "list", "--limit", "3", "--json"],
        ["runs", "show", "abcd"],
        ["retention", "--keep", "2"],
        ["dag", "x.yaml", "--format", "mermaid"],
        ["approve", "abcd", "release", "--reject"],
        ["status", "abcd"],
        ["serve", "--port", "0"],
    ],
)
def test_the_lazy_parser_parses_as_the_full_one(argv: list[str]) -> None:
    """The parser built for one command line gives the same arguments as the full parser."""
    assert vars(build_parser().parse_args(argv)) == vars(build_parser(argv).parse_args(argv))


def help_texts() -> dict[str, str]:
    """``--help`` of the top level and of every sub-command, as the full parser prints them."""
    parser = build_parser()
    texts = {"": parser.format_help()}
    for action in parser._subparsers._group_actions:  # type: ignore[union-attr]
        for name, sub in action.choices.items():
            texts[name] = sub.format_help()
    return texts


@pytest.mark.parametrize("columns", [None, "40", "100", "0", "wide"])
def test_help_is_formatted_as_argparse_formats_it(
    columns: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The parser's own width lookup (no shutil) gives every help text the width argparse's
    would, with ``COLUMNS`` set, unset, zero or not a number."""
    if columns is None:
        monkeypatch.delenv("COLUMNS", raising=False)
    else:
        monkeypatch.setenv("COLUMNS", columns)
    ours = help_texts()
    monkeypatch.setattr(cli._Parser, "_get_formatter", argparse.ArgumentParser._get_formatter)
    assert ours == help_texts()


@pytest.mark.slow
def test_parsing_imports_no_shutil(workdir: Path) -> None:
    """Building the parser and parsing (``--version``, ``runs list``) imports no shutil."""
    for argv in (["--version"], ["runs", "list"]):
        modules = audit(argv, cwd=workdir, home=workdir / "home")
        assert [] == loaded(modules, ("shutil",)), argv


def test_help_and_unknown_commands_still_list_every_command(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``--help`` lists every sub-command and an unknown one is refused with all choices."""
    for argv in (["--help"], ["bogus"]):
        with pytest.raises(SystemExit):
            build_parser(argv).parse_args(argv)
    output = capsys.readouterr()
    for name in COMMANDS:
        assert name in output.out
        assert name in output.err


def test_every_tracking_name_resolves_lazily() -> None:
    """Each name of ``tracking.__all__`` resolves to the object of its home module."""
    for name in tracking.__all__:
        value = getattr(tracking, name)
        home = import_module(f"taskdaemon.pipeline.tracking.{tracking._HOMES[name]}")
        assert getattr(home, name) is value, name
    with pytest.raises(AttributeError, match="no_such_name"):
        tracking.no_such_name  # type: ignore[attr-defined]  # noqa: B018


@pytest.mark.slow
def test_the_cel_package_imported_later_shares_the_core() -> None:
    """After taskdaemon loaded the CEL core alone, ``import cel`` works and uses the same
    extension (one set of types, one initialisation)."""
    code = textwrap.dedent(
        """
        import sys
        from taskdaemon.pipeline._cel import cel as core
        from taskdaemon.pipeline.expressions import compile_expression
        assert "cel" not in sys.modules and "cel.cli" not in sys.modules
        assert compile_expression("request.n + 1").evaluate({"request": {"n": 2}}) == 3
        import cel
        assert cel.compile is core.compile and cel.Context is core.Context
        print(cel.evaluate("1 + 2"))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert "3" == done.stdout.strip(), done.stderr


@pytest.fixture
def quiet_settings(tmp_path: Path) -> Settings:
    """Default settings (``prometheus`` metrics, no exporters) over a temporary home."""
    return load_settings(home=tmp_path)


def test_telemetry_without_served_metrics_builds_no_reader(quiet_settings: Settings) -> None:
    """With ``serve_metrics=False`` the Prometheus reader is skipped and, with no other metric
    exporter, the meter provider is the API's no-op one; shutdown still succeeds."""
    telemetry = build_telemetry(quiet_settings, serve_metrics=False)
    try:
        assert telemetry.registry is None
        assert not telemetry.serves_prometheus
        assert isinstance(telemetry.meter_provider, metrics_api.NoOpMeterProvider)
    finally:
        assert telemetry.shutdown(timeout=5.0)


def test_telemetry_serving_metrics_keeps_the_prometheus_reader(quiet_settings: Settings) -> None:
    """By default (a server will scrape) the Prometheus reader and its registry are built."""
    telemetry = build_telemetry(quiet_settings)
    try:
        assert telemetry.registry is not None
        assert telemetry.serves_prometheus
        assert not isinstance(telemetry.meter_provider, metrics_api.NoOpMeterProvider)
    finally:
        assert telemetry.shutdown(timeout=5.0)


def imported_by(code: str) -> list[str]:
    """The modules loaded in a fresh interpreter after running ``code``."""
    script = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    modules: list[str] = json.loads(done.stdout)
    return modules


@pytest.mark.slow
def test_the_engine_loads_no_run_record_classes() -> None:
    """Importing the engine (what ``run`` does before its first stage) builds none of the
    record classes a reader of stored runs needs: ``run_state`` imports them where used."""
    modules = imported_by("import taskdaemon.pipeline.engine")
    assert [] == loaded(modules, ("taskdaemon.pipeline.records", "orjson"))


@pytest.mark.slow
def test_the_run_path_loads_no_otel_secrets_difflib_or_cel_worker() -> None:
    """What ``run`` imports before its first stage (the command, the engine, the telemetry
    stand-in, the file reader) loads neither the OTel API, nor ``secrets`` (run ids come
    from ``os.urandom``), nor difflib (suggestions for wrong names only), nor the CEL worker
    and pickle (isolated expressions only), nor orjson with its uuid and platform, nor hashlib
    (the payload capture's, used once monitoring has begun)."""
    modules = imported_by(
        "import taskdaemon.pipeline.cli.run, taskdaemon.pipeline.engine, "
        "taskdaemon.pipeline.cli.deferred_start, taskdaemon.pipeline.config"
    )
    unneeded = ("opentelemetry", "secrets", "random", "hmac", "difflib", "pickle")
    unneeded += ("orjson", "uuid", "platform", "hashlib")
    assert [] == loaded(modules, (*unneeded, "taskdaemon.pipeline.cel_worker"))


@pytest.mark.slow
def test_redaction_compiles_its_value_shapes_on_first_use() -> None:
    """Importing ``redaction`` does not compile the value-shape pattern; the first text that
    may hold a secret does, and is still redacted."""
    code = textwrap.dedent(
        """
        from taskdaemon.pipeline import redaction, secret_shapes
        before = secret_shapes.shapes.cache_info().currsize
        text = redaction.redact_text("password=hunter2 and no more")
        print(before, secret_shapes.shapes.cache_info().currsize, text)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert "0 1 password=[REDACTED] and no more" == done.stdout.strip()


def test_key_and_description_patterns_are_compiled_on_first_use() -> None:
    """Importing ``redaction`` and ``telemetry_codec`` compiles none of their key-word and
    trigger-description patterns (``re``'s cache stays free of them); the first secret key
    and the first old-schema description compile them, and are still read right."""
    code = textwrap.dedent(
        """
        import re
        from taskdaemon.pipeline import redaction, telemetry_codec
        def ours():
            return sorted(str(key[1])[:12] for key in re._cache if "(?:" in str(key[1])
                          or "on event" in str(key[1]) or "A-Za-z0-9]+" in str(key[1]))
        before = ours()
        redacted = redaction.redact({"X-Api-Key": "k", "passed": True})
        trigger = telemetry_codec.trigger_from_description("on event deploy if x > 1")
        print(before, redacted, trigger.event_type, trigger.filter, len(ours()) >= 3)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    expected = "[] {'X-Api-Key': '[REDACTED]', 'passed': True} deploy x > 1 True"
    assert expected == done.stdout.strip()


@pytest.mark.slow
def test_log_filter_loads_no_otel_and_reads_spans_once_it_is_loaded(tmp_path: Path) -> None:
    """The log filter stamps records without importing the OTel API (``run`` logs before its
    telemetry loads); once a span is current, it stamps that span's ids."""
    code = textwrap.dedent(
        """
        import io, json, logging, sys
        from taskdaemon.pipeline.logs import configure_logging
        from taskdaemon.pipeline.settings import load_settings
        out = io.StringIO()
        configure_logging(load_settings(log_format="json"), stream=out)
        logging.getLogger("probe").warning("before")
        loaded = sorted(m for m in sys.modules if m.startswith("opentelemetry"))
        from opentelemetry.sdk.trace import TracerProvider
        with TracerProvider().get_tracer("probe").start_as_current_span("s") as span:
            logging.getLogger("probe").warning("inside")
            ids = format(span.get_span_context().span_id, "016x")
        before, inside = (json.loads(line) for line in out.getvalue().splitlines())
        print(json.dumps([loaded, before.get("span_id"), inside.get("span_id") == ids]))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env=environment(tmp_path / "home"),
    )
    assert [[], None, True] == json.loads(done.stdout)
