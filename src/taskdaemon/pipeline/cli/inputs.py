"""The request of a run from the command line (``--input KEY=VALUE``, ``--input-file F``),
shared by ``run``, ``serve``, ``debug`` and ``replay``."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from taskdaemon.pipeline.bounded import BoundedInputError, NotJSONError, loads_bounded
from taskdaemon.pipeline.model import Manual, OnCompletion, Pipeline
from taskdaemon.pipeline.quoting import quote
from taskdaemon.pipeline.yaml_import import yaml
from taskdaemon.pipeline.yamlsafe import MAX_YAML_BYTES, YamlLimitError, load_bounded

__all__ = ["missing_request_inputs", "parse_inputs"]


def parse_inputs(pairs: Sequence[str], input_file: str | None = None) -> dict[str, Any]:
    """The run's request: ``input_file``'s mapping, then each ``key=value`` on top.

    Raises ValueError with a one-line reason for a malformed pair or file.
    """
    request: dict[str, Any] = {}
    if input_file is not None:
        if not input_file.strip():  # Path("") is the current directory: "Is a directory"
            raise ValueError("--input-file: an empty path")
        try:
            with open(input_file, "rb") as stream:  # never more than the limit: /dev/zero
                content = stream.read(MAX_YAML_BYTES + 1)
        except OSError as error:
            raise ValueError(f"--input-file {input_file}: {error.strerror or error}") from None
        try:
            text = content.decode("utf-8")
        except UnicodeDecodeError as error:
            raise ValueError(f"--input-file {input_file}: not UTF-8 (byte {error.start})") from None
        del content
        try:
            if Path(input_file).suffix.lower() == ".json":  # JSON's numbers: 1e3 (YAML 1.1: text)
                data = loads_bounded(text, max_bytes=MAX_YAML_BYTES)
            else:
                data = load_bounded(text)  # bounded: it may be an alias bomb
        except (YamlLimitError, BoundedInputError) as error:
            raise ValueError(f"--input-file {input_file}: {error}") from None
        except yaml.YAMLError as error:
            first = str(error).splitlines()[0] if str(error) else "invalid"
            raise ValueError(f"--input-file {input_file}: not JSON or YAML: {first}") from None
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise ValueError(f"--input-file {input_file}: expected a mapping at the top")
        request.update({str(key): value for key, value in data.items()})
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        key = key.strip()
        # Worded so that no part of it reads as ``key: value``: the line is redacted on its way
        # out, and ``'password': expected ...`` lost its reason to ``[REDACTED]``.
        if not sep:
            raise ValueError(f"--input {quote(pair)} has no '=': expected KEY=VALUE")
        if not key:  # not quoted: what follows the '=' is a value, maybe a secret
            raise ValueError("--input has no key before its '=': expected KEY=VALUE")
        try:
            value: Any = loads_bounded(raw)
        except NotJSONError:
            value = raw  # not JSON: the text itself
        except BoundedInputError as error:
            raise ValueError(f"--input {key}: {error}") from None
        request[key] = value
    return request


#: A required input whose source is a key of the request itself (``request.goal``).
_REQUEST_KEY = re.compile(r"\s*request\.([A-Za-z_][A-Za-z0-9_]*)\s*")


def missing_request_inputs(pipeline: Pipeline, request: Mapping[str, Any]) -> str | None:
    """One line naming the request's keys that a stage certainly reads and ``request`` lacks,
    and the option that passes them; None when there is none.

    The engine finds a missing key only when the stage reading it starts, maybe long after the
    run did, while the request is known at the start. Only a stage that runs in every run
    that succeeds is checked: one that starts with the run, or on the completion of such
    stages alone. A stage behind a condition, an event or an approval may never run, and its
    condition may be the very test for the key (``has(request.goal)``): the engine's own
    check, at its start, stays the one for it.

    The line is redacted already and must not be again (``--input token=VALUE`` reads as a
    secret assigned): a key is a CEL identifier of the pipeline file, a stage name is quoted.
    """
    if not any(stage.inputs for stage in pipeline.stages):
        return None  # no walk: it costs every stage of every run
    certain: dict[str, None] = {}  # an ordered set: the message names stages in order
    for name in pipeline.topological_order:
        stage = pipeline.stage_map[name]
        if stage.triggers and all(
            (isinstance(t, Manual) and not t.approval_required)
            or (isinstance(t, OnCompletion) and t.stage in certain)
            for t in stage.triggers
        ):
            certain[name] = None
    missing: dict[str, str] = {}
    for name in certain:
        for mapping in pipeline.stage_map[name].inputs:
            match = _REQUEST_KEY.fullmatch(mapping.source)
            if mapping.required and match and match[1] not in request:
                missing.setdefault(match[1], name)
    if not missing:
        return None
    needs = ", ".join(f"{quote(key)} (stage {quote(stage)})" for key, stage in missing.items())
    options = " ".join(f"--input {key}=VALUE" for key in missing)
    return f"the request lacks {needs}: pass {options}"
