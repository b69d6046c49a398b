"""What the definition loader's tests share (``pipeline_config*_test.py``): the test files'
folders, and loading or parsing a text to its pipeline or its one-line error."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from taskdaemon.pipeline.config import load_pipeline, parse_pipeline
from taskdaemon.pipeline.errors import ConfigError
from taskdaemon.pipeline.model import Pipeline

TESTS = Path(__file__).parent
VALID = TESTS / "pipelines" / "valid"
INVALID = TESTS / "pipelines" / "invalid"


def load_error(path: str | Path, **kwargs: object) -> ConfigError:
    """The ConfigError loading ``path`` raises (the test fails if it raises none)."""
    with pytest.raises(ConfigError) as caught:
        load_pipeline(path, **kwargs)  # type: ignore[arg-type]
    return caught.value


def parse_error(text: str, fmt: str = "yaml") -> str:
    """The message of the ConfigError parsing ``text`` (dedented) raises."""
    with pytest.raises(ConfigError) as caught:
        parse_pipeline(textwrap.dedent(text), fmt=fmt)  # type: ignore[arg-type]
    return str(caught.value)


def parse_text(text: str, **kwargs: object) -> Pipeline:
    """The pipeline of ``text``, dedented."""
    return parse_pipeline(textwrap.dedent(text), **kwargs)  # type: ignore[arg-type]


def one_stage(stage_fields: str, top: str = "") -> str:
    """A pipeline text with one command stage (entry by manual trigger) plus extra fields."""
    body = textwrap.indent(textwrap.dedent(stage_fields).strip(), "    ") if stage_fields else ""
    return (
        "name: demo\n"
        + textwrap.dedent(top)
        + "stages:\n  - name: build\n    command: make\n    triggers:\n      - manual: {}\n"
        + (body + "\n" if body else "")
    )
