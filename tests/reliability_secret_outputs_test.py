"""A secret never reaches any output (docs/redaction.md, docs/security.md): one real run whose
secrets arrive every way taskdaemon knows them (the environment, the run request, a handler's
result under ``token`` that an ``outputs:`` mapping renames, an event's payload, a URL's
password, a Bearer and a Basic credential by their shape, an approval's comment), then every
place the run's data leaves the process, each searched for every secret as written and as the
common encodings write it (JSON, HTML, URL, base64), failing with where it leaked.

The run: ``taskdaemon run --serve`` exporting its spans over OTLP/HTTP (to a stand-in collector
on loopback, its bodies kept and written as the Collector's file exporter writes OTLP JSON, then
read back through an ``otlp-json://`` source) and over the console exporters with its log
records, with JSON log lines of every engine event and Prometheus metrics; command stages echo
the secrets on stdout and stderr, a Python handler logs them and fails with them in its error,
later stages are handed them as inputs, and the last one waits for an approval, so that the live
server's ``/metrics`` (the labels Prometheus and its alerts see) and ``/api``, ``status`` and
``publish`` are read while the run holds them. Then the stored run is read back by every command
and format, the store's rows and bytes, the web page with its ``/api`` and streams, a replay
with its divergence report, and the debugger, each a real process.
"""

from __future__ import annotations

import base64
import html
import json
import shutil
import sqlite3
import subprocess
import tempfile
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from google.protobuf.json_format import MessageToJson
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from cli_support import (
    TASKDAEMON,
    environment,
    free_port,
    pythonpath_with,
    start_ui,
    taskdaemon,
    write,
)
from collector_support import answered, answering_posts
from redaction_support import MADE_SECRET, MAKE_SECRET, archive_text
from taskdaemon.pipeline.redaction import REDACTED

#: Each secret by how taskdaemon knows it. The environment's and the request's hold characters
#: that JSON, HTML and URLs write otherwise, so that each encoding has a form of its own.
SECRETS = {
    "environment DEPLOY_TOKEN": 'Dep"l0y/T0k+n&<x>\u00e9',
    "environment GPG_PASSPHRASE": "c0rrect-h0rse-st4ple",
    "environment PGPASSWORD": "pg-h0rse-b4ttery",
    "request api_key": "ap1 k3y\\pass%word\twith-tab",
    "request db_password, a number": "73914062",
    "outputs token": MADE_SECRET,
    "URL password": "Url-Passw0rd-41",
    "Bearer credential": "b3arer-cred-5512",
    "Basic credential": "YmFzaWM6Y3JlZC05",
    "approval comment token": "c0mment-t0ken-993",
    "event payload password": "ev3nt-pa55-7781",
}

#: The run's request, as ``run``, ``replay`` and ``debug`` are given it: ``db_password`` is
#: read as JSON, a number.
REQUEST = (
    "-i",
    f"api_key={SECRETS['request api_key']}",
    "-i",
    f"db_password={SECRETS['request db_password, a number']}",
)

PIPELINE = f"""\
    name: leaky
    error_strategy: continue
    external_events: [vault.rotated]
    stages:
      - name: deploy
        inputs: {{api_key: request.api_key, pin: request.db_password}}
        command: >-
          echo "deploying with $DEPLOY_TOKEN"; echo "signing with $GPG_PASSPHRASE";
          echo "connecting with $PGPASSWORD, pin $TASKDAEMON_INPUT_PIN";
          echo "the key is $TASKDAEMON_INPUT_API_KEY" >&2
        triggers: [{{manual: {{approval_required: false}}}}]
      - name: fetch
        command: >-
          {MAKE_SECRET} P=$(printf '%s-%s' Url-Passw0rd 41); B=$(printf '%s-%s' b3arer cred-5512);
          echo "Authorization: Bearer $B" >&2;
          echo "> Authorization: Basic $(printf %s YmFzaWM6 Y3JlZC05)" >&2;
          printf '{{"token": "%s", "db_url": "postgres://app:%s@db:5432/x", "nonce": %s}}'
          "$V" "$P" "$$"
        outputs: {{ref: result.token, db_url: result.db_url, nonce: result.nonce}}
        triggers: [{{on_completion: {{stage: deploy}}}}]
      - name: use
        handler: "leaky_handlers:use"
        inputs:
          t: stages.fetch.outputs.ref
          url: stages.fetch.outputs.db_url
          key: request.api_key
        triggers: [{{on_completion: {{stage: fetch}}}}]
      - name: after
        inputs: {{all: stages.fetch.outputs}}
        command: 'echo "got $TASKDAEMON_INPUT_ALL"; echo "{{\\"seen\\": $TASKDAEMON_INPUT_ALL}}"'
        triggers: [{{on_completion: {{stage: fetch}}}}]
      - name: gate
        command: "echo approved"
        triggers:
          - on_completion: {{stage: after}}
          - manual: {{approval_required: true}}
        trigger_mode: all
      - name: rotated
        inputs: {{note: event.password}}
        command: 'echo "rotated to $TASKDAEMON_INPUT_NOTE"'
        triggers: [{{on_event: {{type: vault.rotated}}}}]
"""

