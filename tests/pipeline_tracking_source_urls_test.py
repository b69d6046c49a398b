"""Span source URLs cut into their parts (``tracking/source_urls.py``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from taskdaemon.pipeline.errors import SpanSourceError
from taskdaemon.pipeline.tracking import source_urls
from taskdaemon.pipeline.tracking.source_urls import (
    LogsPlace,
    file_path,
    logs_place,
    scheme_of,
    sqlite_path,
    store_path,
)


def test_scheme_of_is_lower_cased_and_empty_for_a_path() -> None:
    """A URL's scheme is read lower-cased, and a plain path has none."""
    assert ("tempo+http", "") == (scheme_of("TEMPO+HTTP://h:1"), scheme_of("/tmp/spans.db"))


def test_sqlite_paths_follow_sqlalchemy() -> None:
    """Three slashes name a relative path and four an absolute one."""
    expected = (Path("rel/spans.db"), Path("/abs/spans.db"))
    assert expected == (
        sqlite_path("sqlite:///rel/spans.db"),
        sqlite_path("sqlite:////abs/spans.db"),
    )


def test_a_sqlite_url_without_a_path_is_refused() -> None:
    """``sqlite:///`` alone names no file."""
    with pytest.raises(SpanSourceError, match="no path"):
        sqlite_path("sqlite:///")


def test_a_file_url_without_a_path_names_its_scheme() -> None:
    """``dump://`` alone is refused as a dump URL."""
    with pytest.raises(SpanSourceError, match="bad dump URL 'dump://': no path"):
        file_path("dump://")


def test_store_path_takes_a_plain_path_as_it_is() -> None:
    """A path without a scheme is the store's file itself."""
    assert Path("/x/spans.db") == store_path("/x/spans.db")


def test_store_path_of_a_remote_source_hides_its_password() -> None:
    """Refusing a remote source for run logs never shows the URL's password."""
    with pytest.raises(SpanSourceError) as raised:
        store_path("tempo+https://me:s3cret@tempo:3200")
    assert (
        "tempo+https://me:[REDACTED]@tempo:3200: run logs are kept in the embedded store only (sqlite:///)"
        == str(raised.value)
    )


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("sqlite:////h/spans.db", LogsPlace(Path("/h/spans.db"), dump=False)),
        ("DUMP:///tmp/run.tar.gz", LogsPlace(Path("/tmp/run.tar.gz"), dump=True)),
        ("tempo+http://h:3200", None),
        ("otlp-json:///tmp/spans.jsonl", None),
        ("", None),
    ],
)
def test_logs_place_names_the_store_or_the_dump(url: str, expected: LogsPlace | None) -> None:
    """Run logs are in the embedded store or a dump, and nowhere else."""
    assert expected == logs_place(url)


def test_a_relative_path_that_reads_as_absolute_is_warned_about_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """``sqlite:///tmp/x.db`` where ``./tmp`` is missing names ``tmp/x.db`` as asked, with one
    warning naming the four-slash form."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(source_urls, "_HINTED", set())
    paths = [sqlite_path("sqlite:///tmp/x.db"), sqlite_path("sqlite:///tmp/x.db")]
    expected = [
        "sqlite:///tmp/x.db names tmp/x.db under the working directory; "
        "sqlite:////tmp/x.db names /tmp/x.db"
    ]
    assert ([Path("tmp/x.db")] * 2, expected) == (paths, [r.getMessage() for r in caplog.records])


def test_a_relative_path_whose_directory_is_here_is_not_warned_about(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """When ``./tmp`` exists, ``sqlite:///tmp/x.db`` is plainly meant relative: no warning."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(source_urls, "_HINTED", set())
    (tmp_path / "tmp").mkdir()
    sqlite_path("sqlite:///tmp/x.db")
    assert [] == caplog.records


def test_the_scheme_is_what_comes_before_the_first_separator() -> None:
    """A URL whose path holds ``://`` again has the scheme before the first one."""
    assert "otlp-json" == scheme_of("otlp-json:///data/http://x.jsonl")


def test_a_sqlite_path_may_hold_the_separator() -> None:
    """The store's path is everything after the first ``://``, another ``://`` included."""
    assert Path("/data/a://b.db") == sqlite_path("sqlite:////data/a://b.db")


def test_a_file_path_may_hold_the_separator() -> None:
    """An OTLP file's path is everything after the first ``://``, another ``://`` included."""
    assert Path("/data/a://b.jsonl") == file_path("otlp-json:///data/a://b.jsonl")


def test_a_sqlite_url_with_a_host_is_refused_without_its_password() -> None:
    """``sqlite://`` followed by a host instead of a slash is refused, the password hidden."""
    with pytest.raises(SpanSourceError) as raised:
        sqlite_path("sqlite://me:s3cret@host/spans.db")
    assert "bad sqlite URL 'sqlite://me:[REDACTED]@host/spans.db': use sqlite:///PATH" == str(
        raised.value
    )


def test_store_path_of_a_sqlite_url_is_its_file() -> None:
    """The embedded store's URL gives the file it names."""
    assert Path("/x/spans.db") == store_path("SQLite:////x/spans.db")


def test_the_warning_about_a_lost_slash_is_the_tracking_loggers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The warning about ``sqlite:///tmp/x.db`` comes from the ``taskdaemon.tracking``
    logger, which logging configuration can select."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(source_urls, "_HINTED", set())
    sqlite_path("sqlite:///tmp/x.db")
    assert ["taskdaemon.tracking"] == [record.name for record in caplog.records]


def test_a_relative_path_whose_directory_is_nowhere_is_not_warned_about(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A relative store path whose first directory is missing at the root too reads as
    meant: no warning."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(source_urls, "_HINTED", set())
    first = f"{tmp_path.name}-nowhere"
    sqlite_path(f"sqlite:///{first}/x.db")
    assert [] == caplog.records
