"""The fuzzer's environment target: the settings as a shell gives them, ``TASKDAEMON_*`` and
``OTEL_*`` variables, read by real commands (docs/input-limits.md, "Fuzzing"). :data:`TARGETS`
holds every target, this one and ``fuzz_targets_support``'s.

``fuzz_support``'s ``settings`` target gives one setting as a keyword of ``load_settings``; the
environment is read otherwise: a variable's name in any case, bytes that are not UTF-8, several
variables at once, and the variables read beside the settings' table (the OTLP headers, the
SDK's own variables of ``otel_variables``, the span sources' bounds, the store's retention). A
case sets one to four of them, some holding a credential (:data:`CANARY`: the API token, an
OTLP header, a URL's password, a resource attribute under a secret word), and runs one command
that reads the settings in ``fuzz_targets_support.scratch``'s home. The oracle: nothing escapes
the command, no traceback, no ``ESC`` or ``CR`` written (a variable's text driving the
terminal), and the credential, where each of its copies is still marked as one
(:data:`MARKS`), is in neither its output nor the dump it writes.
"""

from __future__ import annotations

import contextlib
import os
import random
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path

import fuzz_targets_support
from fuzz_support import MAX_ARGUMENT, RUN_ID, WORDS, Target, mutate
from fuzz_targets_support import CommandBrokeError, run_command, scratch
from taskdaemon.pipeline.otel_variables import SPAN_LIMITS
from taskdaemon.pipeline.otel_variables import VARIABLES as SDK_VARIABLES
from taskdaemon.pipeline.otlp_headers import VARIABLES as HEADER_VARIABLES
from taskdaemon.pipeline.settings import _FIELDS

#: A credential a case puts in the environment: no output, span, log or dump may hold it.
CANARY = "Cnry7q2Wx9Lm4Tz8Kp3V"

#: Every variable a command reads, with values in their form (a credential among them).
VARIABLES: dict[str, tuple[str, ...]] = {
    **{variable: () for variable, _ in _FIELDS.values()},
    **dict.fromkeys(HEADER_VARIABLES, (f"authorization=Bearer {CANARY}", f"x-api-key={CANARY}")),
    **dict.fromkeys(SDK_VARIABLES, ("1000", "0", "", "gzip")),
    **dict.fromkeys(SPAN_LIMITS, ("128", "0", "")),
    "TASKDAEMON_API_TOKEN": (CANARY, f" {CANARY} "),
    "TASKDAEMON_HOME": ("home", "dir", "fifo", "zero", "run.tar.gz", "missing", ""),
    "TASKDAEMON_SPAN_SOURCE": ("sqlite://home/spans.db", "dump://run.tar.gz", "otlp-json://fifo",
                               f"tempo+http://u:{CANARY}@127.0.0.1:9", "jaeger+http://127.0.0.1:9",
                               "sqlite://zero"),
    "TASKDAEMON_GRAFANA_URL": (f"http://u:{CANARY}@127.0.0.1:3000", "https://g.example/x"),
    "TASKDAEMON_API_PUBLIC_URL": (f"https://u:{CANARY}@t.example", "https://t.example/x"),
    "TASKDAEMON_API_TRUSTED_PROXY": ("127.0.0.1, ::1", "proxy.example"),
    "OTEL_EXPORTER_OTLP_ENDPOINT": (f"http://u:{CANARY}@127.0.0.1:4318", "http://127.0.0.1:9"),
    "OTEL_RESOURCE_ATTRIBUTES": (f"api_token={CANARY}", f"service.name=x,password={CANARY}"),
    "TASKDAEMON_SOURCE_TIMEOUT": ("30", "0.001", "1e400"),
    "TASKDAEMON_SOURCE_MAX_BYTES": ("1048576", "0", "9" * 30),
    "TASKDAEMON_RETENTION_MAX_AGE": ("30d", "0s", "9" * 30 + "d"),
    "TASKDAEMON_RETENTION_KEEP": ("5", "0", "-1"),
    "OTEL_EXPORTER_OTLP_TIMEOUT": ("10", "abc"),
    "OTEL_EXPORTER_OTLP_COMPRESSION": ("gzip", "zip"),
}  # fmt: skip
#: How a credential is marked as one in a value: a value whose mutation took its mark away
#: (``http://u:CANARYhost``, the ``@`` gone; ``api_0.1token=``, the word ``token`` glued to
#: another) holds no credential anyone could tell.
MARKS = (f":{CANARY}@", f"Bearer {CANARY}", f"-key={CANARY}", f"_token={CANARY}",
         f",password={CANARY}")  # fmt: skip
