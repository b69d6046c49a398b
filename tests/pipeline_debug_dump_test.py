"""Debug dumps: what the archive holds, its round trip as a ``dump://`` span source, SIGUSR1 on
a running process, a seeded secret that must not be in it, and corrupt or hostile archives."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import json
import os
import re
import signal
import stat
import subprocess
import tarfile
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cli_support import ROOT, TASKDAEMON, dumped_while_running, in_background, line_with, read_line
from cli_support import environment as cli_environment
from cli_support import taskdaemon as cli_taskdaemon
from taskdaemon.pipeline.errors import SpanSourceError
from taskdaemon.pipeline.tracking.dump_logs import dump_log_records
from taskdaemon.pipeline.tracking.dump_source import (
    MAX_DUMP_BYTES,
    MAX_MEMBER_BYTES,
    MAX_MEMBERS,
    DumpSource,
)
from taskdaemon.pipeline.tracking.log_read import StoredLog
from taskdaemon.pipeline.tracking.otlp_logs import encode_logs

SECRET = "s3cr3t-VALUE-7d1f0b"

PIPELINE = """\
    name: dumped
    stages:
      - name: a
        command: |
          printf '{"x": 1, "password": "%s", "seeded": %d}' "$SEEDED" "${#SEEDED}"
        triggers: [{manual: {approval_required: false}}]
      - name: b
        command: "echo '{}'"
        triggers: [{on_completion: {stage: a}}]
        inputs: {x: stages.a.outputs.x}
"""


#: What the dumped run's environment adds to the suite's (own home, no exporters): a secret
#: in an OTLP header setting, and the one stage a prints as its output "password" (and its
#: length as "seeded", which shows that it reached the stage).
SECRETS = {"OTEL_EXPORTER_OTLP_HEADERS": f"authorization=Bearer {SECRET}", "SEEDED": SECRET}


def environment(home: Path) -> dict[str, str]:
    """The suite's environment with :data:`SECRETS`."""
    return cli_environment(home, **SECRETS)


