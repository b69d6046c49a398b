"""The HTTP debugger routes (registered by ``server.create_app``), over ``debug_ops``.

========================================================== ===================================
``GET    /api/runs/{id}/debug``                             debug mode, what is paused, the
                                                            breakpoints, slots, stages
``POST   /api/runs/{id}/debug/{action}``                    ``continue``, ``step``, ``skip``,
                                                            ``retry`` (body ``{"stage"}``,
                                                            optional) or ``set`` (body
                                                            ``{"stage", "input", "value"}``)
``GET    /api/runs/{id}/debug/env[/{stage}]``               the environment a paused stage will
                                                            see (``debug_env``)
``PUT    /api/runs/{id}/debug/breakpoints``                 add one: ``{"stage", "when", "on"}``
``DELETE /api/runs/{id}/debug/breakpoints[/{n}]``           delete one, or all of the run's
``POST   /api/runs/{id}/dump``                              write a debug dump; answers its path
========================================================== ===================================

Answers: 200 with the action's result (201 for a new breakpoint); 400 a malformed request (a
body that is not one JSON object, a field missing or of the wrong type, an input the stage does
not have, a ``when`` that does not compile: ``DebugRequestError``); 404 an unknown run, action
or stage; 409 what the run cannot do now (nothing paused, a finished run, an unknown
breakpoint); 503 no engine (or it did not answer in time). The texts are ``debug_ops``'s, the
control socket's too.

Access: these routes are behind the API's rule (``http_security.py``): the token, an allowed
``Host``/``Origin``, and ``Content-Type: application/json`` on every state change. Who resumed
or overrode is the token's principal, as for approvals; a body naming ``by`` is refused. Every
call runs on the engine's loop through the server's bridge. ``GET`` never turns debug mode on.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from taskdaemon.pipeline.debug_ops import DebugOps, DumpWriter, refusal_text
from taskdaemon.pipeline.errors import (
    DebugRequestError,
    PipelineError,
    RunNotFoundError,
    StageNotFoundError,
)
from taskdaemon.pipeline.http_json import error_response, json_body
from taskdaemon.pipeline.http_thread import EngineUnavailableError, LoopBridge
from taskdaemon.pipeline.quoting import quote
from taskdaemon.pipeline.redaction import DEFAULT_REDACT_PATTERNS

__all__ = ["debug_routes"]

_RESUMING = ("continue", "step", "skip", "retry", "set")


def debug_routes(
    engine: Callable[[], Any],
    bridge: LoopBridge,
    principal: str,
    dump: DumpWriter | None = None,
    redact_patterns: tuple[str, ...] = DEFAULT_REDACT_PATTERNS,
) -> list[Route]:
    """The routes over ``engine()`` (the served Engine, or None before it is bound); answers
    hold run data redacted with ``redact_patterns`` (``debug_ops.py``)."""

    async def run(request: Request, body: dict[str, Any], created: bool = False) -> Response:
        """Answer ``body`` (a debug_ops request) for the path's run, on the engine's loop."""
        current = engine()
        if current is None:
            return error_response(503, "no engine attached to this server")
        run_id = request.path_params["run_id"]

        async def on_engine() -> dict[str, Any]:
            handle = current.get_run(run_id)  # RunNotFoundError: 404
            ops = DebugOps(current, handle.run_id, dump=dump, redact_patterns=redact_patterns)
            if body["action"] == "env" and current._debugger is None:
                # looking never turns debug mode on, and without it nothing is paused
                raise PipelineError("no environment to show: nothing is paused")
            if body["action"] == "state" and current._debugger is None:
                # looking never turns debug mode on
                return {
                    "debug": False,
                    "run_id": handle.run_id,
                    "status": str(handle.status),
                    "paused": [],
                    "breakpoints": [],
                }
            answer = await ops.answer(body)
            if body["action"] == "state":
                return {"debug": True, **answer["state"]}
            return answer

        try:
            answer = await bridge.call(on_engine)
        except (RunNotFoundError, StageNotFoundError) as exc:
            return error_response(404, refusal_text(exc))
        except DebugRequestError as exc:
            return error_response(400, refusal_text(exc))
        except EngineUnavailableError as exc:  # a PipelineError too
            return error_response(503, str(exc))
        except PipelineError as exc:
            return error_response(409, refusal_text(exc))
        return JSONResponse(answer, status_code=201 if created else 200)

    async def state(request: Request) -> Response:
        return await run(request, {"action": "state"})

    async def act(request: Request) -> Response:
        body = await json_body(request)
        action = request.path_params["action"]
        if action not in _RESUMING:
            return error_response(404, f"no debug action {quote(action)} ({', '.join(_RESUMING)})")
        return await run(request, {**body, "action": action, "by": principal})

    async def environment(request: Request) -> Response:
        body: dict[str, Any] = {"action": "env"}
        if "stage" in request.path_params:
            body["stage"] = request.path_params["stage"]
        return await run(request, body)

    async def put_breakpoint(request: Request) -> Response:
        body = await json_body(request)
        return await run(request, {**body, "action": "break"}, created=True)

    async def delete_breakpoints(request: Request) -> Response:
        await json_body(request)
        return await run(request, {"action": "delete", "id": request.path_params.get("number")})

    async def write_dump(request: Request) -> Response:
        await json_body(request)  # the path is the server's choice, never the client's
        return await run(request, {"action": "dump"})

    return [
        Route("/api/runs/{run_id}/debug", state, methods=["GET"]),
        Route("/api/runs/{run_id}/debug/env", environment, methods=["GET"]),
        Route("/api/runs/{run_id}/debug/env/{stage}", environment, methods=["GET"]),
        Route("/api/runs/{run_id}/debug/breakpoints", put_breakpoint, methods=["PUT"]),
        Route("/api/runs/{run_id}/debug/breakpoints", delete_breakpoints, methods=["DELETE"]),
        Route(
            "/api/runs/{run_id}/debug/breakpoints/{number:int}",
            delete_breakpoints,
            methods=["DELETE"],
        ),
        Route("/api/runs/{run_id}/debug/{action}", act, methods=["POST"]),
        Route("/api/runs/{run_id}/dump", write_dump, methods=["POST"]),
    ]
