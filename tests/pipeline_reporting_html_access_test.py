"""The HTML report (``reporting/_html.py``) to a screen reader, in Debian's headless chromium:
each chart is an image named by its caption and described by its figures in words, each table
has a caption. The report is the real command's, over real runs."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

from browser_support import browser_page
from cli_support import taskdaemon

pytestmark = pytest.mark.slow

#: A build whose tests fail: a stages table, critical paths, and the three charts.
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


async def _accessible(page: Any) -> tuple[list[tuple[str, str]], list[str]]:
    """What chromium's accessibility tree holds: each image's name and description, and
    every text and drawn mark a screen reader reads (a mark by its tooltip)."""
    cdp = await page.context.new_cdp_session(page)
    nodes = (await cdp.send("Accessibility.getFullAXTree"))["nodes"]
    await cdp.detach()
    shown = [node for node in nodes if not node.get("ignored")]
    images = [
        (node.get("name", {}).get("value", ""), node.get("description", {}).get("value", ""))
        for node in shown
        if node.get("role", {}).get("value") == "image"
    ]
    texts = [
        node.get("name", {}).get("value", "")
        for node in shown
        if node.get("role", {}).get("value") in ("StaticText", "graphics-symbol")
    ]
    return images, texts


async def test_each_chart_is_an_image_named_by_its_caption_and_described_in_words(
    report: Path,
) -> None:
    """A screen reader heard each chart as its axis labels run together ("0 0.1 0.2 ...
    compile unit-tests"), with no figure, and then each of those labels again: now it hears
    the caption as its name and the figures its marks' tooltips give as its description,
    listed in words under it too, and no label."""
    async with browser_page() as (page, errors):
        await page.goto(report.as_uri())
        captions = await page.locator("figcaption").all_inner_texts()
        images, texts = await _accessible(page)
        listed = [
            "; ".join(await figure.locator("details li").all_text_contents()) + "."
            for figure in await page.locator("figure").all()
        ]
        snapshot = await page.locator("figure").first.aria_snapshot()
    assert [] == errors
    assert 3 == len(captions)
    assert captions == [name for name, _ in images]
    box, timeline, daily = (description for _, description in images)
    assert [box.count("compile: min "), box.count("unit-tests: min ")] == [1, 1], box
    assert [
        timeline.count("compile attempt 1: ran "),
        timeline.count("unit-tests attempt 1: failed "),
        daily.count(" on "),
        daily.count(": p90 "),
    ] == [1, 1, 2, 2], (timeline, daily)
    assert listed == [box, timeline, daily]
    assert f'- img "{captions[0]}"' in snapshot, snapshot
    # The axes' labels and the marks are the image's, not read out after it one by one.
    drawn = ("duration (s)", "seconds since the run started", "p90 duration (s)", "compile ")
    assert [] == [text for text in texts if text.startswith(drawn)]


async def test_each_table_has_a_caption_a_screen_reader_lists_it_by(report: Path) -> None:
    """Tables had no caption, so a screen reader's list of tables read "table, 3 columns": the
    stages table is named by a caption it shows, one under a heading by that heading's words."""
    async with browser_page() as (page, errors):
        await page.goto(report.as_uri())
        snapshot = await page.locator("body").aria_snapshot()
        headings = await page.locator("h3").all_inner_texts()
    assert [] == errors
    tables = [line.strip() for line in snapshot.splitlines() if line.strip().startswith("- table")]
    named = ['- table "Stages of failing-build":'] + [
        f'- table "{heading}":' for heading in headings if heading.startswith("Critical path")
    ]
    assert named == tables, snapshot
