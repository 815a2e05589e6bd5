"""The OpenAPI description of ``POST /v1/events``, declared by hand so the hot path can skip body models."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from xgate.events import Event


class ConversionResult(BaseModel):
    destination: str
    pixel_id: str
    conversion_id: str
    status: str = Field(description="queued (newly) or duplicate (already in the outbox)")


class ErrorItem(BaseModel):
    field: str
    reason: str
    destination: str | None = None


class EventResult(BaseModel):
    index: int
    status: str = Field(description="accepted, duplicate, skipped or rejected")
    conversions: list[ConversionResult] | None = None
    skipped: dict[str, str] | None = None
    errors: list[ErrorItem] | None = None
    warnings: list[str] | None = Field(
        default=None,
        description="fields X can do without that held an unusable value and were dropped (or cleaned), "
        "each with the reason; the conversion was kept. Also keys spelled almost like a known field "
        "(user.emial: did you mean user.email?), kept as they are, on any event",
    )


class IngestAnswer(BaseModel):
    accepted: int
    duplicates: int
    skipped: int
    rejected: int
    results: list[EventResult]


class Problem(BaseModel):
    error: str = Field(description="machine-readable code")
    message: str = Field(description="what is wrong and what to do")


class ActivityItem(BaseModel):
    at: float
    event_name: str
    state: str
    destination: str | None = None
    conversion_id: str | None = None
    match_signals: list[str]
    attempts: int
    debug_id: str | None = None
    error: str | None = None
    source: str | None = None


class UnmatchedCount(BaseModel):
    """Events rejected only for want of an identifier X can match (an anonymous visitor's page view):
    counted, never listed in ``entries`` (they would push out the rejections that need a fix)."""

    since: float = Field(description="counted from this time (epoch seconds): 24 hours ago, to the minute")
    events: int = Field(description="how many, every source and node")
    sources: dict[str, int] = Field(description="how many per source (sources with none are absent)")


class ActivityAnswer(BaseModel):
    entries: list[ActivityItem]
    unmatched: UnmatchedCount


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def component_schemas() -> dict[str, Any]:
    """Schemas the hand-written parts refer to, to merge into the OpenAPI document's components."""
    out: dict[str, Any] = {}
    for model in (Event, IngestAnswer, Problem):
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        out.update(schema.pop("$defs", {}))
        out[model.__name__] = schema
    return out


def validation_answers_are_problems(document: dict[str, Any]) -> None:
    """Make the 422 answers FastAPI declares for every route with parameters or a body model say what the
    app answers (:func:`xgate.collect.problems.validation_problem_handler`): a :class:`Problem`, not
    FastAPI's ``HTTPValidationError``, whose schemas are then dropped. Changes ``document`` in place."""
    fastapi_422 = "#/components/schemas/HTTPValidationError"
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            answer = operation.get("responses", {}).get("422")
            if answer and answer.get("content", {}).get("application/json", {}).get("schema") == {
                "$ref": fastapi_422
            }:
                operation["responses"]["422"] = _problem(
                    "A parameter or the body is not valid: each field named"
                )
    schemas = document.get("components", {}).get("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)


def _problem(description: str) -> dict[str, Any]:
    return _json(_ref(Problem), description)


INGEST_OPENAPI: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": 'One event, or a batch as {"events": [...]}. Any content type is read as JSON.',
        "content": {
            "application/json": {
                "schema": {
                    "oneOf": [
                        {"$ref": "#/components/schemas/Event"},
                        {
                            "type": "object",
                            "required": ["events"],
                            "properties": {
                                "events": {
                                    "type": "array",
                                    "minItems": 1,
                                    "items": {"$ref": "#/components/schemas/Event"},
                                },
                            },
                        },
                    ]
                }
            }
        },
    },
    "parameters": [
        {
            "name": "write_key",
            "in": "query",
            "required": False,
            "schema": {"type": "string"},
            "description": "the source's write key, for senders that cannot set headers (sendBeacon)",
        },
    ],
    "responses": {
        "200": _json(_ref(IngestAnswer), "At least one event accepted, duplicate or skipped"),
        "400": _problem("The body is not JSON, or not an event or a batch"),
        "401": _problem("No write key, or an unknown one"),
        "403": _problem("The request's Origin is not allowed for this source"),
        "413": _problem("The body or the batch is larger than allowed"),
        "422": _json(_ref(IngestAnswer), "Every event was rejected; each result names the field and reason"),
        "503": _problem("The outbox cannot take events right now; retry"),
    },
}

#: the answers of the paths kept from browsers (xgate.collect.admin)
ADMIN_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "Neither the admin listener nor the admin key"},
    404: {"model": Problem, "description": "Not served on the public listener when admin_port is set"},
}
AUTH_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "No key, or an unknown one"},
    403: {"model": Problem, "description": "The key may not read the activity log"},
}
