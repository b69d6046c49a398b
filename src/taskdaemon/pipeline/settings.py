"""Process settings: ``TASKDAEMON_*`` plus the standard ``OTEL_*`` variables, read once at start.

Every setting comes from the environment; an invalid value fails :func:`load_settings` with
:class:`~taskdaemon.pipeline.errors.SettingsError`, which names every offending variable and the
reason (the CLI prints it and exits with status 2).

Which command refuses what: every command that reads any setting checks all of them once, at
start, before it does anything (``cli._check_settings``); the commands that read none
(``validate``, ``dag`` of a file, ``--help``, ``--version``) check none. A setting is one
environment shared by every command of a shell, so a mistake shows at the first command that
reads the environment, not later in the one ``run`` that happens to use the wrong variable (a
port that ``runs list`` never opens still fails it); a command that reads no setting cannot be
misled by one, and keeps its start-up free of this module. The command then reads the
settings for its own use (``run`` in two more places) without parsing them again:
:func:`load_settings` keeps what it made of the environment until the environment changes.
``TASKDAEMON_RETENTION_MAX_AGE`` and ``TASKDAEMON_RETENTION_KEEP`` are the store's, checked
where a command opens it (``tracking/store.py``).

The loader is a small typed one, not a settings library: it runs on the start-up path of every
command (``taskdaemon run`` must reach its first stage within 150 ms, a budget pydantic-settings
alone exceeded: ``benchmarks/README.md``, "CLI start-up"). It keeps the behaviour the settings had:
variable names are matched without regard to case (an exact upper-case name wins), an empty value is
a value (``""`` is not a valid port), numbers are parsed as Python literals (``1_000``) written in
ASCII (``int`` alone would take ``９０９０``: docs/architecture.md, "Settings"), and the
reasons read like pydantic's (``Input should be less than or equal to 65535``), so scripts matching
them keep working; a number's reason then quotes the value (``, not '65536'``), as the span
source bounds', the protocols' and the log level's do, so the one line a command prints shows
what to fix. Keyword overrides of :func:`load_settings` (field names) are validated the same
way; an unknown one is a ``TypeError``. Each variable's parser is in ``settings_parsers``; this
module is the table of them and the reading of the environment.

taskdaemon's own variables:

=============================== ======================================= =========================
variable                        meaning                                 default
=============================== ======================================= =========================
``TASKDAEMON_HOME``             state directory (span store, workspaces) ``./.taskdaemon``
``TASKDAEMON_SPAN_SOURCE``      where runs are read from and stored      ``sqlite:///$HOME/spans.db``
``TASKDAEMON_METRICS_HOST``     address of the HTTP server (never empty) ``127.0.0.1``
``TASKDAEMON_METRICS_PORT``     port of the HTTP server (0 = any free)   ``9090``
``TASKDAEMON_CAPTURE_MAX_BYTES`` cap of each value recorded for replay  ``65536``
                                (request, inputs, outputs, events); the
                                definition gets 16 times as much; 0
                                records sizes and hashes only
``TASKDAEMON_PAYLOAD_MAX_BYTES`` the older name of the cap: used only    ``4096``
                                when ``TASKDAEMON_CAPTURE_MAX_BYTES`` is
                                not set
``TASKDAEMON_REDACT_PATTERNS``  key words whose values are redacted      passwords, tokens, ...
``TASKDAEMON_EXPORT_TIMEOUT``   bound, seconds, on one OTLP export and   ``5``
                                on the whole telemetry shutdown
``TASKDAEMON_LOG_FORMAT``       ``json`` or ``text``                     ``text``
``TASKDAEMON_LOG_LEVEL``        ``trace``, ``debug``, ``info``,          ``INFO``
                                ``warning``, ``error``, ``critical``
``TASKDAEMON_LOG_CAPTURE_MAX_LINES`` command output lines captured as  ``10000``
                                log records per stage execution (0:
                                none, one warning says how much)
``TASKDAEMON_LOG_CAPTURE_MAX_BYTES`` the same bound in bytes            ``1048576``
``TASKDAEMON_STDOUT_MAX_BYTES`` bytes of a command stage's stdout kept   ``67108864`` (64 MiB)
                                as its result; past it the stage fails
``TASKDAEMON_API_TOKEN``        the HTTP API's token (16+ characters);   generated at start
                                required to bind beyond loopback
``TASKDAEMON_API_USER``         the principal the token stands for       the server's OS user
                                (recorded as the approver)
``TASKDAEMON_API_ALLOWED_HOSTS`` extra ``Host`` names the API answers    none (loopback and the
                                (comma list; ``*`` = any)                bind address only)
``TASKDAEMON_API_PUBLIC_URL``   the address people open the server at    none
                                behind a proxy (``https://host``): an
                                ``https`` one makes the session cookie
                                ``Secure``; its host is allowed
``TASKDAEMON_API_TRUSTED_PROXY`` proxies whose ``X-Forwarded-For`` last  none (the socket's peer
                                hop is the client wrong tokens count     counts)
                                under (addresses or networks, comma
                                list; ``forwarded_for``)
``TASKDAEMON_BREAKPOINTS``      breakpoints of ``run`` / ``debug`` /     none
                                ``serve --pipeline``:
                                ``STAGE[:CEL]`` separated by ``;``
``TASKDAEMON_GRAFANA_URL``      Grafana's base URL: the web page links   no link
                                each run to its trace there (http/https,
                                no user or password)
=============================== ======================================= =========================

Numbers: surrounding spaces are ignored; an empty value is refused (the source bounds and the
retention variables, read elsewhere, take empty as unset); whole numbers are written as Python
writes them (``1_000``, and ``5.0`` is 5), ``-0`` is 0; NaN, infinities and ``1e999`` are refused.
A cap past any size (``99999999999999999999`` bytes) is taken as no cap, except where the number
goes on to SQLite or a socket, which bound it (the port, ``TASKDAEMON_RETENTION_KEEP``).

0 for the capture caps is a choice, not a mistake: ``TASKDAEMON_CAPTURE_MAX_BYTES=0`` records no
value for replay, only each value's size and hash (a run whose inputs must not be kept), and
``replay`` then names what it lacks and how to supply it (the pipeline file, ``--input``);
``TASKDAEMON_LOG_CAPTURE_MAX_LINES`` or ``_BYTES`` at 0 keeps no command output as log records,
and one warning record a stage says how many lines were dropped
(``tests/pipeline_settings_zero_caps_test.py``).

``TASKDAEMON_REDACT_PATTERNS`` is a JSON list of regular expressions, or a comma-separated list
when no pattern needs a comma; one Python warns about (``x[[a]``, a set whose meaning is to
change) is refused as one that does not compile. Each is matched in full against the words of
a payload key (``redaction.DEFAULT_REDACT_PATTERNS`` is the default, the library's list too); it
replaces the default list. Secrets of a known shape are redacted whatever this says
(``docs/redaction.md``).

Standard OpenTelemetry variables, honoured as the SDK defines them:

* ``OTEL_SERVICE_NAME``, ``OTEL_RESOURCE_ATTRIBUTES``: validated here, read by
  ``Resource.create`` (service name defaults to ``taskdaemon``).
* ``OTEL_TRACES_EXPORTER``: comma list of ``otlp``, ``otlp_proto_grpc``, ``otlp_proto_http``,
  ``console``, ``none``. Decision: unlike the SDK's ``otlp`` default, taskdaemon's default is
  ``none`` (spans already go to the embedded store, and a CLI should not dial a collector
  nobody started) **unless** ``OTEL_EXPORTER_OTLP_ENDPOINT`` or
  ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` is set, which selects ``otlp``.
* ``OTEL_METRICS_EXPORTER``: comma list of ``prometheus``, ``otlp``…, ``console``, ``none``;
  default ``prometheus``. ``prometheus`` always means *our* reader served on ``/metrics`` (one
  reader per registry, so no duplicate series), never a second HTTP server on 9464.
* ``OTEL_LOGS_EXPORTER``: ``otlp``…, ``console``, ``none``; default ``none`` **unless**
  ``OTEL_EXPORTER_OTLP_ENDPOINT`` or ``OTEL_EXPORTER_OTLP_LOGS_ENDPOINT`` is set, which selects
  ``otlp`` (as for traces: a configured collector gets the run logs beside the spans).
* ``OTEL_EXPORTER_OTLP[_TRACES|_METRICS|_LOGS]_PROTOCOL``: ``grpc`` (default) or
  ``http/protobuf`` (``http/json`` is rejected: the Python SDK has no such exporter).
* ``OTEL_EXPORTER_OTLP_*`` endpoints, headers, timeouts, certificates, compression: read by the
  SDK exporters themselves; the endpoints' scheme, host and port are checked here (``http_url``,
  as span sources' URLs are; a user or password in one is refused: credentials go in the
  headers), the headers' form (``otlp_headers``), and the timeouts, compression, certificate
  files and ``INSECURE`` with the SDK's other variables (the span limits, the batch
  processors', the metric reader's: ``otel_variables``). When no
  ``OTEL_EXPORTER_OTLP[_SIGNAL]_TIMEOUT`` is set the exporters get ``TASKDAEMON_EXPORT_TIMEOUT``
  instead of the SDK's 10 s, so a dead collector costs at most that per batch.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final, Literal

from taskdaemon.pipeline import settings_parsers as parsers
from taskdaemon.pipeline.errors import SettingsError
from taskdaemon.pipeline.frozen import field, frozen
from taskdaemon.pipeline.log_levels import level_number
from taskdaemon.pipeline.otel_variables import sdk_problems
from taskdaemon.pipeline.otlp_headers import header_problems
from taskdaemon.pipeline.record_fields import fields
from taskdaemon.pipeline.redaction import DEFAULT_REDACT_PATTERNS
from taskdaemon.pipeline.settings_parsers import (
    LOGS_EXPORTERS,
    METRICS_EXPORTERS,
    OTLP_PROTOCOLS,
    TRACES_EXPORTERS,
)
from taskdaemon.pipeline.span_source_forms import SPAN_SOURCE_SCHEMES, SPAN_SOURCE_USAGE
from taskdaemon.pipeline.value_methods import ValueMethods
from taskdaemon.pipeline.variables import reader

__all__ = [
    "DEFAULT_REDACT_PATTERNS",
    "LOGS_EXPORTERS",
    "METRICS_EXPORTERS",
    "OTLP_PROTOCOLS",
    "SPAN_SOURCE_SCHEMES",
    "SPAN_SOURCE_USAGE",
    "TRACES_EXPORTERS",
    "Secret",
    "Settings",
    "load_settings",
]

_MASK = "**********"


class Secret:
    """A secret setting (the API token): shown as ``**********`` by ``str``, ``repr`` and
    :meth:`Settings.as_json`; :meth:`get_secret_value` is the one way to read it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def get_secret_value(self) -> str:
        """The secret itself."""
        return self._value

    def __repr__(self) -> str:
        return f"Secret('{_MASK}')"

    def __str__(self) -> str:
        return _MASK

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@frozen
class Settings(ValueMethods):
    """Every setting of one taskdaemon process; build it with :func:`load_settings`."""

    home: Path = Path(".taskdaemon")
    span_source_url: str | None = None
    metrics_host: str = "127.0.0.1"
    metrics_port: int = 9090
    payload_max_bytes: int = 4096
    capture_max_bytes: int = 65536
    redact_patterns: tuple[str, ...] = DEFAULT_REDACT_PATTERNS
    export_timeout: float = 5.0
    log_format: Literal["json", "text"] = "text"
    log_level: str = "INFO"
    api_token: Secret | None = None
    api_user: str | None = None
    api_allowed_hosts: tuple[str, ...] = ()
    log_capture_max_lines: int = 10_000
    log_capture_max_bytes: int = 1_048_576
    stdout_max_bytes: int = 64 * 1024 * 1024
    breakpoints: str = ""  # parsed by cli/debug.py (``STAGE[:CEL]`` separated by ``;``)
    grafana_url: str | None = None
    api_public_url: str | None = None
    api_trusted_proxy: tuple[str, ...] = ()

    otel_service_name: str | None = None
    otel_resource_attributes: str | None = None
    otel_traces_exporter: tuple[str, ...] | None = None
    otel_metrics_exporter: tuple[str, ...] | None = None
    otel_logs_exporter: tuple[str, ...] | None = None
    otel_exporter_otlp_protocol: str | None = None
    otel_exporter_otlp_traces_protocol: str | None = None
    otel_exporter_otlp_metrics_protocol: str | None = None
    otel_exporter_otlp_logs_protocol: str | None = None
    otel_exporter_otlp_endpoint: str | None = None
    otel_exporter_otlp_traces_endpoint: str | None = None
    otel_exporter_otlp_metrics_endpoint: str | None = None
    otel_exporter_otlp_logs_endpoint: str | None = None

    #: The fields given a value (by a variable or an override) rather than defaulted.
    fields_set: frozenset[str] = field(default=frozenset(), repr=False, compare=False)

    # --- derived values ---------------------------------------------------------------------

    @property
    def capture_limit(self) -> int:
        """The cap on each recorded value: ``TASKDAEMON_CAPTURE_MAX_BYTES``, else the older
        ``TASKDAEMON_PAYLOAD_MAX_BYTES`` when only that one is set, else 64 KiB (a request
        or a stage's outputs of a typical pipeline fit whole, so a replay can use them)."""
        if "payload_max_bytes" in self.fields_set and "capture_max_bytes" not in self.fields_set:
            return self.payload_max_bytes
        return self.capture_max_bytes

    @property
    def span_source(self) -> str:
        """The span source URL: ``TASKDAEMON_SPAN_SOURCE`` or ``sqlite:///$HOME/spans.db``."""
        if self.span_source_url:
            return self.span_source_url
        return f"sqlite:///{(self.home / 'spans.db').as_posix()}"

    @property
    def service_name(self) -> str:
        """``OTEL_SERVICE_NAME``, else ``service.name`` of the resource attributes, else ours."""
        if self.otel_service_name:
            return self.otel_service_name
        for part in (self.otel_resource_attributes or "").split(","):
            key, _, val = part.partition("=")
            if key.strip() == "service.name" and val.strip():
                return val.strip()
        return "taskdaemon"

    @property
    def traces_exporters(self) -> tuple[str, ...]:
        """Span exporters to build (normalised; empty means none). See the module docstring."""
        names = self.otel_traces_exporter
        if names is None:
            has_endpoint = (
                self.otel_exporter_otlp_endpoint or self.otel_exporter_otlp_traces_endpoint
            )
            names = ("otlp",) if has_endpoint else ()
        return tuple(n for n in names if n != "none")

    @property
    def metrics_exporters(self) -> tuple[str, ...]:
        """Metric exporters to build; ``prometheus`` is our own reader behind ``/metrics``."""
        names = self.otel_metrics_exporter or ("prometheus",)
        return tuple(dict.fromkeys(n for n in names if n != "none"))

    @property
    def logs_exporters(self) -> tuple[str, ...]:
        """Log exporters to build (empty means logs stay local)."""
        names = self.otel_logs_exporter
        if names is None:
            has_endpoint = self.otel_exporter_otlp_endpoint or self.otel_exporter_otlp_logs_endpoint
            names = ("otlp",) if has_endpoint else ()
        return tuple(n for n in names if n != "none")

    def otlp_protocol(self, signal: Literal["traces", "metrics", "logs"]) -> str:
        """The OTLP protocol of one signal: its own variable, else the general one, else grpc."""
        specific = getattr(self, f"otel_exporter_otlp_{signal}_protocol")
        return str(specific or self.otel_exporter_otlp_protocol or "grpc")

    def otlp_timeout_is_set(self, signal: Literal["traces", "metrics", "logs"]) -> bool:
        """True when the user chose an OTLP timeout for ``signal`` (we then leave it alone)."""
        return any(
            os.environ.get(name)
            for name in (
                "OTEL_EXPORTER_OTLP_TIMEOUT",
                f"OTEL_EXPORTER_OTLP_{signal.upper()}_TIMEOUT",
            )
        )

    @property
    def log_level_number(self) -> int:
        """``log_level`` as the :mod:`logging` number."""
        return level_number(self.log_level)

    def as_json(self) -> dict[str, Any]:
        """Every field as a JSON value (paths and tuples as text and lists, the token masked),
        for a debug dump; the caller redacts what it must."""
        values: dict[str, Any] = {}
        for item in fields(self):
            if item.name == "fields_set":
                continue
            value = getattr(self, item.name)
            if isinstance(value, Path | Secret):
                value = str(value)
            elif isinstance(value, tuple):
                value = list(value)
            values[item.name] = value
        return values


