"""Our device API under ``/api/v1/device``, authenticated by the device's own token: check in (what I
run → a job or "no update"), download the job's artifact by ranges, report progress and results.

A device only ever sees its own jobs: an artifact it has no job for is 404 to it, whoever else may
be installing that release.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from mcuota.server.api_models import MAX_ID, CheckinIn, CheckinOut, ErrorOut, ReportIn, ReportOut
from mcuota.server.deps import device, get_runtime
from mcuota.server.downloads import serve_blob
from mcuota.server.errors import Forbidden
from mcuota.server.fleet import DeviceRow
from mcuota.server.names import check_name
from mcuota.server.runtime import Runtime

router = APIRouter(prefix="/api/v1/device", tags=["device"],
                   responses={code: {"model": ErrorOut} for code in (400, 401, 403, 404, 409, 422, 429)})
ARTIFACT_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"content": {"application/octet-stream": {}}, "description": "the whole artifact"},
    206: {"content": {"application/octet-stream": {}}, "description": "one byte range (Content-Range)"},
    304: {"description": "If-None-Match named the artifact's ETag"},
    416: {"model": ErrorOut, "description": "the range starts past the end"},
}


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
Me = Annotated[DeviceRow, Depends(device)]
ReleasePath = Annotated[int, Path(ge=1, le=MAX_ID)]


def artifact_url(release_id: int) -> str:
    return f"/api/v1/device/artifacts/{release_id}"


@router.post("/checkin", response_model=CheckinOut)
def checkin(body: CheckinIn, runtime: RuntimeDep,
            me: Me) -> dict[str, Any]:
    if check_name(body.serial, "serial") != me.serial:
        raise Forbidden(f"this token belongs to device {me.serial}, not {body.serial}", code="wrong_device")
    job = runtime.fleet.checkin(me, check_name(body.board, "board"), body.version)
    runtime.metrics.checkins.labels("device-api", "offered" if job else "none").inc()
    if job is None:
        return {"update": False, "job": None}
    offer = job.offer
    release_id = int(offer.release_id)
    return {"update": True, "job": {
        "release_id": release_id, "attempt_id": job.attempt_id, "version": str(offer.version),
        "board": offer.board, "product": offer.product, "size": offer.size, "sha256": offer.sha256,
        "md5": offer.md5, "format": offer.image_format,
        "file_name": offer.file_name, "url": artifact_url(release_id)}}


def _artifact(request: Request, runtime: Runtime, me: DeviceRow, release_id: int, head: bool) -> Response:
    artifact = runtime.fleet.device_artifact(me, release_id=release_id)
    if not head:
        runtime.fleet.note_download(me, artifact)
    return serve_blob(request, runtime, artifact.sha256, size=artifact.size, file_name=artifact.file_name,
                      protocol="device-api", head=head)


@router.get("/artifacts/{release_id}", response_class=Response, responses=ARTIFACT_RESPONSES)
async def download(request: Request, release_id: ReleasePath, runtime: RuntimeDep,
                   me: Me) -> Response:
    """A device downloading its job range by range is answered on the event loop, from memory and the
    page cache, once the first range has looked its job up; anything else goes through the threadpool."""
    artifact = runtime.fleet.cached_artifact(me, release_id)
    if artifact is None or request.headers.get("range") is None:
        return await run_in_threadpool(_artifact, request, runtime, me, release_id, False)
    return serve_blob(request, runtime, artifact.sha256, size=artifact.size, file_name=artifact.file_name,
                      protocol="device-api")


@router.head("/artifacts/{release_id}", response_class=Response, responses=ARTIFACT_RESPONSES)
def download_head(request: Request, release_id: ReleasePath,
                  runtime: RuntimeDep, me: Me) -> Response:
    return _artifact(request, runtime, me, release_id, head=True)


@router.post("/reports", response_model=ReportOut)
def report(body: ReportIn, runtime: RuntimeDep,
           me: Me) -> dict[str, Any]:
    outcome = runtime.fleet.report(me, body.release_id, body.state, _clean(body.reason))
    runtime.metrics.reports.labels(body.state, str(outcome.changed).lower()).inc()
    return {"attempt_id": outcome.attempt_id, "release_id": outcome.release_id, "state": outcome.state,
            "changed": outcome.changed, "note": outcome.note}


def _clean(text: str) -> str:
    """Free text from a device, without the control characters (NUL above all) a database refuses."""
    return "".join(c for c in text if c.isprintable())
