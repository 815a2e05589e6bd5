"""The gateway's error answers and CORS headers: one shape for every route (collector, tag, console API).

An error is ``{"error": "<code>", "message": "<what is wrong and what to do>"}`` with its HTTP status. A
route returns :func:`problem`, or a dependency raises :class:`Problem` (as starlette's ``HTTPException``)
and the app's handler (:func:`problem_handler`, installed by ``create_app``) answers it.
"""

from __future__ import annotations

import orjson
from fastapi.exceptions import RequestValidationError
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


def cors_headers(origin: str, *, credentials: bool = True) -> dict[str, str]:
    """The CORS headers of an answer to a page at ``origin`` (already checked as allowed): credentialed
    for an origin the configuration names; ``*`` without credentials for one only a wildcard allows
    (:func:`xgate.collect.auth.origin_grant`)."""
    if not credentials:
        return {"Access-Control-Allow-Origin": "*"}
    return {
        "Access-Control-Allow-Origin": origin,
        "Access-Control-Allow-Credentials": "true",
        "Vary": "Origin",
    }