# --- parsing ---------------------------------------------------------------------------------
# Each field's parser is from ``settings_parsers``, but the token's, which makes a Secret.


def _token(value: Any) -> Secret:
    text = value.get_secret_value() if isinstance(value, Secret) else parsers.text(value)
    if len(text.strip()) < 16:
        raise ValueError("must have at least 16 characters")
    return Secret(text)


#: Each field's variable and parser (a field not listed here is not a setting).
_FIELDS: dict[str, tuple[str, parsers.Parser]] = {
    "home": ("TASKDAEMON_HOME", parsers.home),
    "span_source_url": ("TASKDAEMON_SPAN_SOURCE", parsers.optional(parsers.span_source)),
    "metrics_host": ("TASKDAEMON_METRICS_HOST", parsers.host),
    "metrics_port": ("TASKDAEMON_METRICS_PORT", parsers.integer(ge=0, le=65535)),
    "payload_max_bytes": ("TASKDAEMON_PAYLOAD_MAX_BYTES", parsers.integer(ge=0)),
    "capture_max_bytes": ("TASKDAEMON_CAPTURE_MAX_BYTES", parsers.integer(ge=0)),
    "redact_patterns": ("TASKDAEMON_REDACT_PATTERNS", parsers.patterns),
    "export_timeout": ("TASKDAEMON_EXPORT_TIMEOUT", parsers.number(gt=0, le=300)),
    "log_format": ("TASKDAEMON_LOG_FORMAT", parsers.log_format),
    "log_level": ("TASKDAEMON_LOG_LEVEL", parsers.log_level),
    "api_token": ("TASKDAEMON_API_TOKEN", parsers.optional(_token)),
    "api_user": ("TASKDAEMON_API_USER", parsers.optional(parsers.text)),
    "api_allowed_hosts": ("TASKDAEMON_API_ALLOWED_HOSTS", parsers.words),
    "log_capture_max_lines": ("TASKDAEMON_LOG_CAPTURE_MAX_LINES", parsers.integer(ge=0)),
    "log_capture_max_bytes": ("TASKDAEMON_LOG_CAPTURE_MAX_BYTES", parsers.integer(ge=0)),
    # 0 would fail every command stage (its stdout, however short, over the bound).
    "stdout_max_bytes": ("TASKDAEMON_STDOUT_MAX_BYTES", parsers.integer(ge=1)),
    "breakpoints": ("TASKDAEMON_BREAKPOINTS", parsers.text),
    "grafana_url": ("TASKDAEMON_GRAFANA_URL", parsers.optional(parsers.grafana_url)),
    "api_public_url": ("TASKDAEMON_API_PUBLIC_URL", parsers.optional(parsers.public_url)),
    "api_trusted_proxy": ("TASKDAEMON_API_TRUSTED_PROXY", parsers.proxies),
    "otel_service_name": ("OTEL_SERVICE_NAME", parsers.optional(parsers.text)),
    "otel_resource_attributes": (
        "OTEL_RESOURCE_ATTRIBUTES",
        parsers.optional(parsers.resource_attributes),
    ),
    "otel_traces_exporter": (
        "OTEL_TRACES_EXPORTER",
        parsers.optional(parsers.exporters(TRACES_EXPORTERS)),
    ),
    "otel_metrics_exporter": (
        "OTEL_METRICS_EXPORTER",
        parsers.optional(parsers.exporters(METRICS_EXPORTERS)),
    ),
    "otel_logs_exporter": (
        "OTEL_LOGS_EXPORTER",
        parsers.optional(parsers.exporters(LOGS_EXPORTERS)),
    ),
    "otel_exporter_otlp_protocol": (
        "OTEL_EXPORTER_OTLP_PROTOCOL",
        parsers.optional(parsers.protocol),
    ),
    "otel_exporter_otlp_traces_protocol": (
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
        parsers.optional(parsers.protocol),
    ),
    "otel_exporter_otlp_metrics_protocol": (
        "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL",
        parsers.optional(parsers.protocol),
    ),
    "otel_exporter_otlp_logs_protocol": (
        "OTEL_EXPORTER_OTLP_LOGS_PROTOCOL",
        parsers.optional(parsers.protocol),
    ),
    "otel_exporter_otlp_endpoint": (
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        parsers.optional(parsers.endpoint),
    ),
    "otel_exporter_otlp_traces_endpoint": (
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        parsers.optional(parsers.endpoint),
    ),
    "otel_exporter_otlp_metrics_endpoint": (
        "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
        parsers.optional(parsers.endpoint),
    ),
    "otel_exporter_otlp_logs_endpoint": (
        "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
        parsers.optional(parsers.endpoint),
    ),
}


