"""Every document the repository names is in the repository.

A fresh clone has nothing beside it, so a comment citing a design document that lives elsewhere,
a link to a missing page or a path into a sibling folder is a broken promise. The checker reads
every file git knows (tracked, or new and not ignored) as text and reports, one line each:

* the bare upper-case names of the design and style documents that once lay beside the
  repository (with or without ``.md``, ``§3``, ``section 9``...): the project's own document
  is ``docs/architecture.md``;
* a Markdown path with a folder (``docs/topic.md``, ``benchmarks/README.md``) or an upper-case
  bare name (``CONTRIBUTING.md``) that resolves neither from the repository root nor from the
  citing file's folder; a path qualified by another repository (``grafana/tempo:docs/x.md``)
  and URLs are someone else's and are skipped; lower-case bare names (``plan.md``) are data
  files a program writes, not documents;
* a section cited after a path, ``docs/architecture.md, "Dependency rule"`` or
  ``docs/architecture.md ("Metrics")``, that is not a heading of that document (a name may
  wrap onto the next two lines, which are joined without their indentation and comment marks);
* in ``*.md`` files, a relative link ``[text](path#anchor)`` whose target does not exist, or whose
  anchor is not a heading of the target Markdown file (GitHub's heading ids);
* any mention of the ``shared`` folder beside the repository (after ``..`` or ``/work``), and
  a ``Path(__file__)`` climbing above the repository root (``.parents[2]`` in ``tests/``): the
  project never reads beside its tree;
* in the README and ``docs/``, a name cited in code as ``module.name`` (``logs.level_name``,
  ``cli/logs.level_name``, ``table_fit.LAST_GIVEN``) where ``module`` is a source module
  (a ``.py`` file of ``src/``, not a package, whose path ends so) that no longer mentions
  ``name``: a renamed function leaves the page pointing a reader at nothing. Only names that
  read as code (an ``_`` or a capital in them) are checked, so ``inputs.nosuch`` (CEL) and
  ``metrics.prom`` (a file) are left alone;
* in ``benchmarks/README.md``, a section that cites a script under ``/tmp`` (a session's
  scratch file, which no clone has) without saying that it was a one-off (``one-off``,
  ``scratch``, ``not committed``...): a reader looks for it in ``benchmarks/`` and finds
  nothing. A copy of a committed benchmark (``/tmp/TREE/benchmarks/cli_startup.py``) is fine,
  and so is a script the section writes out whole (``cat > /tmp/x.py <<'PY'``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest

from docs_support import repository_files

ROOT = Path(__file__).resolve().parent.parent
# This file spells out the forbidden references to describe and test them; the checker is shown
# to work on synthetic trees below, so its own source is left out of the real scan.
SELF = "tests/docs_references_test.py"
# The names the check forbids, assembled, so that no file of the repository (this one included)
# spells them out and a plain search of the tree finds none.
_DESIGN, _STYLE = "DES" + "IGN", "STY" + "LE"
_SIBLING = "/" + "shared"

_URL = re.compile(r"[a-z][a-z0-9+.-]*://\S+")
_BARE_DOCUMENT = re.compile(rf"(?<![\w/.-])({_DESIGN}|{_STYLE})(?:\.md)?(?![\w-])")
_OUTSIDE = re.compile(rf"\.\.{_SIBLING}\b|/work{_SIBLING}\b")
_MD_PATH = re.compile(r"(?<![\w/.:-])((?:[\w.-]+/)*[\w.-]+\.md)(?![\w-])")
_UPPER_BARE = re.compile(r"[A-Z][A-Z0-9_-]*\.md")
_SECTION = re.compile(r'\s*(?:,\s*|\(\s*)"([^"]{1,160})"')
#: What starts a continued line of prose: indentation, and a comment's or a list's marker.
_LINE_LEAD = re.compile(r"^\s*(?:#+\s*|\*\s+)?")
#: Lines after a cited path that its section's name may run on to.
_CONTINUED = 2
_MD_LINK = re.compile(r"!?\[[^\]\n]*\]\(([^)\s]+)\)")
_HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.MULTILINE)
_CLIMB = re.compile(
    r"__file__\)(?:\.resolve\(\)|\.absolute\(\))?((?:\.parent\b)+|\.parents\[(\d+)\])"
)
_FENCE = re.compile(r"^(```|~~~).*?^\1", re.MULTILINE | re.DOTALL)


def headings(markdown: str) -> tuple[set[str], set[str]]:
    """The heading texts of a Markdown document and their GitHub anchors (fenced code ignored)."""
    texts = {match.group(1) for match in _HEADING.finditer(_FENCE.sub("", markdown))}
    return texts, {_anchor(text) for text in texts}


def _anchor(heading: str) -> str:
    # GitHub: lower case, drop punctuation (keep letters, digits, '-', '_', spaces), space -> '-'.
    text = re.sub(r"[`*]", "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def _read_text(path: Path) -> str | None:
    data = path.read_bytes()
    if b"\0" in data:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _resolve(root: Path, citing: Path, target: str) -> Path | None:
    """``target`` from the citing file's folder, else from the root; None if it is in neither."""
    for base in (citing.parent, root):
        candidate = (base / target).resolve()
        if candidate.is_relative_to(root.resolve()) and candidate.exists():
            return candidate
    return None