#: The states of the stages before ``gate`` once they ended (``use`` fails).
BEFORE_THE_GATE = ["success", "success", "failure", "success"]

#: The stages whose logs the web page shows.
STAGES = ("deploy", "fetch", "use", "after", "rotated")

HANDLERS = """\
import logging
import os

def use(ctx):
    t, url, key = ctx.inputs["t"], ctx.inputs["url"], ctx.inputs["key"]
    logging.getLogger("leaky").warning("using %s at %s", t, url, extra={"used": t})
    raise RuntimeError(f"the vault refused {t} at {url} ({key}, {os.environ['DEPLOY_TOKEN']})")
"""


def forms(secret: str) -> dict[str, str]:
    """``secret`` as written and as JSON, HTML, a URL and base64 write it, by name."""
    data = secret.encode()
    return {
        "as is": secret,
        "JSON": json.dumps(secret, ensure_ascii=False)[1:-1],
        "JSON ascii": json.dumps(secret)[1:-1],
        "JSON ascii, <>& escaped": json.dumps(secret)[1:-1]
        .replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026"),
        "HTML": html.escape(secret),
        "URL": urllib.parse.quote(secret, safe=""),
        "URL form": urllib.parse.quote_plus(secret),
        "base64": base64.b64encode(data).decode().rstrip("="),
        "base64 url": base64.urlsafe_b64encode(data).decode().rstrip("="),
    }


def _get(client: httpx.Client, path: str) -> str:
    response = client.get(path)
    assert 200 == response.status_code, (path, response.text[:300])
    return response.text


def _first_events(client: httpx.Client, path: str, count: int) -> str:
    """The first ``count`` ``data:`` lines of the SSE stream at ``path`` (fewer if it ends)."""
    seen: list[str] = []
    with client.stream("GET", path) as response:
        assert 200 == response.status_code, path
        for line in response.iter_lines():
            if line.startswith("data: "):
                seen.append(line)
                if len(seen) == count:
                    break
    return "\n".join(seen)


def _live(shown: dict[str, str], home: Path, port: int, process: subprocess.Popen[bytes]) -> str:
    """Read the serving run's ``/metrics`` and ``/api`` once its ``gate`` waits, then approve it
    with a comment holding a token; its run id."""
    token_file = home / f"api-token.{port}"
    for _ in range(600):
        if token_file.exists() or process.poll() is not None:
            break
        time.sleep(0.1)
    assert process.poll() is None, "the run ended before it served"
    headers = {"authorization": f"Bearer {token_file.read_text().strip()}"}
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=30) as api:
        for _ in range(600):  # until the gate waits for its approval alone (a 503: again)
            listed = api.get("/api/runs")
            if listed.status_code == 200 and listed.json()["runs"]:
                run_id = listed.json()["runs"][0]["run_id"]
                shown_run = api.get(f"/api/runs/{run_id}")
                stages = shown_run.json()["stages"] if shown_run.status_code == 200 else []
                gate = [(s["status"], s["triggers_held"]) for s in stages if s["name"] == "gate"]
                if [s["status"] for s in stages][:4] == BEFORE_THE_GATE and gate == [
                    ("waiting", [0])
                ]:
                    break  # the gate holds its upstream's trigger: its approval is next
            time.sleep(0.1)
        else:
            raise AssertionError("the gate never waited for its approval")
        shown["serve /api/runs"] = _get(api, "/api/runs")
        shown["serve /api/runs/ID"] = _get(api, f"/api/runs/{run_id}")
        shown["serve /metrics"] = _get(api, "/metrics")
    payload = json.dumps({"password": SECRETS["event payload password"]})
    published = taskdaemon(home, "publish", run_id, "vault.rotated", "--payload", payload)
    assert 0 == published.returncode, published.stderr
    shown["publish"] = published.stdout + published.stderr
    status = taskdaemon(home, "status", run_id)
    shown["status"] = status.stdout + status.stderr
    comment = f"token={SECRETS['approval comment token']}"
    for _ in range(20):  # asked for just after the gate's trigger is held
        approved = taskdaemon(home, "approve", run_id, "gate", "--comment", comment)
        if approved.returncode != 1:
            break
        time.sleep(0.1)
    assert 0 == approved.returncode, approved.stderr
    shown["approve"] = approved.stdout + approved.stderr
    return str(run_id)


