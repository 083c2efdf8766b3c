"""Sending a release's bytes: whole or one range, with a strong ETag (the SHA-256), Accept-Ranges,
If-Range, If-None-Match and HEAD, identically for every delivery path."""

from __future__ import annotations

import mmap
import threading
from collections import OrderedDict
from typing import TYPE_CHECKING

from fastapi import Request
from fastapi.responses import Response, StreamingResponse

from mcuota.server.blobs import BlobStore, FileBlobStore
from mcuota.server.errors import RangeNotSatisfiable
from mcuota.server.ranges import Unsatisfiable, etag_matches, none_match, parse_range

if TYPE_CHECKING:
    from mcuota.server.runtime import Runtime

INLINE_LIMIT = 1024 * 1024


class OpenBlobs:
    """The most recently served blobs, mapped into memory: a 4096-byte range is then a slice, not an
    open, a seek, a read and a close. A blob is named by its content, so a mapping never shows bytes
    other than the blob's; one whose file was deleted keeps its pages until it is evicted. Evicted
    mappings are dropped, never closed, so a slice taken in another thread at that moment stays valid."""

    def __init__(self, blobs: BlobStore, size: int = 32) -> None:
        self.blobs = blobs
        self.size = size
        self._maps: OrderedDict[str, mmap.mmap] = OrderedDict()
        self._lock = threading.Lock()

    def read(self, digest: str, start: int, length: int) -> bytes:
        mapped = self._maps.get(digest) or self._map(digest)
        if mapped is None:
            return self.blobs.read(digest, start, length)
        return mapped[start:start + length]

    def _map(self, digest: str) -> mmap.mmap | None:
        if not isinstance(self.blobs, FileBlobStore):
            return None
        try:
            with self.blobs.path(digest).open("rb") as handle:
                mapped = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
        except (OSError, ValueError):  # missing (the caller's read says so) or empty: read it plainly
            return None
        with self._lock:
            self._maps[digest] = mapped
            while len(self._maps) > self.size:
                self._maps.popitem(last=False)
        return mapped


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
        return Response(runtime.open_blobs.read(digest, start, length), status_code=status, headers=headers,
                        media_type=media)
    return StreamingResponse(runtime.blobs.iter_range(digest, start, length), status_code=status,
                             headers=headers, media_type=media)
