"""A telemetry load that never ends does not hang ``run`` or ``debug`` (``cli/deferred.py``,
"Monitoring never stops the pipeline"): a real process whose loading thread blocks in an import
ends with the pipeline's exit code and one warning line; a debug dump asked of it meanwhile
(SIGUSR1, the prompt's ``dump``, ``taskdaemon dump RUN``) comes, without spans, saying so
(``cli/_dump_hook.py``)."""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from cli_support import in_background, line_with, pythonpath_with, taskdaemon, write
from taskdaemon.pipeline.tracking.dump_source import read_dump_members

#: Stands in for the standard library's ``uuid`` (the telemetry load imports it, through
#: orjson): its import never ends on the loading thread, and is the real module elsewhere.
_STUCK_UUID = """\
import sysconfig
import threading
from pathlib import Path

if threading.current_thread().name == "taskdaemon-telemetry-load":
    threading.Event().wait()
_real = Path(sysconfig.get_paths()["stdlib"], "uuid.py")
exec(compile(_real.read_text(), str(_real), "exec"))
"""

FAILS = """\
    name: fails
    stages:
      - name: a
        command: "exit 3"
        triggers: [{manual: {approval_required: false}}]
"""


#: One stage, which waits for the file GO.
WAITS = """\
    name: waits
    stages:
      - name: a
        command: "while [ ! -e GO ]; do sleep 0.05; done"
        triggers: [{manual: {approval_required: false}}]
"""

#: The settings of a process whose telemetry load is abandoned after 12 x 0.25 s.
ABANDONED_SOON = {"TASKDAEMON_EXPORT_TIMEOUT": "0.25"}
#: What a dump of a run whose telemetry did not load says it lacks.
NO_SPANS = (
    "no spans: telemetry failed to start"
    " (it did not load within 3s, 12 x TASKDAEMON_EXPORT_TIMEOUT)"
)


def _stuck_import(tmp_path: Path) -> str:
    """A PYTHONPATH on which the telemetry load's import of ``uuid`` never ends."""
    shadow = tmp_path / "shadow"
    shadow.mkdir()
    (shadow / "uuid.py").write_text(_STUCK_UUID)
    return pythonpath_with(shadow)


@pytest.mark.slow
@pytest.mark.parametrize("command", ["run", "debug"])
def test_a_load_that_never_ends_is_abandoned(tmp_path: Path, home: Path, command: str) -> None:
    pipeline = write(tmp_path / "fails.yaml", FAILS)
    done = taskdaemon(
        home,
        command,
        str(pipeline),
        stdin="",
        PYTHONPATH=_stuck_import(tmp_path),
        **ABANDONED_SOON,
    )
    assert done.returncode == 1, done.stderr  # the pipeline's: its stage failed
    assert "Traceback" not in done.stderr
    warnings = [line for line in done.stderr.splitlines() if "WARNING" in line]
    assert len(warnings) == 1, done.stderr
    assert warnings[0].endswith(
        "engine events were not recorded: telemetry failed to start"
        " (it did not load within 3s, 12 x TASKDAEMON_EXPORT_TIMEOUT)"
    )


@contextlib.contextmanager
def _stuck_run(tmp_path: Path, home: Path, *args: str) -> Iterator[subprocess.Popen[str]]:
    """``taskdaemon ARGS`` of :data:`WAITS` in the background, its telemetry load stuck in
    an import. On leaving, GO is made and the process's input ends; it is waited for (killed
    if it has not ended within a minute)."""
    go = tmp_path / "go"
    pipeline = write(tmp_path / "waits.yaml", WAITS.replace("GO", str(go)))
    process = in_background(
        home, *args, str(pipeline), PYTHONPATH=_stuck_import(tmp_path), **ABANDONED_SOON
    )
    try:
        yield process
    finally:
        go.touch()
        try:
            process.communicate(timeout=60)
        finally:
            if process.poll() is None:
                process.kill()
                process.communicate()


def _written(said: str) -> Path:
    """The dump a line ``said`` was written ("... written to PATH (NO_SPANS)")."""
    assert said.endswith(f" ({NO_SPANS})\n"), said
    return Path(said.rsplit(" written to ", 1)[1].removesuffix(f" ({NO_SPANS})\n"))


