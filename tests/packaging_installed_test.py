"""taskdaemon as a user installs it: the wheel built from this tree (offline, with this venv's
setuptools), installed without the source tree into a venv of its own, then run from an empty
folder. Every other test runs the editable install, where a file left out of the package data,
or a path that climbs out of the package, still resolves in the checkout.

The new venv borrows this venv's site-packages for the dependencies (a path in a ``.pth``
file: the editable install's own ``.pth`` there is not read, so the checkout's ``src`` stays
off the path), so nothing is downloaded.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
import tarfile
import tomllib
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import pytest

from browser_support import TOKEN, browser_page, server_url
from cli_faults_support import on_a_terminal
from cli_support import ONE_STAGE_PIPELINE, ROOT, ended_at_exit, environment, taskdaemon, write

pytestmark = pytest.mark.slow

#: The setuptools that reads ``project.license`` as an SPDX expression (PEP 639).
SETUPTOOLS_FLOOR = 77

#: The page's assets, each of which the installed server must answer.
ASSETS = (
    "style.css",
    "page.js",
    "runs.js",
    "timeline.js",
    "deltas.js",
    "stage_logs.js",
    "stage_detail.js",
    "app.js",
)


@dataclass(frozen=True)
class Installed:
    """The built sdist, the wheel built from it, and the venv the wheel is installed in."""

    sdist: Path
    wheel: Path
    venv: Path

    @property
    def command(self) -> str:
        """The installed console script."""
        return str(self.venv / "bin" / "taskdaemon")


def _run(*argv: str | Path) -> None:
    """Run a build or install step; its output is the failure message when it fails."""
    done = subprocess.run(
        [str(arg) for arg in argv], capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, f"{argv}: {done.stdout[-2000:]}{done.stderr[-2000:]}"


@pytest.fixture(scope="session")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    """The sdist built from a copy of what the Dockerfile copies (``pyproject.toml``,
    ``README.md``, ``LICENSE``, ``src``: the build writes its scratch beside its source, never
    in the checkout), the wheel built from that sdist alone, installed with ``--no-deps`` into
    a new venv."""
    floor = int(metadata.version("setuptools").split(".")[0])
    assert floor >= SETUPTOOLS_FLOOR, "this venv's setuptools is too old: scripts/setup.sh --dev"
    root = tmp_path_factory.mktemp("installed")
    source = root / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(ROOT / name, source / name)
    shutil.copytree(
        ROOT / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
    )
    backend = f"from setuptools import build_meta; build_meta.build_sdist({str(root)!r})"
    subprocess.run([sys.executable, "-c", backend], cwd=source, capture_output=True, check=True)
    (sdist,) = root.glob("taskdaemon-*.tar.gz")
    pip = (sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input")
    _run(*pip, "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", root, sdist)
    (wheel,) = root.glob("taskdaemon-*.whl")
    venv = root / "venv"
    _run(sys.executable, "-m", "venv", "--without-pip", venv)
    (site,) = venv.glob("lib/python*/site-packages")
    borrowed = dict.fromkeys(sysconfig.get_paths()[key] for key in ("purelib", "platlib"))
    (site / "borrowed.pth").write_text("".join(f"{path}\n" for path in borrowed))
    _run(*pip, "--python", venv / "bin" / "python", "install", "--no-deps", "--no-index", wheel)
    return Installed(sdist=sdist, wheel=wheel, venv=venv)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """An empty working folder far from the checkout, with a one-stage pipeline in it."""
    write(tmp_path / "one.yaml", ONE_STAGE_PIPELINE)
    return tmp_path


def _environment(folder: Path, **extra: str) -> dict[str, str]:
    """The test environment with its home in ``folder`` and no ``PYTHONPATH``, which points
    at the source tree under test."""
    return environment(folder / ".taskdaemon", PYTHONPATH="", **extra)


def run_installed(installed: Installed, folder: Path, *args: str) -> str:
    """Run the installed command in ``folder``; it must succeed; its stdout."""
    done = taskdaemon(
        folder / ".taskdaemon",
        *args,
        cwd=folder,
        launcher=(installed.command,),
        timeout=120,
        PYTHONPATH="",
    )
    assert done.returncode == 0, f"taskdaemon {' '.join(args)}: {done.stderr}"
    return done.stdout


def package_files() -> set[str]:
    """The files of the source package, as paths under ``src``."""
    source = ROOT / "src"
    return {
        path.relative_to(source).as_posix()
        for path in (source / "taskdaemon").rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }


def test_build_requires_the_setuptools_that_reads_the_license() -> None:
    """The build backend's declared floor reads ``project.license`` as pyproject states it: an
    SPDX string needs setuptools 77, and an older one refuses the file."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert isinstance(pyproject["project"]["license"], str)
    assert [f"setuptools>={SETUPTOOLS_FLOOR}"] == pyproject["build-system"]["requires"]


def test_wheel_holds_every_file_the_package_reads(installed: Installed) -> None:
    """Every file of the source package (templates, assets, schemas, ``py.typed``) is in the
    wheel, and nothing else but its metadata, which carries the license text."""
    with zipfile.ZipFile(installed.wheel) as wheel:
        names = set(wheel.namelist())
    assert package_files() == {name for name in names if name.startswith("taskdaemon/")}
    assert all(name.startswith(("taskdaemon/", "taskdaemon-")) for name in names)
    assert "taskdaemon-0.1.0.dist-info/licenses/LICENSE" in names