def _line_of(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def _check_file(root: Path, name: str, text: str) -> Iterator[str]:
    path = root / name
    # URLs are other sites' business; blank them out (same length, so offsets keep their lines).
    scan = _URL.sub(lambda match: " " * len(match.group(0)), text)
    if name.endswith(".md"):  # link targets are checked as links, relative to the file only
        scan = _MD_LINK.sub(lambda match: " " * len(match.group(0)), scan)
    lines = scan.splitlines()
    for number, line in enumerate(lines, start=1):
        where = f"{name}:{number}"
        if "shared" in line:
            for match in _OUTSIDE.finditer(line):
                yield f"{where}: {match.group(0)!r} is outside the repository"
        if _DESIGN in line or _STYLE in line:
            for match in _BARE_DOCUMENT.finditer(line):
                yield f"{where}: {match.group(0)!r} is not a document of this repository"
        if ".md" in line:  # the path pattern backtracks on every word: only where it can match
            after = [_LINE_LEAD.sub("", later) for later in lines[number : number + _CONTINUED]]
            yield from _check_paths(root, path, where, line, " ".join(after))
        if "__file__" in line:
            for match in _CLIMB.finditer(line):
                levels = int(match.group(2)) + 1 if match.group(2) else match.group(1).count(".")
                if levels > len(Path(name).parts):  # tests/x.py: 2 levels reach the root
                    yield f"{where}: {match.group(1)} of __file__ is outside the repository"
    if name.endswith(".md"):
        yield from _check_links(root, name, text)


def _check_paths(root: Path, path: Path, where: str, line: str, after: str) -> Iterator[str]:
    """The paths cited on ``line``, and their sections, whose names may wrap onto the lines
    ``after`` it (joined, without their indentation and comment markers)."""
    joined = f"{line} {after}"
    for match in _MD_PATH.finditer(line):
        target = match.group(1)
        if "/" not in target and not _UPPER_BARE.fullmatch(target):
            continue  # a lower-case bare name is a data file (plan.md), not a document
        if _BARE_DOCUMENT.fullmatch(target):
            continue  # reported as a bare document name
        resolved = _resolve(root, path, target)
        if resolved is None:
            yield f"{where}: {target} does not exist"
            continue
        section = _SECTION.match(joined, match.end())
        if section and resolved.is_file():
            texts, _ = headings(resolved.read_text())
            if section.group(1) not in texts:
                yield f"{where}: {target} has no section {section.group(1)!r}"


def _check_links(root: Path, name: str, text: str) -> Iterator[str]:
    path = root / name
    body = _FENCE.sub(lambda match: "\n" * match.group(0).count("\n"), text)
    for match in _MD_LINK.finditer(body):
        link = match.group(1)
        if re.match(r"[a-z][a-z0-9+.-]*:", link):  # http:, https:, mailto:
            continue
        target, _, anchor = link.partition("#")
        line = _line_of(body, match.start())
        # A link is relative to its Markdown file only: that is how renderers follow it.
        resolved = (path.parent / target).resolve() if target else path
        if not (resolved.is_relative_to(root.resolve()) and resolved.exists()):
            yield f"{name}:{line}: link target {target} does not exist"
            continue
        if anchor and resolved.suffix == ".md":
            _, anchors = headings(resolved.read_text())
            if anchor not in anchors:
                yield f"{name}:{line}: link {link} has no heading #{anchor}"


_CODE_NAME = re.compile(r"`((?:[a-z_]+/)*[a-z_]+)\.([A-Za-z_]*(?:_|[A-Z])[A-Za-z0-9_]*)`")
#: The documents a user reads, whose citations of the code must stay true.
_USER_DOCUMENTS = re.compile(r"README\.md|docs/[^/]+\.md")


def find_stale_code_names(root: Path, names: Iterable[str]) -> list[str]:
    """``FILE:LINE: reason`` for every ``module.name`` the README and ``docs/`` cite that the
    source module (by its path's end) no longer mentions; ``names`` are paths under ``root``."""
    names = list(names)
    modules = [name for name in names if name.startswith("src/") and name.endswith(".py")]
    problems: list[str] = []
    for document in filter(_USER_DOCUMENTS.fullmatch, names):
        text = (root / document).read_text()
        for match in _CODE_NAME.finditer(text):
            module, name = match.groups()
            sources = [each for each in modules if each.endswith(f"/{module}.py")]
            word = re.compile(rf"\b{name}\b")
            if sources and not any(word.search((root / each).read_text()) for each in sources):
                line = _line_of(text, match.start())
                problems.append(f"{document}:{line}: {module}.{name}: {module} has no {name}")
    return problems


def find_broken_references(root: Path, names: Iterable[str]) -> list[str]:
    """``FILE:LINE: reason`` for every reference in ``names`` (paths under ``root``) to a
    document or path that is not in the tree."""
    problems: list[str] = []
    for name in names:
        text = _read_text(root / name)
        if text is not None:
            problems.extend(_check_file(root, name, text))
    return problems


_TMP_SCRIPT = re.compile(r"(?<![\w.-])(/tmp/(?:[\w.-]+/)*[\w-]+\.py)\b")
_ONE_OFF = re.compile(
    r"one-off|scratch|throwaway|not committed|never committed|(?:not in|outside) the repository"
    r"|quoted (?:above|below)",
    re.IGNORECASE,
)


def unsaid_scratch_scripts(root: Path, text: str) -> list[str]:
    """``LINE: PATH`` of the first citation of each ``/tmp`` script in each ``## `` section of
    ``text`` (benchmarks/README.md) whose section never says it was a one-off, leaving out a
    path whose end is a file under ``root`` (a committed benchmark run from a copied tree) and
    one the section writes out whole (``cat > PATH``)."""
    lines = text.splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith("## ")]
    problems: list[str] = []
    for start, end in zip([0, *starts], [*starts, len(lines)], strict=True):
        section = lines[start:end]
        if _ONE_OFF.search("\n".join(section)):
            continue
        seen: set[str] = set()
        for number, line in enumerate(section, start + 1):
            for path in _TMP_SCRIPT.findall(line):
                parts = Path(path).parts
                copied = any((root / Path(*parts[i:])).is_file() for i in range(2, len(parts)))
                written = f"cat > {path}" in "\n".join(section)  # the script, quoted whole
                if path not in seen and not copied and not written:
                    seen.add(path)
                    problems.append(f"{number}: {path}")
    return problems