#: The settings that name a file, whose bytes need not be text: the others are text that
#: goes into spans, logs and headers.
_PATHS: Final = frozenset(("home", "span_source_url"))


def _environment_values(environ: Mapping[str, str]) -> dict[str, str]:
    """The raw text of each setting found in ``environ``: the exact name, else any spelling
    of it in another case (as the settings have always been read)."""
    raw: dict[str, str] = {}
    lookup = reader(environ)
    for name, (name_of_variable, _) in _FIELDS.items():
        value = lookup(name_of_variable)
        if value is not None:
            raw[name] = value
    return raw


def load_settings(**overrides: Any) -> Settings:
    """Read the settings from the environment; ``overrides`` (field names) win over it.

    Raises :class:`SettingsError` listing each invalid variable with the reason, and
    ``TypeError`` for an override that names no setting. The environment is parsed once for
    as long as it stays the same (:func:`_parsed_environment`).
    """
    unknown = sorted(set(overrides) - set(_FIELDS))
    if unknown:
        raise TypeError(f"load_settings: no such setting {', '.join(unknown)}")
    values, problems = _parsed_environment()
    for name, value in overrides.items():
        variable, parse = _FIELDS[name]
        problems.pop(name, None)  # an override replaces the variable, valid or not
        try:
            values[name] = parse(value)
        except ValueError as exc:
            problems[name] = (variable, str(exc))
    if problems:
        raise SettingsError(list(problems.values()))
    return Settings(**values, fields_set=frozenset(values))