def _web(shown: dict[str, str], home: Path, run_id: str) -> None:
    """The web page, its ``/api`` and its two streams, from ``taskdaemon ui`` over the store."""
    ui, url, token = start_ui(home)
    try:
        headers = {"authorization": f"Bearer {token}"}
        with httpx.Client(base_url=url, headers=headers, timeout=30) as web:
            for path in (
                "/",
                f"/runs/{run_id}",
                "/api/runs/recent",
                "/api/pipelines",
                f"/api/runs/{run_id}",
                f"/api/runs/{run_id}/dag",
                *(f"/api/runs/{run_id}/logs?stage={stage}" for stage in STAGES),
            ):
                shown[f"ui {path}"] = _get(web, path)
            shown["ui stream"] = _first_events(web, f"/api/runs/{run_id}/stream", 1)
            for stage in STAGES:
                path = f"/api/runs/{run_id}/logs/stream?stage={stage}"
                shown[f"ui {path}"] = _first_events(web, path, 20)
    finally:
        ui.terminate()
        ui.communicate(timeout=30)


def _read_back(shown: dict[str, str], home: Path, folder: Path, run_id: str) -> None:
    """Every command and format that reads the stored run, and the store's rows."""
    commands = {
        "runs list": ("runs", "list", "--wide"),
        "runs list --json": ("runs", "list", "--json"),
        "runs show": ("runs", "show", run_id, "--wide"),
        "runs show --json": ("runs", "show", run_id, "--json"),
        "runs show --at": ("runs", "show", run_id, "--at", "0.1s", "--json"),
        "logs": ("logs", run_id),
        "logs --json": ("logs", run_id, "--json"),
        "report": ("report", "--wide"),
        "replay --dry-run": ("replay", run_id, "--dry-run"),
        "replay --step": ("replay", run_id, "--step"),
    }
    commands.update({f"dag {f}": ("dag", "--run", run_id, "-f", f) for f in ("dot", "json")})
    commands.update({f"dag {f}": ("dag", "--run", run_id, "-f", f) for f in ("mermaid", "svg")})
    commands.update({f"report {f}": ("report", "-f", f) for f in ("markdown", "json", "html")})
    for name, args in commands.items():
        done = taskdaemon(home, *args)
        shown[name] = done.stdout + done.stderr
    archive = folder / "run.tar.gz"
    assert 0 == taskdaemon(home, "dump", run_id, "-o", str(archive)).returncode
    shown["dump"] = archive_text(archive)
    with sqlite3.connect(home / "spans.db") as db:
        tables = [row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        for table in tables:
            shown[f"table {table}"] = repr(db.execute(f"SELECT * FROM {table}").fetchall())
    shown["store file"] = b"".join(p.read_bytes() for p in home.glob("spans.db*")).decode("latin-1")


def _replay_and_debug(shown: dict[str, str], home: Path, pipeline: Path, run_id: str) -> None:
    """A replay that diverges (``fetch``'s nonce is its shell's pid) with its report, and the
    debugger paused before ``use`` and at its failure, asked for inputs, outputs and logs."""
    env = {
        "PYTHONPATH": pythonpath_with(pipeline.parent),
        "DEPLOY_TOKEN": SECRETS["environment DEPLOY_TOKEN"],
        "GPG_PASSPHRASE": SECRETS["environment GPG_PASSPHRASE"],
        "PGPASSWORD": SECRETS["environment PGPASSWORD"],
    }
    for name, args in {"replay --verify": (), "replay --verify --json": ("--json",)}.items():
        done = taskdaemon(
            home,
            "replay",
            run_id,
            str(pipeline),
            "--use-file",
            *REQUEST,
            "--verify",
            "-q",
            *args,
            cwd=pipeline.parent,
            **env,
        )
        shown[name] = done.stdout + done.stderr
    done = taskdaemon(
        home,
        "debug",
        str(pipeline),
        "--break",
        "use",
        "--break-on-failure",
        "--auto-approve",
        *REQUEST,
        stdin="inputs use\noutputs use\ncontinue\nwhere\nlogs use\noutputs use\ncontinue\n",
        cwd=pipeline.parent,
        **env,
    )
    shown["debug"] = done.stdout + done.stderr
    assert "[REDACTED]" in shown["debug"], shown["debug"]


def _run(shown: dict[str, str], home: Path, pipeline: Path) -> str:
    """Run ``pipeline`` served, its spans exported over OTLP/HTTP to a stand-in collector and
    written as the Collector's file exporter writes them (read back by an ``otlp-json://``
    source), and over the console exporters; its run id."""
    port = free_port()
    received: list[bytes] = []
    with answering_posts(answered(200), received) as collector:
        env = environment(
            home,
            PYTHONPATH=pythonpath_with(pipeline.parent),
            DEPLOY_TOKEN=SECRETS["environment DEPLOY_TOKEN"],
            GPG_PASSPHRASE=SECRETS["environment GPG_PASSPHRASE"],
            PGPASSWORD=SECRETS["environment PGPASSWORD"],
            OTEL_TRACES_EXPORTER="console,otlp",
            OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=f"{collector}/v1/traces",
            OTEL_EXPORTER_OTLP_TRACES_PROTOCOL="http/protobuf",
            OTEL_LOGS_EXPORTER="console",
            OTEL_METRICS_EXPORTER="prometheus",
            TASKDAEMON_LOG_FORMAT="json",
            TASKDAEMON_LOG_LEVEL="trace",  # every engine event in the log lines
        )
        # Files, not pipes: at TRACE, with console exporters, the run writes more than a pipe
        # holds while ``_live`` talks to it, and a pipe nobody reads would block the run.
        out, err = pipeline.parent / "run.stdout", pipeline.parent / "run.stderr"
        with out.open("w") as stdout_file, err.open("w") as stderr_file:
            process = subprocess.Popen(
                [TASKDAEMON, "run", str(pipeline), "--serve", f"127.0.0.1:{port}", *REQUEST],
                cwd=pipeline.parent,
                env=env,
                stdout=stdout_file,
                stderr=stderr_file,
            )
            try:
                run_id = _live(shown, home, port, process)
            except BaseException:
                process.kill()
                raise
            finally:
                process.wait(timeout=120)
        stdout, stderr = out.read_text(encoding="utf-8"), err.read_text(encoding="utf-8")
    shown["run stdout"] = stdout
    shown["run stderr (JSON log lines, console exporters)"] = stderr
    assert received, stderr
    shown["OTLP/HTTP span export"] = b"".join(received).decode("utf-8", "replace")
    otlp_json = pipeline.parent / "otlp.jsonl"
    otlp_json.write_text(
        "".join(
            MessageToJson(ExportTraceServiceRequest.FromString(body), indent=None) + "\n"
            for body in received
        )
    )
    source = f"otlp-json://{otlp_json}"
    for name, args in {
        "runs show --source otlp-json": ("runs", "show", run_id, "--json", "--source", source),
        "dag --source otlp-json": ("dag", "--run", run_id, "-f", "json", "--source", source),
    }.items():
        done = taskdaemon(home, *args)
        assert 0 == done.returncode, done.stderr
        shown[name] = done.stdout + done.stderr
    return run_id


@pytest.fixture(scope="module")
def shown() -> Iterator[dict[str, str]]:
    """Every output of the run, by where it was read."""
    home = Path(tempfile.mkdtemp(prefix="td-", dir="/tmp"))
    folder = Path(tempfile.mkdtemp(prefix="td-out-"))
    try:
        pipeline = write(folder / "leaky.yaml", PIPELINE)
        (folder / "leaky_handlers.py").write_text(HANDLERS)
        shown: dict[str, str] = {}
        run_id = _run(shown, home, pipeline)
        _read_back(shown, home, folder, run_id)
        _web(shown, home, run_id)
        _replay_and_debug(shown, home, pipeline, run_id)
        yield shown
    finally:
        shutil.rmtree(home, ignore_errors=True)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_no_output_holds_a_secret_in_any_encoding(shown: dict[str, str]) -> None:
    """Each output, for each secret in each form: the list of those that hold it is empty."""
    leaks = [
        f"{where}: {secret} ({form})"
        for where, text in shown.items()
        for secret, value in SECRETS.items()
        for form, written in forms(value).items()
        if written in text
    ]
    assert not leaks, "\n".join(["leaked (where: secret (form)):", *leaks])


#: Outputs that show the run's data, so each holds the marker where a secret was.
CARRIERS = (
    "run stderr (JSON log lines, console exporters)",
    "OTLP/HTTP span export",
    "runs show --source otlp-json",
    "serve /api/runs/ID",
    "runs show",
    "runs show --json",
    "logs --json",
    "dag json",
    "dag svg",
    "dump",
    "table spans",
    "table logs",
    "ui stream",
    "debug",
)


@pytest.mark.slow
def test_the_run_did_carry_its_secrets_into_the_outputs(shown: dict[str, str]) -> None:
    """The search above looked where the secrets went: the run log holds the lines that carried
    them, masked, and every output that shows the run's data holds the marker."""
    logs = shown["logs"]
    said = [
        f"deploying with {REDACTED}",
        f"signing with {REDACTED}",
        f"connecting with {REDACTED}, pin {REDACTED}",
        f"the key is {REDACTED}",
        f"Authorization: Bearer {REDACTED}",
        f"> Authorization: Basic {REDACTED}",
        f"the vault refused {REDACTED} at postgres://app:{REDACTED}@db:5432/x",
        f"rotated to {REDACTED}",
        f"token={REDACTED}",
    ]
    assert ([True] * len(said), []) == (
        [line in logs for line in said],
        [name for name in CARRIERS if REDACTED not in shown[name]],
    ), logs
