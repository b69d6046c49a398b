"""A telemetry load that never ends does not hang ``run`` or ``debug`` (``cli/deferred.py``,
"Monitoring never stops the pipeline"): a real process whose loading thread blocks in an import
ends with the pipeline's exit code and one warning line."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli_support import pythonpath_with, taskdaemon, write

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


@pytest.mark.slow
@pytest.mark.parametrize("command", ["run", "debug"])
def test_a_load_that_never_ends_is_abandoned(tmp_path: Path, home: Path, command: str) -> None:
    shadow = tmp_path / "shadow"
    shadow.mkdir()
    (shadow / "uuid.py").write_text(_STUCK_UUID)
    pipeline = write(tmp_path / "fails.yaml", FAILS)
    done = taskdaemon(
        home,
        command,
        str(pipeline),
        stdin="",
        PYTHONPATH=pythonpath_with(shadow),
        TASKDAEMON_EXPORT_TIMEOUT="0.25",  # the load is abandoned after 12 x 0.25 s
    )
    assert done.returncode == 1, done.stderr  # the pipeline's: its stage failed
    assert "Traceback" not in done.stderr
    warnings = [line for line in done.stderr.splitlines() if "WARNING" in line]
    assert len(warnings) == 1, done.stderr
    assert warnings[0].endswith(
        "engine events were not recorded: telemetry failed to start"
        " (it did not load within 3s, 12 x TASKDAEMON_EXPORT_TIMEOUT)"
    )