def _dumped_without_spans(path: Path) -> dict[str, object]:
    """The manifest of the dump at ``path``, once it says the dump has no spans and the dump
    holds the run's live engine state."""
    found = read_dump_members(path, ("manifest.json", "engine.json"))
    assert "waits" == json.loads(found["engine.json"])["pipeline"]
    manifest: dict[str, object] = json.loads(found["manifest.json"])
    assert f"spans.otlp.json, run.json: {NO_SPANS}" in manifest["notes"]  # type: ignore[operator]
    return manifest


@pytest.mark.slow
@pytest.mark.parametrize("command", ["run", "debug"])
def test_sigusr1_dumps_a_run_whose_load_never_ends(
    tmp_path: Path, home: Path, command: str
) -> None:
    """SIGUSR1 to a run whose telemetry load is stuck in an import writes its dump, its live
    engine state in it and no spans, saying so on its one line and in the manifest, and the
    run ends as it would: the dump's imports used to wait for ever on the module the load
    holds, and the run with them."""
    with _stuck_run(tmp_path, home, command) as process:
        line_with(process.stderr, " running")
        process.send_signal(signal.SIGUSR1)
        seen: list[str] = []
        said = line_with(process.stderr, "dump of run", timeout=30, seen=seen)
    assert ["running", "waits"] == [
        _dumped_without_spans(_written(said))[key] for key in ("status", "pipeline")
    ]
    assert 0 == process.returncode
    # Said at once, before the dump that waits: the signal's dump said nothing meanwhile.
    run_id = said.split()[4]
    waited = f"taskdaemon: dumping run {run_id}: waiting for telemetry to settle first (3s at most)"
    assert [waited] == [line.rstrip("\n") for line in seen if "dumping run" in line], seen


@pytest.mark.slow
def test_dump_at_the_prompt_and_through_the_socket_comes_without_spans(
    tmp_path: Path, home: Path
) -> None:
    """``dump`` at the debug prompt and ``taskdaemon dump RUN`` of a run whose telemetry load
    is stuck each write a dump without spans, saying so: they used to wait for ever. The
    prompt says first that its dump waits."""
    with _stuck_run(tmp_path, home, "debug", "--break", "a") as process:
        run_id = line_with(process.stdout, "debugging run ").split()[2]
        assert process.stdin is not None
        process.stdin.write("dump\n")
        process.stdin.flush()
        seen: list[str] = []
        said = line_with(process.stdout, "dump written to ", timeout=30, seen=seen)
        dumped = taskdaemon(home, "dump", run_id, timeout=30)
    # The prompt said first that its dump waits, and how long at most: it used to say nothing.
    waited = "waiting for telemetry to settle first (3s at most)"
    assert [waited] == [line.split("> ")[-1].rstrip("\n") for line in seen if "settle" in line]
    _dumped_without_spans(_written(said))
    assert f"taskdaemon dump: {NO_SPANS}\n" == dumped.stderr
    _dumped_without_spans(Path(dumped.stdout.strip()))


@pytest.mark.slow
def test_dump_through_the_socket_of_run_comes_without_spans(tmp_path: Path, home: Path) -> None:
    """``taskdaemon dump RUN`` of a ``taskdaemon run`` whose telemetry load is stuck writes a
    dump without spans, saying so: the run's process used to wait for ever on the import. It
    says first that the dump waits (nothing has waited for the load before it: still under
    way), as the prompt's ``dump`` does; it used to say nothing for that long."""
    with _stuck_run(tmp_path, home, "run") as process:
        run_id = line_with(process.stderr, " started ").split()[1]
        line_with(process.stderr, " running")
        dumped = taskdaemon(home, "dump", run_id, timeout=30)
    waited = "taskdaemon dump: waiting for telemetry to settle first (3s at most)"
    assert f"{waited}\ntaskdaemon dump: {NO_SPANS}\n" == dumped.stderr
    _dumped_without_spans(Path(dumped.stdout.strip()))
    assert 0 == process.returncode
