"""Process settings: ``TASKDAEMON_*`` plus the standard ``OTEL_*`` variables, read once at start.

Every setting comes from the environment (pydantic-settings); an invalid value fails
:func:`load_settings` with :class:`~taskdaemon.pipeline.errors.SettingsError`, which names every
offending variable and the reason (the CLI prints it and exits with status 2).

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
                                definition gets 16 times as much
``TASKDAEMON_PAYLOAD_MAX_BYTES`` the older name of the cap: used only    ``4096``
                                when ``TASKDAEMON_CAPTURE_MAX_BYTES`` is
                                not set
``TASKDAEMON_REDACT_PATTERNS``  key words whose values are redacted      passwords, tokens, ...
``TASKDAEMON_EXPORT_TIMEOUT``   bound, seconds, on one OTLP export and   ``5``
                                on the whole telemetry shutdown
``TASKDAEMON_LOG_FORMAT``       ``json`` or ``text``                     ``text``
``TASKDAEMON_LOG_LEVEL``        ``trace``, ``debug``, ``info``,          ``INFO``
                                ``warning``, ``error`` (``critical``)
``TASKDAEMON_LOG_CAPTURE_MAX_LINES`` command output lines captured as  ``10000``
                                log records per stage execution
``TASKDAEMON_LOG_CAPTURE_MAX_BYTES`` the same bound in bytes            ``1048576``
``TASKDAEMON_API_TOKEN``        the HTTP API's token (16+ characters);   generated at start
                                required to bind beyond loopback
``TASKDAEMON_API_USER``         the principal the token stands for       the server's OS user
                                (recorded as the approver)
``TASKDAEMON_API_ALLOWED_HOSTS`` extra ``Host`` names the API answers    none (loopback and the
                                (comma list; ``*`` = any)                bind address only)
``TASKDAEMON_BREAKPOINTS``      breakpoints of ``run`` / ``debug``:      none
                                ``STAGE[:CEL]`` separated by ``;``
``TASKDAEMON_GRAFANA_URL``      Grafana's base URL: the web page links   no link
                                each run to its trace there (http/https)
=============================== ======================================= =========================

``TASKDAEMON_REDACT_PATTERNS`` is a JSON list of regular expressions, or a comma-separated list
when no pattern needs a comma. Each is matched in full against the words of a payload key
(``redaction.DEFAULT_REDACT_PATTERNS`` is the default, the library's list too); it replaces the
default list. Secrets of a known shape are redacted whatever this says (``docs/redaction.md``).

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
  SDK exporters themselves; only the endpoints' scheme is checked here. When no
  ``OTEL_EXPORTER_OTLP[_SIGNAL]_TIMEOUT`` is set the exporters get ``TASKDAEMON_EXPORT_TIMEOUT``
  instead of the SDK's 10 s, so a dead collector costs at most that per batch.
"""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from taskdaemon.pipeline.errors import SettingsError
from taskdaemon.pipeline.log_levels import level_number
from taskdaemon.pipeline.redaction import DEFAULT_REDACT_PATTERNS

__all__ = [
    "DEFAULT_REDACT_PATTERNS",
    "LOGS_EXPORTERS",
    "METRICS_EXPORTERS",
    "OTLP_PROTOCOLS",
    "TRACES_EXPORTERS",
    "Settings",
    "load_settings",
]

TRACES_EXPORTERS = frozenset({"otlp", "otlp_proto_grpc", "otlp_proto_http", "console", "none"})
METRICS_EXPORTERS = frozenset(
    {"prometheus", "otlp", "otlp_proto_grpc", "otlp_proto_http", "console", "none"}
)
LOGS_EXPORTERS = frozenset({"otlp", "otlp_proto_grpc", "otlp_proto_http", "console", "none"})
OTLP_PROTOCOLS = frozenset({"grpc", "http/protobuf"})

_OTLP_SIGNALS = ("TRACES", "METRICS", "LOGS")


def _otel(name: str) -> Any:
    """A field read from the standard variable ``name`` (no ``TASKDAEMON_`` prefix)."""
    return Field(default=None, validation_alias=AliasChoices(name))


