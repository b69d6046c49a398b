"""``log_rows.encode_attributes`` remembers the JSON of mappings it encoded: a mapping encoded
before a value in it became known as a secret is encoded again, masked, after."""

from __future__ import annotations

from taskdaemon.pipeline.log_rows import encode_attributes
from taskdaemon.pipeline.redaction import REDACTED
from taskdaemon.pipeline.secret_values import remember_secrets

SECRET = "fetched-s3cr3t-42"


def test_a_mapping_encoded_before_its_value_was_known_is_masked_after() -> None:
    """The same items, encoded before and after the value is remembered: the second JSON does
    not hold it (the remembered JSON was given back as it was)."""
    before = encode_attributes({"note": SECRET, "stage": "fetch"})
    remember_secrets({"token": SECRET})
    after = encode_attributes({"note": SECRET, "stage": "fetch"})
    assert (SECRET in before, f'"note": "{REDACTED}"' in after, SECRET in after) == (
        True,
        True,
        False,
    )
