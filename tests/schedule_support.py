"""A real ``taskdaemon serve --pipeline`` in tests: started on a free port, its scheduled run's
id read from its log, its API called with its token, and stopped at the end."""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cli_support import ROOT, TASKDAEMON, environment, free_port, line_with, write

#: ``two_runs_the_second_late``'s schedule: a run every ``EVERY`` seconds, whose stage sleeps
#: ``TAKES``: the second, due ``EVERY`` after the first started, starts at least ``TAKES -
#: EVERY`` late.
EVERY = 0.2
TAKES = 1.0


@dataclass
class Scheduled:
    """A ``serve --pipeline`` process, its first scheduled run's id and its API."""

    process: subprocess.Popen[str]
    home: Path
    port: int
    run_id: str = ""
    #: Lines read while another was waited for, and not returned yet: a line that came before
    #: the one an earlier call waited for (a log export's failure before the run's "started")
    #: is still found by the call that waits for it.
    passed: list[str] = field(default_factory=list)

    def line(self, needle: str) -> str:
        """The first line of serve's stderr holding ``needle`` that no call returned (the
        explicit sync point): among those read already, else read until it comes."""
        for index, line in enumerate(self.passed):
            if needle in line:
                return self.passed.pop(index)
        line = line_with(self.process.stderr, needle, seen=self.passed)
        self.passed.pop()  # ``line`` itself: returned now
        return line

    def api(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """One call of serve's run API with its token; the JSON answer."""
        token = (self.home / f"api-token.{self.port}").read_text().strip()
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}",
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as answer:
            return json.loads(answer.read())

    def wait_paused(self, stage: str) -> None:
        """Wait until the run's ``stage`` is paused, as the HTTP debugger routes see it (the
        explicit sync point; each look is one request, at most 600 a tenth of a second apart)."""
        for _ in range(600):
            state = self.api("GET", f"/api/runs/{self.run_id}/debug")
            if stage in [paused["stage"] for paused in state["paused"]]:
                return
            time.sleep(0.1)
        raise AssertionError(f"{stage} never paused")


@contextlib.contextmanager
def scheduled_serve(home: Path, pipeline: Path, *options: str, **env: str) -> Iterator[Scheduled]:
    """``serve --pipeline PIPELINE OPTIONS`` (more environment in ``env``) until its first run
    has started (its id read from the log); terminated at the end."""
    port = free_port()
    process = subprocess.Popen(
        [TASKDAEMON, "serve", "--port", str(port), "--pipeline", str(pipeline), *options],
        cwd=ROOT,
        env=environment(home, **env),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    # The safety net: a serve that never says what the test waits for is stopped, which ends
    # its stderr and so the test.
    safety = threading.Timer(120, process.terminate)
    safety.start()
    try:
        served = Scheduled(process, home, port)
        started = served.line(" started ")
        found = re.search(r"\brun ([0-9a-f]{32}) of ", started)  # a text or a JSON line
        assert found is not None, started
        served.run_id = found.group(1)
        yield served
    finally:
        safety.cancel()
        process.terminate()
        process.communicate(timeout=30)


def two_runs_the_second_late(home: Path) -> tuple[str, str]:
    """The ids of the two runs a real ``serve --every EVERY --max-runs 2`` starts of a pipeline
    ``nightly`` (written in ``home``) whose stage sleeps ``TAKES``, once both have ended: the
    second one's slot came while the first still ran."""
    pipeline = write(
        home / "nightly.yaml",
        "name: nightly\nstages:\n"
        f"  - {{name: build, command: 'sleep {TAKES}',"
        " triggers: [{manual: {approval_required: false}}]}\n",
    )
    with scheduled_serve(home, pipeline, "--every", str(EVERY), "--max-runs", "2") as serve:
        second_started = serve.line("(2 of 2)")
        found = re.search(r"\brun ([0-9a-f]{32}) of ", second_started)
        assert found is not None, second_started
        serve.line("ended success (2 of 2)")
    return serve.run_id, found.group(1)
