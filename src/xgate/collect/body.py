"""Reading a request body under a size limit, enforced while reading."""

from __future__ import annotations

from starlette.requests import Request

from xgate.errors import BodyTooLarge as BodyTooLarge


async def read_body(request: Request, limit: int) -> bytes:
    """The body, or :class:`BodyTooLarge` as soon as the declared or received length passes ``limit``."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(limit)
        chunks.append(chunk)
    return b"".join(chunks)