#: Run by the installed venv's Python: where taskdaemon is imported from, and the DAG schema it
#: ships (read with ``importlib.resources``).
_WHERE_AND_SCHEMA = (
    "import taskdaemon; from taskdaemon.pipeline.visualization import dag_schema; "
    "print(dag_schema()['$schema']); print(taskdaemon.__file__)"
)


def test_sdist_holds_the_package_its_metadata_and_no_tests(installed: Installed) -> None:
    """The sdist holds the README its metadata shows, the license text, the build
    configuration and every file of the package (the wheel is built from it alone), and
    nothing of tests/."""
    with tarfile.open(installed.sdist) as sdist:
        names = {name.partition("/")[2] for name in sdist.getnames()}
    package = {f"src/{name}" for name in package_files()}
    assert {"README.md", "LICENSE", "pyproject.toml", "PKG-INFO", *package} <= names
    assert not any(name.startswith("tests") for name in names)


def test_installed_package_is_the_one_run(installed: Installed, folder: Path) -> None:
    """The installed venv imports taskdaemon from its own site-packages, not the checkout,
    and reads the JSON schema it ships."""
    done = subprocess.run(
        [installed.venv / "bin" / "python", "-c", _WHERE_AND_SCHEMA],
        cwd=folder,
        env=_environment(folder),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    schema, where = done.stdout.splitlines()
    assert "https://json-schema.org/draft/2020-12/schema" == schema
    assert Path(where).is_relative_to(installed.venv)


@pytest.mark.parametrize("form", ["dot", "json", "mermaid", "svg"])
def test_installed_dag_draws_every_format(installed: Installed, folder: Path, form: str) -> None:
    """``dag FILE --format F`` of the installed command writes the drawing of the pipeline."""
    run_installed(installed, folder, "dag", "one.yaml", "--format", form, "-o", f"dag.{form}")
    assert "only" in (folder / f"dag.{form}").read_text().lower()


def test_installed_run_is_stored_listed_reported_and_replayed(
    installed: Installed, folder: Path
) -> None:
    """The installed command validates and runs a command stage (the group watchdog is a file
    of the package), then lists, shows, reports and replays the run from the store."""
    assert "OK one.yaml" in run_installed(installed, folder, "validate", "one.yaml")
    run_id = run_installed(installed, folder, "run", "one.yaml", "-q").strip()
    assert run_id in run_installed(installed, folder, "runs", "list")
    assert "success" in run_installed(installed, folder, "runs", "show", run_id)
    assert "pipeline one: 1 run" in run_installed(installed, folder, "report")
    run_installed(installed, folder, "report", "--format", "html", "-o", "report.html")
    assert "<html" in (folder / "report.html").read_text()
    assert "no divergence" in run_installed(installed, folder, "replay", run_id, "--verify")


def test_installed_debug_pauses_and_continues_on_a_terminal(
    installed: Installed, folder: Path, home: Path
) -> None:
    """``debug FILE --break STAGE`` of the installed command pauses at the stage under its
    prompt on a terminal, runs on at ``continue`` and leaves with 0 at the input's end."""
    with on_a_terminal(
        home,
        "debug",
        "one.yaml",
        "--break",
        "only",
        command=installed.command,
        cwd=folder,
        PYTHONPATH="",
    ) as terminal:
        terminal.wait_for("(taskdaemon) ")
        terminal.type(b"continue\n")
        terminal.wait_for("run ended success")
        terminal.type(b"\x04")  # typed ahead of the next prompt, as a quick user does
        assert 0 == terminal.process.wait(60)


@pytest.fixture
def served(installed: Installed, folder: Path) -> Iterator[str]:
    """``serve`` of the installed command on a free port, with the test's API token; its
    URL. Stopped by SIGTERM on leaving."""
    process = subprocess.Popen(
        [installed.command, "serve", "--port", "0"],
        cwd=folder,
        env=_environment(folder, TASKDAEMON_API_TOKEN=TOKEN),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    with ended_at_exit(process):
        url = server_url(process)
        yield url
        process.terminate()
        assert 0 == process.wait(timeout=30)


async def test_installed_serve_answers_the_page_and_its_assets(served: str) -> None:
    """The installed server's page loads in chromium with no console error, its assets each
    answering 200 (templates and assets come from the package data); the style sheet a browser
    without JavaScript loads instead (``noscript.css``), which this one never asks for, too."""
    statuses: dict[str, int] = {}
    async with browser_page() as (page, errors):
        page.on("response", lambda answer: statuses.update({answer.url: answer.status}))
        await page.goto(f"{served}/?token={TOKEN}")  # returns once the page and assets loaded
        assert [] == errors
        await page.goto(f"{served}/static/noscript.css")
    wanted = [*ASSETS, "noscript.css"]
    assert {f"{served}/static/{name}": 200 for name in wanted}.items() <= statuses.items()
    assert 200 == statuses[f"{served}/"]