class Settings(BaseSettings):
    """Every setting of one taskdaemon process; build it with :func:`load_settings`."""

    model_config = SettingsConfigDict(
        env_prefix="TASKDAEMON_",
        extra="ignore",
        frozen=True,
        populate_by_name=True,
    )

    home: Path = Path(".taskdaemon")
    span_source_url: str | None = Field(
        default=None, validation_alias=AliasChoices("TASKDAEMON_SPAN_SOURCE", "span_source_url")
    )
    metrics_host: str = "127.0.0.1"
    metrics_port: int = Field(default=9090, ge=0, le=65535)
    payload_max_bytes: int = Field(default=4096, ge=0)
    capture_max_bytes: int = Field(default=65536, ge=0)
    redact_patterns: Annotated[tuple[str, ...], NoDecode] = DEFAULT_REDACT_PATTERNS
    export_timeout: float = Field(default=5.0, gt=0, le=300)
    log_format: Literal["json", "text"] = "text"
    log_level: str = "INFO"
    api_token: SecretStr | None = None
    api_user: str | None = None
    api_allowed_hosts: Annotated[tuple[str, ...], NoDecode] = ()
    log_capture_max_lines: int = Field(default=10_000, ge=0)
    log_capture_max_bytes: int = Field(default=1_048_576, ge=0)
    breakpoints: str = ""  # parsed by cli/debug.py (``STAGE[:CEL]`` separated by ``;``)
    grafana_url: str | None = None

    otel_service_name: str | None = _otel("OTEL_SERVICE_NAME")
    otel_resource_attributes: str | None = _otel("OTEL_RESOURCE_ATTRIBUTES")
    otel_traces_exporter: Annotated[tuple[str, ...] | None, NoDecode] = _otel(
        "OTEL_TRACES_EXPORTER"
    )
    otel_metrics_exporter: Annotated[tuple[str, ...] | None, NoDecode] = _otel(
        "OTEL_METRICS_EXPORTER"
    )
    otel_logs_exporter: Annotated[tuple[str, ...] | None, NoDecode] = _otel("OTEL_LOGS_EXPORTER")
    otel_exporter_otlp_protocol: str | None = _otel("OTEL_EXPORTER_OTLP_PROTOCOL")
    otel_exporter_otlp_traces_protocol: str | None = _otel("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
    otel_exporter_otlp_metrics_protocol: str | None = _otel("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL")
    otel_exporter_otlp_logs_protocol: str | None = _otel("OTEL_EXPORTER_OTLP_LOGS_PROTOCOL")
    otel_exporter_otlp_endpoint: str | None = _otel("OTEL_EXPORTER_OTLP_ENDPOINT")
    otel_exporter_otlp_traces_endpoint: str | None = _otel("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    otel_exporter_otlp_metrics_endpoint: str | None = _otel("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT")
    otel_exporter_otlp_logs_endpoint: str | None = _otel("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT")

    # --- validation -------------------------------------------------------------------------

    @field_validator("redact_patterns", mode="before")
    @classmethod
    def _split_patterns(cls, value: Any) -> Any:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return tuple(json.loads(text))
            return tuple(part.strip() for part in text.split(",") if part.strip())
        return value

    @field_validator("redact_patterns")
    @classmethod
    def _compile_patterns(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for pattern in value:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"invalid regular expression {pattern!r}: {exc}") from None
        return value

    @field_validator("metrics_host")
    @classmethod
    def _check_host(cls, value: str) -> str:
        host = value.strip()
        if not host:
            raise ValueError("must not be empty (use 0.0.0.0 to listen on every interface)")
        return host

    @field_validator("api_token")
    @classmethod
    def _check_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value().strip()) < 16:
            raise ValueError("must have at least 16 characters")
        return value

    @field_validator("grafana_url")
    @classmethod
    def _check_grafana(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        if not value.strip().lower().startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value.strip()

    @field_validator("api_allowed_hosts", mode="before")
    @classmethod
    def _split_hosts(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("log_format", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("log_level")
    @classmethod
    def _check_level(cls, value: str) -> str:
        number = level_number(value)  # ValueError names the choices
        return str(logging.getLevelName(number))

    @field_validator(
        "otel_traces_exporter", "otel_metrics_exporter", "otel_logs_exporter", mode="before"
    )
    @classmethod
    def _split_exporters(cls, value: Any) -> Any:
        if isinstance(value, str):
            names = tuple(part.strip().lower() for part in value.split(",") if part.strip())
            return names or ("none",)
        return value

    @field_validator("otel_traces_exporter")
    @classmethod
    def _check_traces(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        return _check_names(value, TRACES_EXPORTERS)

    @field_validator("otel_metrics_exporter")
    @classmethod
    def _check_metrics(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        return _check_names(value, METRICS_EXPORTERS)

    @field_validator("otel_logs_exporter")
    @classmethod
    def _check_logs(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        return _check_names(value, LOGS_EXPORTERS)

    @field_validator(
        "otel_exporter_otlp_protocol",
        "otel_exporter_otlp_traces_protocol",
        "otel_exporter_otlp_metrics_protocol",
        "otel_exporter_otlp_logs_protocol",
    )
    @classmethod
    def _check_protocol(cls, value: str | None) -> str | None:
        if value is None:
            return None
        protocol = value.strip().lower()
        if protocol == "http/json":
            raise ValueError("http/json is not supported by the Python SDK; use http/protobuf")
        if protocol not in OTLP_PROTOCOLS:
            raise ValueError(f"must be grpc or http/protobuf, not {value!r}")
        return protocol

    @field_validator(
        "otel_exporter_otlp_endpoint",
        "otel_exporter_otlp_traces_endpoint",
        "otel_exporter_otlp_metrics_endpoint",
        "otel_exporter_otlp_logs_endpoint",
    )
    @classmethod
    def _check_endpoint(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not re.match(r"^https?://[^/\s]+", value.strip()):
            raise ValueError(f"must be an http:// or https:// URL, not {value!r}")
        return value.strip()

    @field_validator("otel_resource_attributes")
    @classmethod
    def _check_resource_attributes(cls, value: str | None) -> str | None:
        if value is None:
            return None
        for part in value.split(","):
            if part.strip() and "=" not in part:
                raise ValueError(f"expected key=value pairs separated by commas, got {part!r}")
        return value

    # --- derived values ---------------------------------------------------------------------

    @property
    def capture_limit(self) -> int:
        """The cap on each recorded value: ``TASKDAEMON_CAPTURE_MAX_BYTES``, else the older
        ``TASKDAEMON_PAYLOAD_MAX_BYTES`` when only that one is set, else 64 KiB (a request
        or a stage's outputs of a typical pipeline fit whole, so a replay can use them)."""
        if "payload_max_bytes" in self.model_fields_set and (
            "capture_max_bytes" not in self.model_fields_set
        ):
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


def _check_names(value: tuple[str, ...] | None, allowed: frozenset[str]) -> tuple[str, ...] | None:
    if value is None:
        return None
    unknown = [name for name in value if name not in allowed]
    if unknown:
        expected = ", ".join(sorted(allowed))
        raise ValueError(f"unknown exporter {', '.join(map(repr, unknown))}; expected {expected}")
    return value


def _variable_name(field: str) -> str:
    if field.upper().startswith(("OTEL_", "TASKDAEMON_")):
        return field.upper()  # pydantic reports aliased fields by their variable name
    info = Settings.model_fields.get(field)
    if info is not None and isinstance(info.validation_alias, AliasChoices):
        first = info.validation_alias.choices[0]
        if isinstance(first, str):
            return first
    return f"TASKDAEMON_{field.upper()}"


def load_settings(**overrides: Any) -> Settings:
    """Read the settings from the environment; ``overrides`` (field names) win over it.

    Raises :class:`SettingsError` listing each invalid variable with the reason.
    """
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = []
        for error in exc.errors(include_url=False):
            field = str(error["loc"][0]) if error["loc"] else "?"
            reason = str(error["msg"]).removeprefix("Value error, ")
            problems.append((_variable_name(field), reason))
        raise SettingsError(problems) from None
    except json.JSONDecodeError as exc:
        raise SettingsError([("TASKDAEMON_REDACT_PATTERNS", f"invalid JSON list: {exc}")]) from None