def taskdaemon(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """One command to its end, with :data:`SECRETS`."""
    return cli_taskdaemon(home, *args, **SECRETS)


@pytest.fixture
def paused_run(home: Path) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """``taskdaemon run --break b`` with a secret in its request and in a's output (from the
    environment), paused at b."""
    with _paused_run(home) as paused:
        yield paused


@contextlib.contextmanager
def _paused_run(home: Path) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """:func:`paused_run`'s run, in ``home``: killed on exit if still running."""
    path = home / "dumped.yaml"
    path.write_text(textwrap.dedent(PIPELINE))
    process = subprocess.Popen(
        [TASKDAEMON, "run", str(path), "--break", "b", "--input", f"api_token={SECRET}"],
        cwd=ROOT,
        env=environment(home),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = line_with(process.stderr, "taskdaemon debug attach ")
        yield process, line.rsplit("taskdaemon debug attach ", 1)[1].split(";")[0]
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate()


def log_records(found: dict[str, bytes]) -> list[dict[str, Any]]:
    """The log records of a dump's members ``found``."""
    logs = json.loads(found["logs.otlp.json"])
    return [
        record
        for resource in logs["resourceLogs"]
        for scope in resource["scopeLogs"]
        for record in scope["logRecords"]
    ]


def members(path: Path) -> dict[str, bytes]:
    """Every member of a dump, by name."""
    with tarfile.open(path, "r:gz") as archive:
        return {
            m.name: archive.extractfile(m).read()  # type: ignore[union-attr]
            for m in archive.getmembers()
        }


@pytest.mark.slow
def test_a_dump_of_a_paused_run_holds_everything_and_reads_back_as_a_span_source(
    home: Path, paused_run: tuple[subprocess.Popen[str], str]
) -> None:
    """``dump RUN -o FILE`` through the serving process: every member listed with its sha256,
    the live engine state with b paused, the DAG in DOT and SVG; then ``runs show`` and ``dag
    --run`` read the run from ``dump://FILE``."""
    process, run_id = paused_run
    target = home / "out" / "x.tar.gz"
    written = taskdaemon(home, "dump", run_id[:8], "-o", str(target))
    assert written.returncode == 0, written.stderr
    assert written.stdout.strip() == str(target)
    found = members(target)
    expected = {
        "manifest.json",
        "spans.otlp.json",
        "logs.otlp.json",
        "run.json",
        "definition.json",
        "dag.dot",
        "dag.svg",
        "engine.json",
        "environment.json",
    }
    assert expected <= set(found)
    manifest = json.loads(found["manifest.json"])
    assert manifest["format"] == "taskdaemon-dump"
    assert manifest["run_id"] == run_id
    for name, info in manifest["files"].items():
        assert hashlib.sha256(found[name]).hexdigest() == info["sha256"]
    records = log_records(found)
    assert {r["traceId"] for r in records} == {run_id}  # a's output lines, from the store
    assert any('"x": 1' in r["body"]["stringValue"] for r in records)
    engine = json.loads(found["engine.json"])
    assert [p["stage"] for p in engine["paused"]] == ["b"]
    assert engine["stages"]["b"]["status"] == "paused"
    assert json.loads(found["run.json"])["status"] == "paused"
    assert json.loads(found["definition.json"])["name"] == "dumped"
    assert found["dag.svg"].startswith(b"<?xml")
    assert b"orchid" in found["dag.dot"]
    versions = json.loads(found["environment.json"])["versions"]
    assert versions["taskdaemon"]
    assert versions["opentelemetry-sdk"]

    url = f"dump://{target}"
    shown = taskdaemon(home, "runs", "show", run_id, "--source", url, "--json")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["status"] == "paused"
    drawn = taskdaemon(home, "dag", "--run", run_id, "--source", url)
    assert drawn.returncode == 0, drawn.stderr
    assert "digraph" in drawn.stdout
    resumed = taskdaemon(home, "debug", "continue", run_id)
    assert resumed.returncode == 0
    process.communicate(timeout=60)
    assert process.returncode == 0


@pytest.mark.slow
def test_a_dump_holds_no_seeded_secret(
    home: Path, paused_run: tuple[subprocess.Popen[str], str]
) -> None:
    """A secret in the request, in a stage's output (read from the environment) and in the
    OTLP headers variable is in no member of the dump, live or from the store, nor in the span
    store; the keys are there, redacted."""
    process, run_id = paused_run
    target = home / "secret.tar.gz"
    assert taskdaemon(home, "dump", run_id, "-o", str(target)).returncode == 0
    taskdaemon(home, "debug", "continue", run_id)
    process.communicate(timeout=60)
    found = members(target)
    for name, data in found.items():
        assert SECRET.encode() not in data, name
    seeded = f'{{"x": 1, "password": "[REDACTED]", "seeded": {len(SECRET)}}}'
    lines = [r["body"]["stringValue"] for r in log_records(found)]
    assert seeded in lines  # the secret reached a's output, and was masked there
    assert SECRET.encode() not in (home / "spans.db").read_bytes()
    settings = json.loads(found["environment.json"])["settings"]
    assert settings["home"] == str(home)  # the settings are there, the header secret is not
    assert b"[REDACTED]" in found["spans.otlp.json"]
    after_end = home / "after.tar.gz"
    stored = taskdaemon(home, "dump", run_id, "-o", str(after_end))  # from the store now
    assert stored.returncode == 0, stored.stderr
    for name, data in members(after_end).items():
        assert SECRET.encode() not in data, name


@pytest.mark.slow
def test_a_served_dump_it_cannot_write_says_so_as_a_stored_one_does(
    home: Path, paused_run: tuple[subprocess.Popen[str], str]
) -> None:
    """``dump -o FILE/x.tar.gz`` (a file where a folder should be) of a run its process still
    serves said ``[Errno 17] File exists: ...``, errno and all: it now says ``cannot write
    TARGET: REASON``, as ``dump`` of a run from the store, ``dag -o`` and ``report -o`` do.
    On a loaded machine the run's telemetry may still be loading: ``dump`` then says first, in
    a line of its own, that it waits for it (``cli/dump.py``), which is not the error."""
    process, run_id = paused_run
    (home / "file").write_text("not a folder")
    target = home / "file" / "x.tar.gz"
    done = taskdaemon(home, "dump", run_id, "-o", str(target))
    taskdaemon(home, "debug", "continue", run_id)
    process.communicate(timeout=60)
    settling = re.compile(
        r"\Ataskdaemon dump: waiting for telemetry to settle first \(.*s at most\)\n"
    )
    expected = f"taskdaemon dump: cannot write {target}: File exists\n"
    assert (1, expected) == (done.returncode, settling.sub("", done.stderr, count=1))


@pytest.mark.slow
def test_a_default_dump_is_private_in_a_private_folder(home: Path) -> None:
    """``dump RUN`` without ``-o`` writes under ``$TASKDAEMON_HOME/dumps``, made 0700, an
    archive of mode 0600: a dump holds the run's data. ``-o``'s help says where (it did not:
    a user learnt it from the first dump's path)."""
    path = home / "dumped.yaml"
    path.write_text(textwrap.dedent(PIPELINE))
    ran = taskdaemon(home, "run", str(path), "-q")
    dumped = taskdaemon(home, "dump", ran.stdout.strip())
    written = Path(dumped.stdout.strip())
    modes = [stat.S_IMODE(p.stat().st_mode) for p in (written.parent, written)]
    assert (0, home / "dumps", [0o700, 0o600]) == (dumped.returncode, written.parent, modes)
    helped = " ".join(taskdaemon(home, "dump", "--help").stdout.split())
    assert "(default: $TASKDAEMON_HOME/dumps/<run_id>-<time>.tar.gz)" in helped


def test_dump_into_an_existing_directory_writes_the_archive_inside_it(home: Path) -> None:
    """``dump RUN -o DIR`` on an existing directory writes the archive into it under the
    default file name, and leaves nothing else behind, beside it or in it."""
    path = home / "dumped.yaml"
    path.write_text(textwrap.dedent(PIPELINE))
    ran = taskdaemon(home, "run", str(path), "-q")
    run_id = ran.stdout.strip()
    directory = home / "out"
    directory.mkdir()
    dumped = taskdaemon(home, "dump", run_id, "-o", str(directory))
    written = Path(dumped.stdout.strip())
    expected = (0, [written.name], True, ["dumped.yaml", "out", "spans.db"])
    actual = (
        dumped.returncode,
        sorted(p.name for p in directory.iterdir()),
        written.name.startswith(f"{run_id}-") and written.parent == directory,
        sorted(p.name for p in home.iterdir() if p.is_file() or p.name == "out"),
    )
    assert expected == actual


@pytest.mark.slow
@pytest.mark.parametrize("where", ["dump -o", "the prompt"])
def test_a_path_ending_with_a_slash_is_a_folder_made_to_hold_the_dump(
    home: Path, where: str
) -> None:
    """``dump -o out/new/`` and the prompt's ``dump out/new/``, the folders missing, make them
    and write the archive inside under the default name, as into an existing folder: both
    wrote a file called ``new`` (the trailing slash lost), not what the slash asked for."""
    path = home / "dumped.yaml"
    path.write_text(textwrap.dedent(PIPELINE))
    folder = home / "out" / "new"
    if where == "dump -o":
        run_id = taskdaemon(home, "run", str(path), "-q").stdout.strip()
        said = taskdaemon(home, "dump", run_id, "-o", f"{folder}/").stdout.strip()
    else:
        debugged = cli_taskdaemon(
            home, "debug", str(path), "--break", "b", "-q", stdin=f"dump {folder}/\n", **SECRETS
        )
        said = debugged.stdout.split("dump written to ", 1)[1].split("\n", 1)[0]
    written = [p.name for p in folder.iterdir()] if folder.is_dir() else []
    assert ([Path(said).name], str(folder)) == (written, str(Path(said).parent))
    assert written[0].endswith(".tar.gz")


@pytest.mark.slow
def test_sigusr1_writes_a_dump_and_the_run_goes_on(
    home: Path, paused_run: tuple[subprocess.Popen[str], str]
) -> None:
    """SIGUSR1 to ``taskdaemon run`` writes a dump of its run (the path on stderr) and the run
    still finishes when continued."""
    process, run_id = paused_run
    process.send_signal(signal.SIGUSR1)
    line = line_with(process.stderr, "dump of run")
    path = Path(line.rsplit("written to ", 1)[1].strip())
    assert path.parent == home / "dumps"
    assert json.loads(members(path)["manifest.json"])["run_id"] == run_id
    assert taskdaemon(home, "debug", "continue", run_id).returncode == 0
    process.communicate(timeout=60)
    assert process.returncode == 0


@pytest.mark.slow
def test_sigusr1_s_line_shows_the_home_s_control_characters_escaped(home: Path) -> None:
    """``TASKDAEMON_HOME`` may hold any byte: SIGUSR1's line named the dump's path under it as
    it was, so an ESC in the home's name drove the terminal (as fuzz41 found a refusal's
    line did); it is escaped as a refusal's is."""
    hostile = home / "h\x1b[2J"
    hostile.mkdir(mode=0o700)
    with _paused_run(hostile) as (process, run_id):
        process.send_signal(signal.SIGUSR1)
        line = line_with(process.stderr, "dump of run")
        assert taskdaemon(hostile, "debug", "continue", run_id).returncode == 0
        process.communicate(timeout=60)
    said = f"taskdaemon: dump of run {run_id} written to {home}/h\\x1b[2J/dumps/{run_id}-"
    assert (0, True) == (process.returncode, line.startswith(said)), line


@pytest.mark.slow
def test_a_cli_dump_of_a_served_run_holds_its_metrics(home: Path) -> None:
    """``taskdaemon dump RUN`` of a ``run --serve`` process, which exports Prometheus metrics,
    holds ``metrics.prom`` (docs/debugging.md, "Dumps"), as its HTTP dump route's does."""
    path = home / "dumped.yaml"
    path.write_text(textwrap.dedent(PIPELINE))
    env = environment(home)
    env.pop("OTEL_METRICS_EXPORTER")  # the default: taskdaemon's own /metrics
    process = subprocess.Popen(
        [TASKDAEMON, "run", str(path), "--break", "b", "--serve", "127.0.0.1:0"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = line_with(process.stderr, "taskdaemon debug attach ")
        run_id = line.rsplit("taskdaemon debug attach ", 1)[1].split(";")[0]
        dumped = taskdaemon(home, "dump", run_id)
        metrics = members(Path(dumped.stdout.strip())).get("metrics.prom", b"")
        taskdaemon(home, "debug", "continue", run_id)
        process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert (0, True) == (dumped.returncode, b"pipeline_active_executions" in metrics)


def _archive(path: Path, files: dict[str, bytes], *, kind: bytes = tarfile.REGTYPE) -> Path:
    with tarfile.open(path, "w:gz") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.type = kind
            archive.addfile(info, io.BytesIO(data))
    return path


def test_corrupt_foreign_and_hostile_archives_are_one_line_errors(tmp_path: Path) -> None:
    """Random bytes, a tar without a manifest, a foreign manifest, a path with ``..``, a link,
    too many members and spans not matching their sha256 each give one SpanSourceError line."""
    garbage = tmp_path / "garbage.tar.gz"
    garbage.write_bytes(os.urandom(2048))
    good_manifest = json.dumps(
        {"format": "taskdaemon-dump", "version": 1, "files": {"spans.otlp.json": {"sha256": "0"}}}
    ).encode()
    cases = {
        garbage: "not a readable debug dump",
        _archive(tmp_path / "empty.tar.gz", {"x.txt": b"hi"}): "no manifest.json",
        _archive(tmp_path / "foreign.tar.gz", {"manifest.json": b"{}"}): "foreign manifest",
        _archive(tmp_path / "climb.tar.gz", {"../evil": b"x"}): "unexpected member",
        _archive(
            tmp_path / "many.tar.gz", {f"f{i}": b"" for i in range(MAX_MEMBERS + 1)}
        ): "more than",
        _archive(
            tmp_path / "tampered.tar.gz",
            {"manifest.json": good_manifest, "spans.otlp.json": b'{"resourceSpans": []}'},
        ): "does not match its sha256",
        tmp_path / "missing.tar.gz": "no such file",
    }
    link = tmp_path / "link.tar.gz"
    with tarfile.open(link, "w:gz") as archive:
        info = tarfile.TarInfo("manifest.json")
        info.type = tarfile.SYMTYPE
        info.linkname = "/etc/passwd"
        archive.addfile(info)
    cases[link] = "unexpected member"
    for path, reason in cases.items():
        with pytest.raises(SpanSourceError) as caught:
            DumpSource(path)
        message = str(caught.value)
        assert reason in message, (path.name, message)
        assert "\n" not in message


class _Zeros(io.RawIOBase):
    """``size`` zero bytes, read without holding them: a member that gzip shrinks a
    thousandfold (a decompression bomb)."""

    def __init__(self, size: int) -> None:
        self.left = size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        count = min(len(buffer), self.left)
        buffer[:count] = bytes(count)
        self.left -= count
        return count


def _bomb(path: Path, sizes: dict[str, int]) -> Path:
    """An archive of zero-filled members of ``sizes`` (fast to write: gzip level 1)."""
    with tarfile.open(path, "w:gz", compresslevel=1) as archive:
        for name, size in sizes.items():
            info = tarfile.TarInfo(name)
            info.size = size
            archive.addfile(info, io.BufferedReader(_Zeros(size), 1 << 20))
    return path


@pytest.mark.slow
def test_a_member_or_members_too_large_to_be_a_dump_are_refused_from_their_headers(
    tmp_path: Path,
) -> None:
    """A member the reader skips that is larger than any member it reads, or members adding
    up to more than a dump holds, are refused by their sizes: a gzip bomb is not inflated
    to its end (an 8 GiB archive of 64 such members would take minutes)."""
    member = MAX_DUMP_BYTES // 4 - 1  # each small enough: only the sum is too large
    cases = {
        _bomb(tmp_path / "one.tar.gz", {"dag.svg": MAX_MEMBER_BYTES + 1}): (
            "dag.svg is larger than the dump limit"
        ),
        _bomb(tmp_path / "sum.tar.gz", {f"m{i}": member for i in range(5)}): (
            "members larger than a dump"
        ),
    }
    errors = []
    for path, reason in cases.items():
        with pytest.raises(SpanSourceError) as caught:
            DumpSource(path)
        errors.append(reason in str(caught.value))
    assert [True, True] == errors


def test_hostile_json_in_a_dump_is_a_one_line_error(tmp_path: Path) -> None:
    """A manifest nested 100,000 deep, a manifest whose ``files`` is not a mapping, and spans
    nested 100,000 deep (under a matching sha256) each give one SpanSourceError line (the
    brackets spaced out, so that the decoder meets them)."""
    deep = b"[       " * 100_000 + b"]" * 100_000

    def manifest(files: object) -> bytes:
        return json.dumps({"format": "taskdaemon-dump", "version": 1, "files": files}).encode()

    spans_entry = {"spans.otlp.json": {"sha256": hashlib.sha256(deep).hexdigest()}}
    cases = {
        _archive(tmp_path / "deep.tar.gz", {"manifest.json": deep}): "manifest.json is not JSON",
        _archive(
            tmp_path / "files.tar.gz", {"manifest.json": manifest([]), "spans.otlp.json": b"{}"}
        ): "does not match its sha256",
        _archive(
            tmp_path / "spans.tar.gz",
            {"manifest.json": manifest(spans_entry), "spans.otlp.json": deep},
        ): "spans.otlp.json is not JSON",
    }
    actual = {}
    for path, reason in cases.items():
        with pytest.raises(SpanSourceError) as caught:
            DumpSource(path)
        actual[path] = (reason in str(caught.value), "\n" in str(caught.value))
    assert dict.fromkeys(cases, (True, False)) == actual


@pytest.mark.parametrize(
    ("member", "value"),
    [
        ("manifest.json", b"[],"),
        ("spans.otlp.json", b"[],"),
        ("spans.otlp.json", b"0.5,"),
        ("logs.otlp.json", b"[],"),
    ],
)
def test_json_denser_in_values_than_spans_is_refused_before_it_is_decoded(
    tmp_path: Path, member: str, value: bytes
) -> None:
    """A member of nothing but ``[]`` (3 bytes, a 56-byte list) or ``0.5`` (4 bytes, a 24-byte
    float), spans or log records, is refused by its count of values: 40 million ``[]`` in a
    117 KB dump decoded to 3 GB. A manifest is refused by its size first, from its header."""
    document = b'{"resourceSpans": [' + value * 400_000 + b"1]}"
    entry = {"spans.otlp.json": {"sha256": hashlib.sha256(document).hexdigest()}}
    manifest = {"format": "taskdaemon-dump", "version": 1, "files": entry}
    files = {"manifest.json": json.dumps(manifest).encode(), "spans.otlp.json": document}
    files[member] = document
    archive = _archive(tmp_path / "dense.tar.gz", files)
    logs = member == "logs.otlp.json"  # read when a stage's logs are asked for
    read: Any = functools.partial(dump_log_records, run_id="abcd") if logs else DumpSource
    with pytest.raises(SpanSourceError) as caught:
        read(archive)
    values = document.count(b",") + document.count(b"[") + document.count(b"{")
    assert (
        "manifest.json is larger than the dump limit"
        if member == "manifest.json"
        else f"{member} holds {values} values in {len(document)} bytes"
    ) in str(caught.value)


def test_a_deeply_nested_log_member_is_a_one_line_error(tmp_path: Path) -> None:
    """A dump whose ``logs.otlp.json`` nests 100,000 deep gives one SpanSourceError line when
    its log records are read, not a RecursionError (the brackets spaced out, so that the
    decoder meets them)."""
    deep = b"[       " * 100_000 + b"]" * 100_000
    manifest = json.dumps({"format": "taskdaemon-dump", "version": 1}).encode()
    path = _archive(tmp_path / "logs.tar.gz", {"manifest.json": manifest, "logs.otlp.json": deep})
    with pytest.raises(SpanSourceError) as caught:
        dump_log_records(path, "0" * 32)
    assert f"{path}: logs.otlp.json is not JSON" == str(caught.value)


def _listing(members: dict[str, bytes]) -> bytes:
    """A dump manifest listing ``members`` with their sha256, as ``dump.py`` writes it."""
    files = {name: {"sha256": hashlib.sha256(data).hexdigest()} for name, data in members.items()}
    return json.dumps({"format": "taskdaemon-dump", "version": 1, "files": files}).encode()


def test_a_dump_without_the_log_member_its_manifest_lists_is_a_one_line_error(
    tmp_path: Path,
) -> None:
    """Log records asked of a dump that lost its ``logs.otlp.json`` give one error line, not
    an empty list."""
    manifest = _listing({"logs.otlp.json": b'{"resourceLogs": []}'})
    path = _archive(tmp_path / "lost.tar.gz", {"manifest.json": manifest})
    with pytest.raises(SpanSourceError) as caught:
        dump_log_records(path, "0" * 32)
    assert f"{path}: the manifest lists logs.otlp.json, the archive lacks it" == str(caught.value)


def test_a_log_member_not_matching_its_sha256_is_a_one_line_error(tmp_path: Path) -> None:
    """A dump whose ``logs.otlp.json`` was changed after it was written gives one error line."""
    manifest = _listing({"logs.otlp.json": b'{"resourceLogs": []}'})
    files = {"manifest.json": manifest, "logs.otlp.json": b'{"resourceLogs": [] }'}
    path = _archive(tmp_path / "changed.tar.gz", files)
    with pytest.raises(SpanSourceError) as caught:
        dump_log_records(path, "0" * 32)
    assert f"{path}: logs.otlp.json does not match its sha256" == str(caught.value)


@pytest.mark.parametrize("entry", [{"size": 20}, {"sha256": 5}, "logs"])
def test_a_log_member_listed_without_its_sha256_matches_no_member(
    tmp_path: Path, entry: object
) -> None:
    """A manifest entry ``dump.py`` never writes (no sha256, one not a string, not an object)
    checks the member as a changed one: before, its records were read unchecked and a lost
    member read as a run that logged nothing."""
    files = {"logs.otlp.json": entry}
    manifest = json.dumps({"format": "taskdaemon-dump", "version": 1, "files": files}).encode()
    kept = {"manifest.json": manifest, "logs.otlp.json": b'{"resourceLogs": []}'}
    errors = []
    for path in (
        _archive(tmp_path / "kept.tar.gz", kept),
        _archive(tmp_path / "lost.tar.gz", {"manifest.json": manifest}),
    ):
        with pytest.raises(SpanSourceError) as caught:
            dump_log_records(path, "0" * 32)
        errors.append(str(caught.value).removeprefix(f"{path}: "))
    assert [
        "logs.otlp.json does not match its sha256",
        "the manifest lists logs.otlp.json, the archive lacks it",
    ] == errors


def test_the_log_records_read_are_the_asked_runs_and_stages(tmp_path: Path) -> None:
    """A prefix of the run's id, as typed (any case, spaces around), picks that run's records,
    not another run's in the same dump; a stage picks its own only."""
    run, other = "ab12" + "0" * 28, "ab99" + "0" * 28
    rows = [
        StoredLog(0, run, 1, 9, "INFO", "dumped", "a", 0, 1, None, "td", "a's"),
        StoredLog(0, run, 2, 9, "INFO", "dumped", "b", 0, 1, None, "td", "b's"),
        StoredLog(0, other, 3, 9, "INFO", "dumped", "a", 0, 1, None, "td", "the other run's"),
    ]
    logs = json.dumps(encode_logs(rows)).encode()
    files = {"manifest.json": _listing({"logs.otlp.json": logs}), "logs.otlp.json": logs}
    path = _archive(tmp_path / "two.tar.gz", files)
    asked = [(" AB1 ", None), ("ab12", "a"), ("ab12", "c")]
    assert [["a's", "b's"], ["a's"], []] == [
        [row.body for row in dump_log_records(path, prefix, stage=stage)] for prefix, stage in asked
    ]


@pytest.mark.slow
def test_sigusr1_to_serve_is_said_in_its_log_records(home: Path, tmp_path: Path) -> None:
    """``serve`` writes log records alone (with ``TASKDAEMON_LOG_FORMAT=json`` one JSON object
    a line: docs/architecture.md, "Logs"); SIGUSR1's line was a bare ``taskdaemon: dump of run
    ...`` among them, which a JSON log reader cannot read, and with no run in progress nothing
    was said at all. Both are records of serve's log now, the dump's with the run's fields."""
    from schedule_support import scheduled_serve

    pipeline = tmp_path / "gated.yaml"
    pipeline.write_text(
        "name: gated\nstages:\n"
        "  - {name: a, command: 'true', triggers: [{manual: {approval_required: true}}]}\n"
    )
    with scheduled_serve(home, pipeline, "--max-runs=1", TASKDAEMON_LOG_FORMAT="json") as serve:
        serve.process.send_signal(signal.SIGUSR1)
        dumped = json.loads(serve.line("dump of run "))
        assert taskdaemon(home, "approve", serve.run_id, "a").returncode == 0
        serve.line(" ended ")
        serve.process.send_signal(signal.SIGUSR1)
        nothing = json.loads(serve.line("SIGUSR1"))
    path = dumped["msg"].rsplit(" written to ", 1)[1]
    assert ("INFO", serve.run_id, True) == (
        dumped["level"],
        dumped.get("run_id"),
        Path(path).parent == home / "dumps" and Path(path).is_file(),
    )
    assert ("INFO", "SIGUSR1: no run in progress to dump") == (nothing["level"], nothing["msg"])


@pytest.mark.slow
def test_sigusr1_to_debug_file_writes_a_dump_and_the_prompt_goes_on(home: Path) -> None:
    """``debug FILE`` runs its pipeline as ``run`` does, but SIGUSR1 killed it ("User defined
    signal 1": the prompt gone, the run ``interrupted``): its engine runs in a thread of its
    own, where ``run``'s handler cannot be installed. The signal writes a dump of the run, and
    the prompt goes on to the run's end."""
    path = home / "dumped.yaml"
    path.write_text(textwrap.dedent(PIPELINE))
    process = in_background(home, "debug", str(path), "--break", "b", "-q")
    try:
        opening = read_line(process.stdout)
        assert "paused at b.0.1" in read_line(process.stdout), opening
        process.send_signal(signal.SIGUSR1)
        line = line_with(process.stderr, "dump of run")
        out, _ = process.communicate("continue\n", timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    run_id = opening.split()[2]
    path = Path(line.rsplit("written to ", 1)[1].strip())
    assert (0, run_id) == (process.returncode, json.loads(members(path)["manifest.json"])["run_id"])
    assert "run ended success" in out


@pytest.mark.slow
def test_sigusr1_to_a_replay_writes_a_dump_of_its_run(home: Path, tmp_path: Path) -> None:
    """A replay is a run of its own, but SIGUSR1 killed ``taskdaemon replay`` (its run left
    ``interrupted``): it never installed ``run``'s handler. It writes a dump of the replay's
    run, which goes on to its end."""
    go = tmp_path / "go"
    go.touch()
    path = home / "waits.yaml"
    path.write_text(
        "name: waits\nstages:\n"
        f"  - {{name: a, command: 'while [ ! -e {go} ]; do sleep 0.05; done',"
        " triggers: [{manual: {approval_required: false}}]}\n"
    )
    recorded = taskdaemon(home, "run", str(path), "-q").stdout.strip()
    go.unlink()
    code, out, dump = dumped_while_running(home, go, "replay", recorded)
    manifest = json.loads(members(dump)["manifest.json"])
    assert (0, f"replay of run {recorded}") == (code, out.splitlines()[-1])
    replayed = next(line for line in out.splitlines() if line.startswith("run "))
    assert manifest["run_id"] == replayed.split()[1] != recorded
