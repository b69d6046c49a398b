"""Hostile input a fuzzer found (``tests/fuzz_support.py``, run at length by
``scripts/fuzz.py``): each defect's regression through the real command, asserting its one-line
error and exit status, and a fixed slice of the fuzzer's cases for every target, so that CI
keeps exercising what the readers were fuzzed with.

The slice is deterministic: a case is a function of its seed (``random.Random(seed)``, whose
sequence Python keeps stable), the seeds are fixed, and no case depends on time.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from cli_support import TASKDAEMON, taskdaemon, write
from fuzz_wire_support import TARGETS, failures
from pipeline_tracking_support import Backend, serve
from taskdaemon.pipeline.bounded import BoundedInputError, loads_bounded
from taskdaemon.pipeline.dump import write_dump
from taskdaemon.pipeline.quoting import quote
from taskdaemon.pipeline.tracking.otlp_json import parse_traces

#: Cases per target in the suite's slice (seeds from 0): about a second each on the CI machine.
SLICE = {"yaml": 200, "json": 300, "toml": 300, "cel": 300, "durations": 300, "options": 300,
         "settings": 300, "otlp": 60, "row": 200, "http": 100, "dump": 30, "store": 20,
         "tempo": 150, "jaeger": 150, "prompt": 150, "control": 300, "argv": 150,
         "report": 20, "web": 10, "api": 100, "env": 30, "step": 20, "wire": 4,
         "socket": 4}  # fmt: skip
#: The seeds whose cases found a defect (the commits of this file's regressions), kept in the
#: slice: 588 ``!!float`` of nothing, 624 ``!!timestamp``, 686 ``x[[a]`` as a redact pattern,
#: 1583 an escaped lone surrogate in a span name, 1841 a 5,000-digit number in a span file,
#: 102323 a key of 20,000 ``[``, 115311 a timeout of 5,000 nines, 112857 redact patterns nested
#: 2,000 deep, 383126 a stored approval timeout of inf; dump 101005 a number where a dump's log
#: records go, 200416 an event timed before every span (``replay --step``), 301135 a queue time
#: of ``Infinity``; jaeger 101281 a ``doubleValue`` of 401 digits; tempo 204780 a search result
#: starting at ``1e400``; argv 324 a remote source's host with an empty label; web 195 a
#: redirect (``/runs/ID/`` to ``/runs/ID``) repeating ``?token=``, 2126 a ``Host`` of ``[::1]``
#: and a port of brackets, allowed and written into a redirect; env 1490 an OTLP endpoint's
#: password quoted by its refusal (``httu:PASSWORD@host``), 4790 ``dump`` under a home of a
#: name too long, 40027 a ``dump://`` file of a name too long, 47929 a Tempo host the HTTP client
#: refuses (``127.\ufeff&1``), 90210 a span store's "no run" line naming a home with ``ESC``;
#: step 229 ``goto 1e300``; socket 35 an unknown op of 70,000 characters, sent back whole.
FOUND = {"yaml": (588, 624), "json": (102323, 115311), "settings": (686, 112857),
         "otlp": (1583, 1841), "row": (383126,), "dump": (101005, 200416, 301135),
         "jaeger": (101281,), "tempo": (204780,), "argv": (324,), "web": (195, 2126),
         "env": (1490, 4790, 40027, 47929, 90210), "step": (229,), "socket": (35,)}  # fmt: skip

SPANS = Path(__file__).parent / "fixtures" / "spans" / "schema2_run.json"
RUN_ID = "f22c00fc74d48b4f2875f0a81ee3a83a"  # the run of SPANS


@pytest.mark.slow
@pytest.mark.parametrize(
    ("text", "issue"),
    [
        ("concurrency: !!float", "2: concurrency: invalid float value: ''"),
        ("concurrency: !!int +", "2: concurrency: invalid int value: '+'"),
        ("concurrency: !!bool x", "2: concurrency: invalid bool value: 'x'"),
        ("concurrency: !!timestamp x", "2: concurrency: invalid timestamp value: 'x'"),
        # an alias: read from the parser's events (yaml_graph), not from composed nodes
        ("d: &d {k: 1}\nconcurrency: !!bool x\nx: *d", "3: concurrency: invalid bool value: 'x'"),
    ],
)
def test_a_tagged_scalar_not_of_its_tag_is_one_issue(
    home: Path, tmp_path: Path, text: str, issue: str
) -> None:
    """PyYAML's constructor fails on such a scalar with IndexError, KeyError or AttributeError,
    which were tracebacks (exit 1); each is now an issue naming the value, exit 2."""
    path = write(tmp_path / "tagged.yaml", f"name: x\n{text}\nstages: []\n")
    done = taskdaemon(home, "validate", "--no-resolve", str(path))
    output = done.stdout + done.stderr
    assert (2, True, False) == (done.returncode, f"{path}:{issue}" in output, "Traceback" in output)


def test_a_json_number_of_too_many_digits_is_a_bounded_input_error() -> None:
    """Python refuses int() of more than 4,300 digits with a plain ValueError from inside the
    decoder, which got past every caller catching BoundedInputError."""
    with pytest.raises(BoundedInputError, match=r"^a number of more than 4300 digits$"):
        loads_bounded('{"n": ' + "9" * 5000 + "}")


@pytest.mark.slow
def test_a_span_file_holding_a_huge_number_is_one_line(home: Path, tmp_path: Path) -> None:
    """``runs list`` of an OTLP-JSON file holding such a number ended in a traceback."""
    path = write(tmp_path / "spans.json", '{"resourceSpans": [], "n": ' + "9" * 5000 + "}\n")
    done = taskdaemon(home, "runs", "list", "--source", f"otlp-json://{path}")
    assert (1, [f"taskdaemon runs list: {path}: a number of more than 4300 digits"]) == (
        done.returncode,
        (done.stdout + done.stderr).splitlines(),
    )


def test_an_escaped_lone_surrogate_is_refused_and_a_pair_is_read() -> None:
    """``\\ud800`` decodes to a str no UTF-8 writer takes; a pair is one character."""
    assert {"k": "\U0001f600"} == loads_bounded('{"k": "\\ud83d\\ude00"}')
    with pytest.raises(BoundedInputError, match=r"^not UTF-8 \(a lone surrogate, \\udc00\)$"):
        loads_bounded('[{"a": 1}, {"k\\udc00": 2}]')


@pytest.mark.slow
def test_a_lone_surrogate_in_a_span_file_or_pipeline_is_one_line(
    home: Path, tmp_path: Path
) -> None:
    """A stage named with an escaped lone surrogate made ``dag --run`` of a span file, and
    ``dag`` of a JSON pipeline whose command held one, end in a UnicodeEncodeError traceback
    when writing stdout."""
    spans = SPANS.read_text(encoding="utf-8").replace('"plan"', '"pl\\ud800an"')
    path = write(tmp_path / "spans.json", spans)
    done = taskdaemon(home, "dag", "--run", RUN_ID, "--source", f"otlp-json://{path}")
    assert (1, [f"taskdaemon dag: {path}: not UTF-8 (a lone surrogate, \\ud800)"]) == (
        done.returncode,
        (done.stdout + done.stderr).splitlines(),
    )
    stage = {"name": "a", "loop": "command", "command": "echo \ud800"}  # json.dumps escapes it
    path = write(tmp_path / "odd.json", json.dumps({"name": "x", "stages": [stage]}))
    done = taskdaemon(home, "dag", str(path), "--format", "json")
    assert (2, [f"{path}: invalid json: not UTF-8 (a lone surrogate, \\ud800)"]) == (
        done.returncode,
        (done.stdout + done.stderr).splitlines(),
    )


@pytest.mark.slow
def test_a_redact_pattern_python_warns_about_is_an_invalid_setting(home: Path) -> None:
    """``x[[a]`` compiles with a FutureWarning, which every command wrote on stderr (two lines
    of the settings module's source) before its own output; it is now refused, exit 2."""
    done = taskdaemon(home, "runs", "list", TASKDAEMON_REDACT_PATTERNS="x[[a]")
    refusal = "invalid regular expression 'x[[a]': Possible nested set at position 2"
    assert (2, [f"taskdaemon: invalid setting TASKDAEMON_REDACT_PATTERNS: {refusal}"]) == (
        done.returncode,
        (done.stdout + done.stderr).splitlines(),
    )


def test_the_slice_covers_every_target() -> None:
    assert sorted(TARGETS) == sorted(SLICE)


@pytest.mark.slow
@pytest.mark.usefixtures("cel_worker")
@pytest.mark.parametrize("name", sorted(SLICE))
def test_a_fixed_slice_of_fuzzed_cases_breaks_no_reader(name: str) -> None:
    """Each case ends in the reader's value or one of its documented errors, and what a
    command would print of it is UTF-8 (the oracle of fuzz_support)."""
    found = [
        (seed, repr(case)[:300], repr(error)[:300])
        for seed, case, error in failures(name, [*range(SLICE[name]), *FOUND.get(name, ())])
    ]
    assert [] == found


@pytest.mark.slow
def test_a_key_full_of_path_separators_is_read_in_bounded_memory(
    home: Path, tmp_path: Path
) -> None:
    """An unknown key of 80,000 ``[`` (an 80 KB file) was split into 80,000 ancestor paths of
    up to 80 KB each: 6 GB and 47 s. Under 1 GiB of address space it is now two issues, the
    key's path shown in its first 300 characters (it was an 80 KB line)."""
    key = "a" + "[" * 80_000
    path = write(tmp_path / "keys.json", json.dumps({"name": "x", "stages": [], key: 1}))
    limited = ("prlimit", f"--as={1024**3}", TASKDAEMON)
    done = taskdaemon(home, "validate", "--no-resolve", str(path), launcher=limited)
    expected = "name, description, concurrency, timeout, error_strategy, retry, loops, "
    expected += "external_events, stages or ignore_warnings"
    issues = [
        f"{path}: {key[:299]}…: unknown key (expected {expected})",
        f"{path}: stages: must not be empty",
    ]
    assert (2, issues) == (done.returncode, (done.stdout + done.stderr).splitlines())


@pytest.mark.slow
@pytest.mark.parametrize(
    ("timeout", "issue"),
    [
        ('"' + "9" * 400 + 's"', "must be finite, got inf"),  # float() of it is inf
        ("1" + "0" * 400, "expected a finite number, got '1" + "0" * 38 + "…'"),
    ],
)
def test_a_duration_too_long_for_a_float_is_one_issue(
    home: Path, tmp_path: Path, timeout: str, issue: str
) -> None:
    """A timeout of 400 nines was infinite, which ``dag`` could not write as a time (an
    OverflowError traceback); an integer too large for a float was a traceback of ``validate``."""
    stage = 'name: a\n    loop: command\n    command: "true"\n    triggers: [{manual: {}}]'
    path = write(tmp_path / "long.yaml", f"name: x\ntimeout: {timeout}\nstages:\n  - {stage}\n")
    done = taskdaemon(home, "dag", str(path), "--format", "json")
    assert (2, [f"{path}:2: timeout: {issue}"]) == (
        done.returncode,
        (done.stdout + done.stderr).splitlines(),
    )


@pytest.mark.slow
def test_a_quoted_flow_key_libyaml_refuses_is_a_syntax_error(home: Path, tmp_path: Path) -> None:
    """The quick reader took a quoted key of 1,100 characters in a flow mapping, which libyaml
    refuses (a simple key is at most 1,024): reading the file's lines for an issue then ended in
    a ParserError traceback."""
    text = 'name: x\nstages: []\nx: {"' + "k" * 1100 + '": 1}\n'
    path = write(tmp_path / "key.yaml", text)
    done = taskdaemon(home, "validate", "--no-resolve", str(path))
    assert (2, [f"{path}:3: invalid yaml: expected ',' or '}}', but got ':' at column 1107"]) == (
        done.returncode,
        (done.stdout + done.stderr).splitlines(),
    )


@pytest.mark.slow
def test_redact_patterns_nested_deeply_are_an_invalid_setting(home: Path) -> None:
    """``TASKDAEMON_REDACT_PATTERNS`` of 2,000 ``[`` was decoded by ``json`` unbounded: a
    RecursionError traceback of every command."""
    done = taskdaemon(home, "runs", "list", TASKDAEMON_REDACT_PATTERNS="[" * 2000)
    refusal = "invalid JSON list: nested deeper than 100 levels"
    assert (2, [f"taskdaemon: invalid setting TASKDAEMON_REDACT_PATTERNS: {refusal}"]) == (
        done.returncode,
        (done.stdout + done.stderr).splitlines(),
    )


@pytest.mark.slow
def test_a_span_whose_approval_timeout_is_infinite_is_drawn(home: Path, tmp_path: Path) -> None:
    """A schema-2 span describing its trigger as ``manual approval (timeout 1e400s)`` gave an
    infinite timeout, which ``dag --run`` could not write (an OverflowError traceback); the
    trigger is now unknown, as any other text that is not a time, and the run is drawn."""
    spans = SPANS.read_text(encoding="utf-8").replace("(timeout 90s)", "(timeout 1e400s)")
    path = write(tmp_path / "spans.json", spans)
    done = taskdaemon(home, "dag", "--run", RUN_ID, "--source", f"otlp-json://{path}")
    assert (0, "", True) == (done.returncode, done.stderr, done.stdout.startswith("digraph"))


@pytest.mark.slow
@pytest.mark.parametrize(
    ("value", "said"),
    [
        ('"intValue": 1e400', "bad intValue 'inf'"),
        ('"doubleValue": 1' + "0" * 400, "bad doubleValue '1000"),
    ],
)
def test_an_attribute_out_of_float_range_skips_its_span(
    home: Path, tmp_path: Path, value: str, said: str
) -> None:
    """An ``intValue`` written ``1e400`` (or ``Infinity``) decodes to a float ``int()`` cannot
    take, a ``doubleValue`` of 401 digits to an int ``float()`` cannot: OverflowError, which no
    reader of spans caught (a traceback of every command reading an OTLP-JSON file, a dump,
    Tempo or Jaeger). The span is now malformed, skipped and said."""
    spans = SPANS.read_text(encoding="utf-8").replace('"intValue": "1664"', value)
    path = write(tmp_path / "spans.json", spans)
    done = taskdaemon(home, "runs", "list", "--source", f"otlp-json://{path}")
    lines = done.stderr.splitlines()
    assert (0, 1, True) == (
        done.returncode,
        len(lines),
        lines[0].startswith(f"{path}: skipped 1 malformed span") and said in lines[0],
    ), lines
    assert RUN_ID in done.stdout


@pytest.mark.slow
@pytest.mark.parametrize(
    "records",
    [
        9223372036854775808,  # a number where the list goes
        [{"scopeLogs": [{"logRecords": [
            {"traceId": RUN_ID, "timeUnixNano": "1", "attributes": 1.5,
             "body": {"stringValue": "kept"}},
            {"traceId": RUN_ID, "timeUnixNano": 1e400, "body": {"stringValue": "untimed"},
             "attributes": [{"key": "k", "value": {"intValue": 1e400}}]},
            {"traceId": RUN_ID, "timeUnixNano": "3"},  # no body
        ]}]}],
    ],
)  # fmt: skip
def test_log_records_of_a_dump_in_odd_shapes_are_skipped(
    home: Path, tmp_path: Path, records: object
) -> None:
    """``logs RUN --source dump://`` of a dump whose ``logs.otlp.json`` held a number where a
    list goes, a record without a body, an attribute or a time of ``1e400``: a TypeError,
    ValueError or OverflowError traceback. What cannot be read is now left out; what is read
    comes in the document's order (the store's), the untimed record after the one before it."""
    spans = parse_traces(json.loads(SPANS.read_text(encoding="utf-8")))
    logs = {"resourceLogs": records}
    path = write_dump(tmp_path / "odd.tar.gz", RUN_ID, spans, logs=logs)
    done = taskdaemon(home, "logs", RUN_ID, "--source", f"dump://{path}")
    kept = [] if isinstance(records, int) else ["kept", "untimed"]
    said = f"taskdaemon logs: no records in run {RUN_ID}\n" if isinstance(records, int) else ""
    shown = [line.split()[-1] for line in done.stdout.splitlines()]
    assert (0, said, kept) == (done.returncode, done.stderr, shown), done.stdout


@pytest.mark.slow
@pytest.mark.parametrize(
    ("argv", "code", "line"),
    [
        (("runs", "list", "--limit=--"), 2,
         "runs list: error: argument --limit: not a whole number: '--'"),
        (("runs", "show", RUN_ID, "--source=--"), 2,
         "runs show: error: argument --source: no scheme"),
        (("cancel", "1", "--home=--"), 3,
         "cancel: no run '1' is served here (no socket under --/control)"),
    ],
)  # fmt: skip
def test_an_option_whose_value_is_two_dashes_reads_it(
    home: Path, argv: tuple[str, ...], code: int, line: str
) -> None:
    """Python 3.11's argparse took ``--`` in ``--limit=--`` for the end of the options and gave
    the command an empty list as the value: a TypeError traceback at its first use."""
    done = taskdaemon(home, *argv)
    output = (done.stdout + done.stderr).splitlines()
    assert (code, 1, True) == (
        done.returncode,
        len(output),
        output[0].startswith(f"taskdaemon {line}"),
    ), output


@pytest.mark.slow
def test_delete_takes_a_breakpoint_number_of_ascii_digits(home: Path) -> None:
    """The prompt's ``delete`` read its number with ``int()``: ``delete ３`` (a full-width
    digit) or ``delete 0_1`` deleted breakpoint #1 (docs: ascii_number's rule)."""
    stage = '{name: a, command: "true", triggers: [{manual: {approval_required: false}}]}'
    path = write(home / "one.yaml", f"name: one\nstages:\n  - {stage}\n")
    commands = "delete １\ndelete 0_1\ndelete #1\nquit\n"
    done = taskdaemon(home, "debug", str(path), "--break", "a", "-q", cwd=home, stdin=commands)
    said = [line for line in done.stdout.splitlines() if "delete" in line or "error" in line]
    assert [
        "(taskdaemon) delete １",
        "error: not a breakpoint number: '１'",
        "(taskdaemon) delete 0_1",
        "error: not a breakpoint number: '0_1'",
        "(taskdaemon) delete #1",
        "deleted 1 breakpoint",
    ] == said, done.stdout


@pytest.mark.slow
@pytest.mark.parametrize("scheme", ["otlp-json", "dump"])
@pytest.mark.parametrize("kind", ["fifo", "device"])
def test_a_span_source_that_is_no_regular_file_is_refused(
    home: Path, tmp_path: Path, scheme: str, kind: str
) -> None:
    """``runs list --source otlp-json:///dev/zero`` read one endless line, growing until memory
    ran out, and a fifo (``dump://`` too) waited for ever for data that never came: neither is
    a file of spans, and each is now one line, exit 1."""
    path = Path("/dev/zero")
    if kind == "fifo":
        path = tmp_path / "spans"
        os.mkfifo(path)
        writer = os.open(path, os.O_RDWR | os.O_NONBLOCK)  # a writer that never writes
    try:
        limited = ("prlimit", f"--as={1024**3}", TASKDAEMON)  # a regression runs out at 1 GiB
        source = f"{scheme}://{path}"
        done = taskdaemon(home, "runs", "list", "--source", source, launcher=limited, timeout=30)
    finally:
        if kind == "fifo":
            os.close(writer)
    refusal = "not a regular file or a directory" if scheme == "otlp-json" else "not a regular file"
    assert (1, [f"taskdaemon runs list: {path}: {refusal}"]) == (
        done.returncode,
        (done.stdout + done.stderr).splitlines(),
    )


@pytest.mark.slow
@pytest.mark.parametrize("limit", ["1" + "0" * 20, "1000001", "0"])
def test_a_report_limit_past_the_bound_is_a_usage_error(home: Path, limit: str) -> None:
    """``report --limit`` of 21 digits reached SQLite, which cannot hold it: an OverflowError
    traceback. It is now bounded as ``runs list --limit`` is."""
    done = taskdaemon(home, "report", f"--limit={limit}")
    assert (2, ["taskdaemon report: --limit must be 1 to 1000000"]) == (
        done.returncode,
        (done.stdout + done.stderr).splitlines(),
    )


@pytest.mark.slow
@pytest.mark.parametrize("host", ["127..1", "a" * 64])
def test_a_remote_source_whose_host_has_a_bad_label_is_a_usage_error(home: Path, host: str) -> None:
    """A host name with an empty label, or one of over 63 characters, passed every check of
    the URL and failed in the resolver's IDNA encoding: a UnicodeError traceback at the first
    query of ``runs list --source tempo+http://127..1:9``."""
    for scheme in ("tempo+http", "jaeger+http"):
        done = taskdaemon(home, "runs", "list", "--source", f"{scheme}://{host}:9")
        refusal = "bad span source URL: its host name's labels are 1 to 63 characters, in"
        assert (2, [f"taskdaemon runs list: {refusal} {quote(f'{scheme}://{host}:9')}"]) == (
            done.returncode,
            done.stderr.splitlines(),
        ), done.stderr


@pytest.mark.slow
def test_stepping_through_a_run_with_an_event_before_every_span(home: Path, tmp_path: Path) -> None:
    """``replay --step`` of a run one of whose span events is timed before any span began (a
    clock that stepped back; a dump's event time of 1) started at that event, when no span
    had begun, and rebuilt the run from no span at all: a ValueError traceback. The walk now
    shows the run as its first span found it."""
    first = '"timeUnixNano": "1796066447814370155"'
    spans = SPANS.read_text(encoding="utf-8").replace(first, '"timeUnixNano": "1"', 1)
    path = write(tmp_path / "spans.json", spans)
    source = f"otlp-json://{path}"
    done = taskdaemon(home, "replay", RUN_ID, "--step", "--source", source, stdin="where\n")
    assert (0, "", True) == (
        done.returncode,
        done.stderr,
        "[1/26] +-1796066447.812s  trigger on run start of plan holds" in done.stdout,
    ), done.stdout


@pytest.mark.slow
def test_a_tempo_search_result_starting_at_infinity_is_still_read(home: Path) -> None:
    """A Tempo search answer whose ``startTimeUnixNano`` read ``1e400`` (JSON's largest float
    is inf) ended ``runs list`` in an OverflowError traceback while the results were put in
    order; the result now sorts as one without a start, and its run is read."""
    fixtures = Path(__file__).parent / "fixtures" / "tempo"
    search = (fixtures / "api_search_traceql_response.json").read_text(encoding="utf-8")
    search = search.replace(
        '"startTimeUnixNano":"1694718625557000000"', '"startTimeUnixNano":1e400', 1
    )
    trace_id = "5b8efff798038103d269b633813fc700"
    with serve(Backend()) as backend:
        backend.route("/api/search", search.encode())
        trace = (fixtures / "api_v2_traces_response.json").read_bytes()
        backend.route(f"/api/v2/traces/{trace_id}", trace)
        source = f"tempo+{backend.url}"
        done = taskdaemon(home, "runs", "list", "--since", "36500d", "--source", source)
    assert (0, "", True) == (done.returncode, done.stderr, trace_id in done.stdout), done.stdout


@pytest.mark.slow
def test_a_stage_measured_as_infinite_shows_no_measure(home: Path, tmp_path: Path) -> None:
    """A stage span whose queue time read ``Infinity`` (a dump's, a file's) was taken as
    measured: ``runs show`` could not format it (an OverflowError traceback), and ``--json``
    wrote ``Infinity``, which is no JSON. A time that is not finite is now no measure."""
    body = json.loads(SPANS.read_text(encoding="utf-8"))
    for resource in body["resourceSpans"]:
        for scope in resource["scopeSpans"]:
            for span in scope["spans"]:
                if span["name"] != "plan":
                    continue
                queued = {"doubleValue": float("inf")}
                span["attributes"].append({"key": "taskdaemon.stage.queue_time_s", "value": queued})
    path = write(tmp_path / "spans.json", json.dumps(body))
    shown = taskdaemon(home, "runs", "show", RUN_ID, "--source", f"otlp-json://{path}")
    as_json = taskdaemon(home, "runs", "show", "--json", RUN_ID, "--source", f"otlp-json://{path}")

    def refuse(constant: str) -> None:
        raise AssertionError(f"not JSON: {constant}")

    record = json.loads(as_json.stdout, parse_constant=refuse)
    plan = next(stage for stage in record["stages"] if stage["name"] == "plan")
    assert (0, "", 0, None) == (
        shown.returncode,
        shown.stderr,
        as_json.returncode,
        plan["attempts"][0]["queue_time"],
    )


@pytest.mark.slow
def test_a_time_past_the_span_clock_is_one_line(home: Path) -> None:
    """``--at 1e300`` (``runs show``, ``dag --run``) and the step prompt's ``goto 1e300`` made
    the time nanoseconds as a float, which overflowed: an OverflowError traceback. A time
    past 2**63 ns from the run's start is now refused in one line."""
    source = f"otlp-json://{SPANS}"
    refusal = "--at '1e300': expected a time of 0 to 292 years"
    for command in (("runs", "show", RUN_ID), ("dag", "--run", RUN_ID)):
        done = taskdaemon(home, *command, "--at", "1e300", "--source", source)
        assert (2, True) == (done.returncode, done.stderr.endswith(f"{refusal}\n")), done.stderr
    done = taskdaemon(home, "replay", RUN_ID, "--step", "--source", source, stdin="goto 1e300\n")
    error = "error: goto '1e300': expected a time of 0 to 292 years"
    assert (0, "", True) == (done.returncode, done.stderr, error in done.stdout), done.stdout


@pytest.mark.slow
def test_dump_under_a_home_whose_control_folder_cannot_be_listed(tmp_path: Path) -> None:
    """``dump RUN`` lists the runs its home serves first: a home of a 300-character name (the
    ``env`` target's) failed that listing with ENAMETOOLONG, an OSError traceback. It is now
    one line, the home's escape escaped; given a source, the control folder is not looked at."""
    home = tmp_path / ("\x1b" + "h" * 299)
    served = taskdaemon(home, "dump", RUN_ID, "-o", str(tmp_path / "a.tar.gz"))
    source = f"otlp-json://{SPANS}"
    read = taskdaemon(home, "dump", RUN_ID, "-o", str(tmp_path / "b.tar.gz"), "--source", source)
    refusal = (
        f"taskdaemon dump: cannot list the runs served under {tmp_path}/\\x1b{'h' * 299}/control: "
        "File name too long"
    )
    assert ((1, [refusal]), (0, "")) == (
        (served.returncode, served.stderr.splitlines()),
        (read.returncode, read.stderr),
    ), served.stderr


@pytest.mark.slow
@pytest.mark.parametrize("scheme", ["otlp-json", "dump"])
def test_a_span_file_of_a_name_too_long_is_one_line(
    home: Path, tmp_path: Path, scheme: str
) -> None:
    """Python 3.11's ``Path.exists`` raises the OSError of a name too long: ``--source
    otlp-json://`` or ``dump://`` of a 300-character file name (the ``env`` target's
    ``TASKDAEMON_SPAN_SOURCE``) ended every command reading it in a traceback."""
    path = tmp_path / ("s" * 300)
    done = taskdaemon(home, "runs", "list", "--source", f"{scheme}://{path}")
    assert (1, 1, True) == (
        done.returncode,
        len(done.stderr.splitlines()),
        f"taskdaemon runs list: {path}: " in done.stderr and "File name too long" in done.stderr,
    ), done.stderr
