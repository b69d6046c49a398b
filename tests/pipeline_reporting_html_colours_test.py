"""The HTML report's colours (``reporting/_html.py``) in Debian's headless chromium: it follows
the reader's colour scheme, as the web page does, every text readable in both (WCAG AA), and
printed it stays dark on white. The report is the real command's, over real runs."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

from browser_support import CONTRASTS, browser_page
from cli_support import taskdaemon

pytestmark = pytest.mark.slow

#: A build whose tests fail: the report's tables, its critical paths and its three charts.
FAILING = """\
    name: failing-build
    stages:
      - name: compile
        command: "echo compiled"
        triggers: [{manual: {approval_required: false}}]
      - name: unit-tests
        command: "echo 'AssertionError: 2 != 3' >&2; exit 3"
        triggers: [{on_completion: {stage: compile}}]
"""

#: A note as the report writes one (a replayed or unended run's), added to the page: the runs
#: here make none.
NOTE = """() => {
  const note = document.createElement("p");
  note.className = "note";
  note.textContent = "failing-build: 1 run not ended yet is left out";
  document.querySelector("h2").before(note);
}"""


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``taskdaemon report --format html`` over two failed runs of :data:`FAILING`."""
    home = tmp_path_factory.mktemp("home")
    pipeline = home / "failing.yaml"
    pipeline.write_text(textwrap.dedent(FAILING))
    for _ in range(2):
        assert 1 == taskdaemon(home, "run", "-q", str(pipeline)).returncode
    page = home / "report.html"
    made = taskdaemon(home, "report", "--format", "html", "-o", str(page))
    assert 0 == made.returncode, made.stderr
    return page


async def _contrasts(report: Path, *, scheme: str, media: str = "screen") -> dict[str, Any]:
    async with browser_page() as (page, errors):
        await page.emulate_media(media=media, color_scheme=scheme)
        await page.goto(report.as_uri())
        await page.evaluate(NOTE)
        found: dict[str, Any] = await page.evaluate(CONTRASTS, True)
    assert [] == errors
    return found


@pytest.mark.parametrize("scheme", ["light", "dark"])
async def test_the_report_follows_the_colour_scheme_with_every_text_readable(
    report: Path, scheme: str
) -> None:
    """In the system's dark mode the page is dark (it stayed white, a glare beside the web
    page, which follows it), and in either mode every text, the charts' labels too, keeps a
    contrast of at least 4.5:1 against what is behind it (3:1 if large), WCAG 2's AA."""
    found = await _contrasts(report, scheme=scheme)
    texts = found["texts"]
    low = [(text, ratio) for text, ratio, large in texts if ratio < (3 if large else 4.5)]
    assert [] == low
    assert (scheme == "dark") == (found["page"] < 0.05)
    assert any(t.startswith("text.") and t.endswith(": compile") for t, _, _ in texts), texts
    assert any(text.startswith("P.note") for text, _, _ in texts), texts


async def test_the_printed_report_stays_dark_on_white_in_dark_mode(report: Path) -> None:
    """Printed from a desktop in dark mode, the page is still white with dark text: paper is
    white, and a dark page would print a sheet of toner."""
    found = await _contrasts(report, scheme="dark", media="print")
    assert found["page"] > 0.9
    assert [] == [(text, ratio) for text, ratio, _ in found["texts"] if ratio < 4.5]
