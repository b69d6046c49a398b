"""Walks of mappings and lists read the remembered clean texts and still redact secrets."""

from __future__ import annotations

from taskdaemon.pipeline import redaction
from taskdaemon.pipeline.redaction import REDACTED, redact

TOKEN = "ghp_" + "a" * 36


def test_a_walk_skips_remembered_texts_and_redacts_secrets_every_time() -> None:
    """The second walk of the same values (their clean texts now remembered) returns the
    mapping and the list themselves when clean, and redacts the token-shaped text again."""
    clean = {"stage": "build.0.1", "fired": ["after lint succeeds"], "n": 3}
    dirty = {"stage": "build.0.1", "detail": f"token {TOKEN}", "list": ["x", f"t={TOKEN}"]}
    for _ in range(2):
        assert redact(clean) is clean
        assert redact(clean["fired"]) is clean["fired"]
        out = redact(dirty)
        assert out["stage"] == "build.0.1"
        assert TOKEN not in out["detail"]
        assert REDACTED in out["detail"]
        assert out["list"][0] == "x"
        assert TOKEN not in out["list"][1]
    assert "build.0.1" in redaction._clean
    assert f"token {TOKEN}" not in redaction._clean