# -- the repository ---------------------------------------------------------------------------


def test_repository_names_only_documents_it_contains() -> None:
    """No file of the repository cites a document, link target or section the tree lacks."""
    names = [name for name in repository_files(ROOT) if name != SELF]
    assert [] == find_broken_references(ROOT, names)


def test_documents_cite_only_names_the_code_has() -> None:
    """Every ``module.name`` the README and ``docs/`` cite is still in that module."""
    assert [] == find_stale_code_names(ROOT, repository_files(ROOT))


def test_benchmark_notes_say_which_scripts_were_one_offs() -> None:
    """Each section of benchmarks/README.md that cites a script under ``/tmp`` says that it
    was not committed, so a reader does not look for it in ``benchmarks/``."""
    assert [] == unsaid_scratch_scripts(ROOT, (ROOT / "benchmarks/README.md").read_text())


def test_scratch_script_check_tells_said_from_unsaid() -> None:
    """A section citing ``/tmp/x/count.py`` alone is reported; one that says it was a one-off,
    or cites a copied tree's committed benchmark, is not."""
    text = (
        "## A\nCounted with `/tmp/x/count.py`.\n"
        "## B\nCounted with `/tmp/y/count.py` (one-off, not committed).\n"
        "## C\n`python /tmp/base/benchmarks/cli_startup.py --rounds 3`\n"
        "## D\n    cat > /tmp/z/count.py <<'PY'\n    PY\n    python /tmp/z/count.py\n"
    )
    assert ["2: /tmp/x/count.py"] == unsaid_scratch_scripts(ROOT, text)


def test_scan_covers_the_documents_and_the_code() -> None:
    """The scan reads the README, the architecture document, sources and tests (not just some)."""
    names = set(repository_files(ROOT))
    expected = {
        "README.md",
        "docs/architecture.md",
        "pyproject.toml",
        "src/taskdaemon/pipeline/telemetry.py",
        SELF,
    }
    assert expected == expected & names


# -- the checker on synthetic trees -------------------------------------------------------------


def _tree(root: Path, files: dict[str, str]) -> list[str]:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return sorted(files)


DOC = "# Title\n\n## Dependency rule\n\n### Metrics\n\n```md\n## Not a heading\n```\n"


