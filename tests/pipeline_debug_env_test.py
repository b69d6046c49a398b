"""The debugger's ``env`` (``debug_env.py``): the environment a paused stage will see, at the
prompt of a real ``taskdaemon debug`` and over a real ``serve``'s HTTP routes with its token,
its secrets masked, its size bounded and its terminal controls escaped."""

from __future__ import annotations

import subprocess
import textwrap
from pathlib import Path

import pytest

from cli_support import taskdaemon
from pipeline_debug_cli_support import PIPELINE, write_pipeline
from schedule_support import scheduled_serve

#: A secret in the environment taskdaemon starts with (a command stage inherits it).
SECRET = "sk-live-Zq8vR2mN4pL6tY1wX3cB"


def _env_lines(stdout: str) -> list[str]:
    """The lines ``env`` printed: from its echo to the next prompt."""
    after = stdout.split("(taskdaemon) env\n", 1)[1]
    return after.split("(taskdaemon) ", 1)[0].splitlines()


def _env_at_b(home: Path, typed: str = "env\nquit\n", **environment: str) -> tuple[list[str], str]:
    """``typed`` (``env`` first) at a breakpoint before b, under ``environment``: the lines of
    that ``env``, and all that ``debug`` printed (stdout and stderr)."""
    done = _debug_at_b(home, typed, write_pipeline(home), **environment)
    return _env_lines(done.stdout), done.stdout + done.stderr


def _debug_at_b(
    home: Path, typed: str, pipeline: Path, **environment: str
) -> subprocess.CompletedProcess[str]:
    """``debug PIPELINE --break b`` with ``typed`` on its stdin, under ``environment``."""
    return taskdaemon(home, "debug", str(pipeline), "--break", "b", stdin=typed, **environment)


@pytest.mark.slow
def test_env_at_the_prompt_shows_what_the_command_will_get_masked_and_escaped(
    home: Path,
) -> None:
    """``env`` at a breakpoint before b: b's command, its working directory (the run's
    workspace), the ``TASKDAEMON_INPUT_X`` made from the input it will run with, and the
    inherited variables, ``API_TOKEN`` masked by its name, its value nowhere, a terminal
    escape in a value escaped (before: ``unknown command 'env'``)."""
    lines, printed = _env_at_b(
        home, "env\nenv a\nquit\n", API_TOKEN=SECRET, LOOKS="\x1b[31mred\x1b[0m"
    )
    assert lines[0] == 'b.0.1 runs a command: echo {\\"got\\": $TASKDAEMON_INPUT_X}', lines
    assert lines[1].startswith(f"  cwd {home}/workspaces/"), lines
    assert "    TASKDAEMON_INPUT_X=1" in lines
    assert "    TASKDAEMON_STAGE=b" in lines
    assert "    API_TOKEN=[REDACTED]" in lines
    assert "    LOOKS=\\x1b[31mred\\x1b[0m" in lines
    assert SECRET not in printed
    assert (
        "error: no environment to show: stage 'a' is not paused (env shows a paused stage's)"
        in printed
    )


@pytest.mark.slow
def test_env_over_http_is_redacted_and_bounded(home: Path) -> None:
    """``GET /api/runs/{id}/debug/env/b`` on ``serve`` with its token: the same answer as the
    prompt's, JSON; a 10,000-character value cut to 256 characters, and of 300 extra variables
    only the first 200 by name shown, with their count said; a stage not paused is 409."""
    extra = {f"ZZ_{n:03d}": "v" for n in range(300)}
    with scheduled_serve(
        home,
        write_pipeline(home),
        "--break",
        "b",
        API_TOKEN=SECRET,
        AAA_LONG="x" * 10_000,
        **extra,
    ) as served:
        served.wait_paused("b")
        env = served.api("GET", f"/api/runs/{served.run_id}/debug/env/b")["env"]
        only = served.api("GET", f"/api/runs/{served.run_id}/debug/env")["env"]
        try:
            served.api("GET", f"/api/runs/{served.run_id}/debug/env/a")
        except OSError as exc:  # urllib's HTTPError
            refused = str(exc)
        served.api("POST", f"/api/runs/{served.run_id}/debug/continue", {})
    assert (env["kind"], env["set"]["TASKDAEMON_INPUT_X"], env["inherited"]["API_TOKEN"]) == (
        "command",
        "1",
        "[REDACTED]",
    )
    assert env == only  # the one paused stage, when none is named
    assert len(env["inherited"]["AAA_LONG"]) == 256
    assert env["inherited"]["AAA_LONG"].endswith("…")
    assert (len(env["inherited"]), env["inherited_count"] > 300) == (200, True)
    assert SECRET not in repr(env)
    assert "409" in refused


@pytest.mark.slow
def test_env_shows_pwd_as_the_command_sees_it(home: Path) -> None:
    """``PWD`` and ``OLDPWD`` name directories: shown, though ``pwd`` is a secret key word.
    A command's shell sets ``PWD`` to its working directory, the run's workspace, so that is
    the one shown (before: ``PWD=[REDACTED]``, the key word ``pwd``)."""
    lines = _env_at_b(home, PWD="/srv/elsewhere", OLDPWD="/srv/before")[0]
    cwd = lines[1].removeprefix("  cwd ")
    assert (f"    PWD={cwd}", "    OLDPWD=/srv/before") == (
        next(line for line in lines if line.startswith("    PWD=")),
        next(line for line in lines if line.startswith("    OLDPWD=")),
    )


#: Variable names of a secret's shape (an AWS access key id, a GitHub token): valid names.
SHAPED_NAMES = ("AKIAQ7RZ4LMN2WXY8KJD", "ghp_" + ("Zq8vR2mN4pL6tY1wX3cB" * 2)[:36])


@pytest.mark.slow
def test_env_masks_a_variable_name_of_a_secrets_shape(home: Path) -> None:
    """A variable named like an AWS key id or a GitHub token: its name is masked as text is,
    each masked name numbered so both variables keep their line (before: both names shown)."""
    aws, github = SHAPED_NAMES
    lines, printed = _env_at_b(home, **{aws: "one", github: "two"})
    assert ([], ["    [REDACTED]=one", "    [REDACTED] #2=two"]) == (
        [name for name in SHAPED_NAMES if name in printed],
        [line for line in lines if line.startswith("    [REDACTED]")],
    )


@pytest.mark.slow
def test_inputs_masks_an_input_name_of_a_secrets_shape(home: Path) -> None:
    """``inputs b`` and ``set`` at a breakpoint, for inputs named like an AWS key id and a
    GitHub token: the names masked and numbered as ``env``'s are (the run span's definition
    masks them too), their values shown (before: both names in clear)."""
    aws, github = SHAPED_NAMES
    shaped = (
        f"inputs: {{x: stages.a.outputs.x, {aws}: stages.a.outputs.x,"
        f" {github}: 'stages.a.outputs.x + 1'}}"
    )
    path = home / "shaped.yaml"
    path.write_text(textwrap.dedent(PIPELINE).replace("inputs: {x: stages.a.outputs.x}", shaped))
    done = _debug_at_b(home, f"inputs b\nset b {SHAPED_NAMES[0]} 3\nquit\n", path)
    printed = done.stdout + done.stderr
    assert ([], True, True) == (
        [name for name in SHAPED_NAMES if name in printed],
        '(taskdaemon) inputs b\n{"[REDACTED]": 1, "[REDACTED] #2": 2, "x": 1}\n' in done.stdout,
        "b: input [REDACTED] = 3\n" in done.stdout,
    ), printed