#: The environment last parsed, and what :func:`_parsed_environment` made of it: the command
#: line checks the settings before a command starts (``cli._check_settings``), then the command
#: (``run``, ``serve``, ``ui``...) reads them for its own use, and finds them parsed.
_last_environ: dict[str, str] | None = None
_last_parsed: tuple[dict[str, Any], dict[str, tuple[str, str]]] = ({}, {})


def _parsed_environment() -> tuple[dict[str, Any], dict[str, tuple[str, str]]]:
    """The values of the settings the process's environment sets, by field, and the problems
    of those it refuses (by field, or by variable for the span source bounds): copies, parsed
    again only when the environment changed since the last call."""
    global _last_environ, _last_parsed
    environ = dict(os.environ)
    if environ != _last_environ:
        values: dict[str, Any] = {}
        problems: dict[str, tuple[str, str]] = {}
        for name, value in _environment_values(environ).items():
            variable, parse = _FIELDS[name]
            try:
                if name not in _PATHS:
                    parsers.utf8(value)
                values[name] = parse(value)
            except ValueError as exc:
                problems[name] = (variable, str(exc))
        # Read from the copy: each lookup in os.environ encodes the name, and these look up
        # some forty names on every command's start.
        checked = (*_source_bound_problems(), *sdk_problems(environ), *header_problems(environ))
        problems.update((variable, (variable, why)) for variable, why in checked)
        _last_environ, _last_parsed = environ, (values, problems)
    return dict(_last_parsed[0]), dict(_last_parsed[1])


def _source_bound_problems() -> list[tuple[str, str]]:
    """What is wrong with ``TASKDAEMON_SOURCE_TIMEOUT`` / ``_MAX_BYTES``, the bounds every span
    source reads (``tracking._remote.RemoteLimits``): refused with the other settings, so
    ``serve`` and ``ui`` stop at start rather than fail their API's requests later."""
    from taskdaemon.pipeline.tracking._remote import RemoteLimits  # noqa: PLC0415

    try:
        RemoteLimits.from_env()
    except SettingsError as error:
        return list(error.problems)
    return []
