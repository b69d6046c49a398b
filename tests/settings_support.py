"""What the settings tests share (``pipeline_settings*_test.py``,
``pipeline_monitor_settings_test.py``): the problems ``load_settings`` refuses a value with,
given as a variable or as an override."""

from __future__ import annotations

from typing import Any

import pytest

from taskdaemon.pipeline.errors import SettingsError
from taskdaemon.pipeline.settings import load_settings


def load_problems(**overrides: Any) -> list[tuple[str, str]]:
    """The problems ``load_settings`` reports for ``overrides`` (the test fails if it takes
    them)."""
    with pytest.raises(SettingsError) as caught:
        load_settings(**overrides)
    return list(caught.value.problems)


def refusal(monkeypatch: pytest.MonkeyPatch, variable: str, value: str) -> list[tuple[str, str]]:
    """The problems ``load_settings`` reports with ``variable`` set to ``value``."""
    monkeypatch.setenv(variable, value)
    return load_problems()
