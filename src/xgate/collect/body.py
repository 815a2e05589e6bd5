"""Reading a request body under a size limit, enforced while reading, and unpacking a gzip one."""

from __future__ import annotations

import zlib

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


def unpacked(request: Request, body: bytes, limit: int) -> bytes | None:
    """``body`` as sent, or unpacked when the request says ``Content-Encoding: gzip`` (RudderStack's SDKs
    send one; any backend may), at most ``limit`` bytes: None when it is not gzip or unpacks past the limit
    (the limit holds for what is parsed, not for what crossed the wire). See :func:`not_gzip`."""
    if request.headers.get("content-encoding", "").strip().lower() != "gzip":
        return body
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(body, limit + 1)
    except zlib.error:
        return None
    if len(out) > limit or inflater.unconsumed_tail or not inflater.eof:
        return None
    return out


def not_gzip(limit: int) -> str:
    """The message of a 400 ``invalid_body`` for a body :func:`unpacked` refused."""
    return f"body: not gzip data, or more than {limit} bytes unpacked"