#: The variables naming a file: a case keeps them in its scratch folder.
PATHS = ("TASKDAEMON_HOME", "TASKDAEMON_SPAN_SOURCE")

#: What reads the settings: ``{run}`` is the run of the scratch folder's dump.
ENV_COMMANDS = (
    ("runs", "list"),
    ("runs", "show", "{run}", "--source", "dump://run.tar.gz"),
    ("logs", "{run}", "--source", "dump://run.tar.gz"),
    ("dag", "--run", "{run}"),
    ("report", "--since", "1900-01-01"),
    ("retention", "--keep", "5"),
    ("status", "{run}"),
    ("dump", "{run}", "--source", "dump://run.tar.gz", "-o", "out.tar.gz"),
    ("dump", "{run}", "-o", "out.tar.gz"),
)


def _env_value(rng: random.Random, variable: str) -> str:
    forms = VARIABLES[variable] or ("",)
    value = rng.choice(forms) if forms != ("",) and rng.random() < 0.6 else rng.choice(WORDS)
    if rng.random() < 0.5:
        mutated = mutate(rng, value, 3, MAX_ARGUMENT)
        outside = mutated.startswith("/") or "///" in mutated or ".." in mutated
        value = value if variable in PATHS and outside else mutated
    # No variable holds a NUL; a byte not of UTF-8 reads as a lone surrogate of U+DC80 to U+DCFF.
    return value.replace("\x00", "").replace("\ud800", "\udcff")


def _env_make(rng: random.Random) -> tuple[dict[str, str], tuple[str, ...]]:
    names = sorted(VARIABLES)
    environment = {}
    for _ in range(rng.randint(1, 4)):
        variable = rng.choice(names)
        spelt = variable.lower() if rng.random() < 0.1 else variable  # read in any case
        environment[spelt] = _env_value(rng, variable)
    command = tuple(word.replace("{run}", RUN_ID) for word in rng.choice(ENV_COMMANDS))
    return environment, command


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    saved = dict(os.environ)
    os.environ.update(values)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _env_run(case: tuple[dict[str, str], tuple[str, ...]]) -> None:
    environment, command = case
    with scratch() as root, _environment(environment):
        _, shown = run_command(list(command))
        if "\x1b" in shown or "\r" in shown:  # text from a variable drove the terminal
            raise CommandBrokeError(f"{command!r} wrote a control character: {shown[-1500:]!r}")
        if not _holds_credential(environment):
            return
        if CANARY in shown:
            raise CommandBrokeError(f"{command!r} showed the credential: {shown[-1500:]!r}")
        for dump in root.rglob("*.tar.gz"):
            if dump != root / "run.tar.gz" and CANARY.encode() in _members(dump):
                raise CommandBrokeError(f"{command!r} wrote the credential into {dump.name}")


def _holds_credential(environment: dict[str, str]) -> bool:
    """Whether :data:`CANARY` is in ``environment`` and each time marked as a credential
    (:data:`MARKS`; the API token is one whatever it holds)."""
    holding = [(name, value) for name, value in environment.items() if CANARY in value]
    return bool(holding) and all(
        name.upper() == "TASKDAEMON_API_TOKEN"
        or value.count(CANARY) == sum(value.count(mark) for mark in MARKS)
        for name, value in holding
    )


def _members(path: Path) -> bytes:
    """The bytes of every member of the archive at ``path``, one after another."""
    with tarfile.open(path, "r:gz") as archive:
        streams = (archive.extractfile(member) for member in archive)
        return b"".join(stream.read() for stream in streams if stream is not None)


TARGETS: dict[str, Callable[[], Target]] = {
    **fuzz_targets_support.TARGETS,
    "env": lambda: Target(_env_make, _env_run, ()),
}
