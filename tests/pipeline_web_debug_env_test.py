"""The run page's stage panel shows the environment of a stage held at a breakpoint (the
prompt's ``env``), in Debian's chromium driven by Playwright, against ``taskdaemon serve``
whose scheduled run pauses at ``--break build``."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import pytest

from browser_support import TOKEN, browser_page, first_run, server_url, state_of, taskdaemon

PIPELINE = """\
name: web-env
stages:
  - name: prepare
    command: "echo '{\\"target\\": \\"linux\\"}'"
    triggers: [{manual: {approval_required: false}}]
  - name: build
    command: "echo built for $TASKDAEMON_INPUT_TARGET"
    triggers: [{on_completion: {stage: prepare}}]
    inputs: {target: stages.prepare.outputs.target}
"""

#: A secret in serve's environment, which the command stage inherits.
SECRET = "sk-live-Zq8vR2mN4pL6tY1wX3cB"

pytestmark = pytest.mark.slow


async def test_the_stage_panel_shows_a_paused_stages_environment_masked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Picking ``build``, paused before its start: its panel has an Environment box with its
    command, ``TASKDAEMON_INPUT_TARGET=linux`` and ``API_TOKEN=[REDACTED]``, a line break in a
    value written ``\\x0a``, the secret nowhere on the page (before: no such box)."""
    (tmp_path / "env.yaml").write_text(PIPELINE)
    monkeypatch.setenv("API_TOKEN", SECRET)
    monkeypatch.setenv("TWO_LINES", "one\ntwo")
    argv = ["serve", "--pipeline", "env.yaml", "--max-runs", "1", "--port", "0", "--break", "build"]
    with taskdaemon(argv, cwd=tmp_path) as process:
        url = server_url(process)
        run_id = await first_run(url)
        async with browser_page() as (page, errors):
            await page.goto(f"{url}/?token={TOKEN}")
            await page.goto(f"{url}/runs/{run_id}")
            await page.wait_for_selector(state_of("build", "paused"))
            await page.click('#stages tr[data-stage="build"] button.select')
            box = await page.wait_for_selector("#stage-detail details.environment")
            await box.click()  # open it: its text is there either way
            text = await page.text_content("#stage-detail details.environment pre") or ""
            page_text = await page.content()
            await page.click(f'{state_of("build", "paused")} button[data-action="continue"]')
            await page.wait_for_selector('body[data-stream-state="ended"]')
        process.send_signal(signal.SIGTERM)
        assert 0 == await asyncio.to_thread(process.wait, 30)
    lines = text.splitlines()
    assert "command: echo built for $TASKDAEMON_INPUT_TARGET" == lines[0], lines
    assert "  TASKDAEMON_INPUT_TARGET=linux" in lines
    assert "  API_TOKEN=[REDACTED]" in lines
    assert "  TWO_LINES=one\\x0atwo" in lines
    assert (SECRET in page_text, errors) == (False, [])
