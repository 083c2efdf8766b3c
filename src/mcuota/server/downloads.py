"""Sending a release's bytes: whole or one range, with a strong ETag (the SHA-256), Accept-Ranges,
If-Range, If-None-Match and HEAD, identically for every delivery path."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import Response, StreamingResponse

from mcuota.server.errors import RangeNotSatisfiable
from mcuota.server.ranges import Unsatisfiable, etag_matches, none_match, parse_range
from mcuota.server.runtime import Runtime

INLINE_LIMIT = 1024 * 1024


def serve_blob(request: Request, runtime: Runtime, digest: str, *, size: int, file_name: str, protocol: str,
               head: bool = False) -> Response:
    etag = f'"{digest}"'
    headers = {"ETag": etag, "Accept-Ranges": "bytes", "Cache-Control": "private, max-age=0",
               "Content-Disposition": f'attachment; filename="{file_name}"'}
    if none_match(request.headers.get("if-none-match"), etag):
        return Response(status_code=304, headers=headers)
    selected = None
    wanted = request.headers.get("range")
    if wanted is not None and etag_matches(request.headers.get("if-range"), etag):
        try:
            selected = parse_range(wanted, size)
        except Unsatisfiable as exc:
            raise RangeNotSatisfiable(f"{exc} (Range: {wanted[:100]})", code="range_not_satisfiable",
                                      extra={"size": size}) from None
    status, start, length = 200, 0, size
    if selected is not None:
        status, start, length = 206, selected.start, selected.length
        headers["Content-Range"] = selected.content_range(size)
    headers["Content-Length"] = str(length)
    media = "application/octet-stream"
    if head:
        return Response(status_code=status, headers=headers, media_type=media)
    runtime.metrics.bytes_served.labels(protocol).inc(length)
    if length <= INLINE_LIMIT:
        return Response(runtime.blobs.read(digest, start, length), status_code=status, headers=headers,
                        media_type=media)
    return StreamingResponse(runtime.blobs.iter_range(digest, start, length), status_code=status,
                             headers=headers, media_type=media)