def test_checker_reports_each_kind_of_broken_reference(tmp_path: Path) -> None:
    """Bare design-document names, missing paths and sections, dead links and anchors, and
    paths beside the repository are each reported with their file and line."""
    names = _tree(
        tmp_path,
        {
            "docs/architecture.md": DOC,
            "src/mod.py": f'"""See {_DESIGN} §3 and\n{_DESIGN} section 9, {_STYLE}.md."""\n',
            "pyproject.toml": (
                f'# see docs/missing.md and CONTRIBUTING.md\nx = "..{_SIBLING}/f.json"\n'
            ),
            "tests/a_test.py": (
                f'# docs/architecture.md, "Dependency rules"\nP = "/work{_SIBLING}/x"\n'
                "A = Path(__file__).resolve().parents[2]\nB = Path(__file__).parent.parent.parent\n"
                "C = Path(__file__).resolve().parents[1] / Path(__file__).parent.parent\n"
            ),
            "src/wrap.py": '# docs/architecture.md, "Dependency\n# rules" wraps\nx = 1\n',
            "README.md": (
                "[gone](docs/nope.md) [bad anchor](docs/architecture.md#no-such)\n"
                '[fenced heading](docs/architecture.md#not-a-heading) docs/architecture.md ("X")\n'
            ),
        },
    )
    expected = [
        "README.md:1: link target docs/nope.md does not exist",
        "README.md:1: link docs/architecture.md#no-such has no heading #no-such",
        "README.md:2: link docs/architecture.md#not-a-heading has no heading #not-a-heading",
        "README.md:2: docs/architecture.md has no section 'X'",
        f"pyproject.toml:2: '..{_SIBLING}' is outside the repository",
        "pyproject.toml:1: docs/missing.md does not exist",
        "pyproject.toml:1: CONTRIBUTING.md does not exist",
        "src/wrap.py:1: docs/architecture.md has no section 'Dependency rules'",
        f"src/mod.py:1: '{_DESIGN}' is not a document of this repository",
        f"src/mod.py:2: '{_DESIGN}' is not a document of this repository",
        f"src/mod.py:2: '{_STYLE}.md' is not a document of this repository",
        f"tests/a_test.py:2: '/work{_SIBLING}' is outside the repository",
        "tests/a_test.py:1: docs/architecture.md has no section 'Dependency rules'",
        "tests/a_test.py:3: .parents[2] of __file__ is outside the repository",
        "tests/a_test.py:4: .parent.parent.parent of __file__ is outside the repository",
    ]
    assert sorted(expected) == sorted(find_broken_references(tmp_path, names))


def test_checker_accepts_references_that_resolve(tmp_path: Path) -> None:
    """Existing paths (from the root or the citing folder), sections, anchors, same-file anchors,
    URLs, other repositories' paths and data file names are all fine."""
    names = _tree(
        tmp_path,
        {
            "docs/architecture.md": DOC + "\n[top](#title) [tests](../tests/README.md)\n",
            "tests/README.md": "[doc](../docs/architecture.md#dependency-rule)\n",
            "src/mod.py": (
                '"""docs/architecture.md, "Dependency rule"; docs/architecture.md ("Metrics").\n'
                f"https://example.com/{_DESIGN}.md grafana/tempo:docs/api.md writes plan.md\n"
                'README.md and tests/README.md (from the root), ../docs/architecture.md."""\n'
            ),
            "src/wrap.py": '"""Wrapped: docs/architecture.md, "Dependency\n    rule"."""\n',
            "README.md": f"[site](https://example.com/{_STYLE}.md) [arch](docs/architecture.md)\n",
        },
    )
    assert [] == find_broken_references(tmp_path, names)


def test_checker_reports_a_code_name_its_module_lost(tmp_path: Path) -> None:
    """A renamed function cited from a page is reported; a name still there, one in a module
    named by more of its path, a package's, a CEL path and a file name are not."""
    names = _tree(
        tmp_path,
        {
            "src/pkg/logs.py": "def traceback_within(): ...\n",
            "src/pkg/cli/logs.py": "LEVEL_NAMES = ()\n",
            "src/pkg/__init__.py": "",
            "docs/page.md": (
                "Taken by `logs.bounded_traceback`, `logs.traceback_within`,\n"
                "`cli/logs.LEVEL_NAMES`, `pkg.schema_version`, `inputs.nosuch`, `logs.prom`.\n"
            ),
            "notes/old.md": "`logs.bounded_traceback`\n",
        },
    )
    assert ["docs/page.md:1: logs.bounded_traceback: logs has no bounded_traceback"] == (
        find_stale_code_names(tmp_path, names)
    )


@pytest.mark.parametrize(
    ("heading", "anchor"),
    [
        ("Dependency rule", "dependency-rule"),
        ("Span sources", "span-sources"),
        ("`taskdaemon run` and *friends*", "taskdaemon-run-and-friends"),
        ("Metrics, in one screen", "metrics-in-one-screen"),
    ],
)
def test_anchors_follow_github_heading_ids(heading: str, anchor: str) -> None:
    """Heading anchors are computed the way GitHub renders them."""
    assert {anchor} == headings(f"## {heading}\n")[1]
