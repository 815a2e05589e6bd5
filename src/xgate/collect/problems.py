"""The gateway's error answers: one shape for every route (collector, tag, console API). Their CORS headers,
for the paths browsers call, are :mod:`xgate.collect.cors`'s.

An error is ``{"error": "<code>", "message": "<what is wrong and what to do>"}`` with its HTTP status. A
route returns :func:`problem`, or a dependency raises :class:`Problem` (as starlette's ``HTTPException``)
and the app's handler (:func:`problem_handler`, installed by ``create_app``) answers it. What FastAPI and
starlette answer themselves gets the same shape from the app's other handlers: a refused parameter or body
(:func:`validation_problem_handler`), and every ``HTTPException`` (:func:`http_problem_handler`): a path
no route serves (404), a method the route does not take (405), a form that cannot be parsed (400); and a
failure of the gateway's own (500, :func:`internal_problem_handler`), still logged as uvicorn logs it.
"""

from __future__ import annotations

import re
from http import HTTPStatus

import orjson
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from xgate.observe.redact import error_text


class Problem(Exception):
    """An error answer raised from a dependency or a handler: ``status``, ``error`` code, ``message``."""

    def __init__(self, status: int, error: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.message = message
        self.headers = headers

    def response(self) -> Response:
        return problem(self.status, self.error, self.message, self.headers)


def problem(status: int, error: str, message: str, headers: dict[str, str] | None = None) -> Response:
    """The JSON error answer ``{"error": error, "message": message}``."""
    body = orjson.dumps({"error": error, "message": message})
    return Response(body, status_code=status, media_type="application/json", headers=headers)


async def problem_handler(_: Request, exc: Exception) -> Response:
    """The app's exception handler for :class:`Problem`."""
    assert isinstance(exc, Problem)
    return exc.response()


async def validation_problem_handler(_: Request, exc: Exception) -> Response:
    """The app's handler for a query parameter or a body model FastAPI refused (the console's API,
    ``/v1/activity``): 422 ``invalid_request`` naming each field and reason (``limit: Input should be a
    valid integer…``). FastAPI's own answer is another shape and echoes each refused value, e-mails
    included; here the reasons are scrubbed as every error text is
    (:func:`xgate.observe.redact.error_text`)."""
    assert isinstance(exc, RequestValidationError)
    reasons = []
    for err in exc.errors():
        loc = [str(part) for part in err.get("loc", ())]
        field = ".".join(loc[1:]) or (loc[0] if loc else "request")  # loc[0]: body, query, path, header
        reasons.append(f"{field}: {err.get('msg', 'not valid')}")
    return problem(422, "invalid_request", error_text("; ".join(reasons)))


def _http_problem(request: Request, exc: HTTPException) -> tuple[str, str]:
    """The error code and message of an ``HTTPException``: said in words for a missing path and a method
    the path does not take; else the status's name as the code and the exception's detail (scrubbed) as
    the message."""
    status = exc.status_code
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    path = error_text(request.url.path, 200)
    said = exc.detail if isinstance(exc.detail, str) and exc.detail != phrase else None
    if status == 404 and said is None:
        return "not_found", f"nothing at {path}: GET / lists what this listener serves"
    if status == 405:
        allowed = (exc.headers or {}).get("Allow") or (exc.headers or {}).get("allow")
        takes = f"; it takes {allowed}" if allowed else ""
        return "method_not_allowed", f"{request.method} {path}: method not allowed{takes}"
    code = re.sub(r"[^a-z0-9]+", "_", phrase.lower()).strip("_") or "error"
    return code, error_text(said or str(exc.detail or phrase))


async def http_problem_handler(request: Request, exc: Exception) -> Response:
    """The app's handler for every ``HTTPException`` (starlette's routing, FastAPI's body parsing, static
    files): the problem shape, with the exception's headers (a 405's ``Allow``). FastAPI's own answer is
    ``{"detail": "Not Found"}``, another shape than every other error of the gateway's."""
    assert isinstance(exc, HTTPException)
    if exc.status_code in (204, 304):  # no body allowed (RFC 9110 §15.3.5, §15.4.5)
        return Response(status_code=exc.status_code, headers=dict(exc.headers or {}))
    error, message = _http_problem(request, exc)
    return problem(exc.status_code, error, message, dict(exc.headers or {}))


async def internal_problem_handler(_: Request, exc: Exception) -> Response:
    """The app's answer to an exception no handler took (starlette's ``ServerErrorMiddleware`` calls it,
    then re-raises, so the server logs the traceback): 500 ``internal_error``, not starlette's plain
    ``Internal Server Error``. The exception's text stays in the log: it may quote what was sent. With
    ``Connection: close``: uvicorn closes the connection after the error, and a client that reused it met
    a reset."""
    return problem(
        500, "internal_error", "the gateway failed on this request: its log says why", {"Connection": "close"}
    )
