"""``--approve``'s refusals name what they refused without showing a secret: the environment's
and the request's secrets are known before the line is printed, and redacted before the
name is cut (``cli/approval_policy.py``, ``quoting.quote``)."""

from __future__ import annotations

from pathlib import Path

from cli_support import taskdaemon, write

LONG_TOKEN = "tok-" + "s3cr3t" * 10
PIPELINE = """\
    name: gated
    stages:
      - name: a
        command: "true"
        triggers: [{manual: {approval_required: false}}]
"""


def test_a_secret_given_to_approve_is_not_shown_in_the_refusal(home: Path, tmp_path: Path) -> None:
    """``run --approve "$DEPLOY_TOKEN"`` and ``--approve`` of the request's ``api_key``, both
    longer than a quote keeps: exit 2, one line each, neither value nor its start shown."""
    path = str(write(tmp_path / "p.yaml", PIPELINE))
    request_key = "key-" + "h1dden" * 10
    done = taskdaemon(
        home,
        "run",
        path,
        "--approve",
        LONG_TOKEN,
        "--approve",
        request_key,
        "--input",
        f"api_key={request_key}",
        DEPLOY_TOKEN=LONG_TOKEN,
    )
    assert (
        2,
        ["taskdaemon run: --approve '[REDACTED]': no such stage (stages: a)"] * 2,
        False,
    ) == (
        done.returncode,
        done.stderr.splitlines(),
        any(secret[:12] in done.stderr for secret in (LONG_TOKEN, request_key)),
    )
