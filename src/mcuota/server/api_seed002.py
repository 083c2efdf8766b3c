"""The seed-002 HTTP flow (Infineon OTA agent, job-document mode), unchanged, under ``/seed002/{serial}/``.

1. ``GET ota_update.json`` → the job document with the agent's field names (Manufacturer, ManufacturerId,
   Product, SerialNumber, Version, Board, Connection, Server, Port, File) plus Size, Sha256, Md5 and
   Format (a Gizwits MCU checks the MD5 and writes it into its FLAG record).
   With nothing to offer the answer is still 200 and a document, ``"Message": "No Update Available"``
   with ``Version`` = the version the server believes the device runs and no File: the message the
   agent's MQTT flow uses for the same situation, so one parser serves both.
2. ``GET <File>`` with ``Range: bytes=a-b`` in 4096-byte steps → 206 + ``Content-Range: bytes a-b/total``.
3. ``POST <File>`` with ``{"Message": "Success" | "Failure", "File": …}`` →
   ``{"Message": "Result Received"}``. A "Failure" may carry ``"Reason"``; one starting with
   "reverted" records the attempt as reverted (the bootloader went back to the old image after the
   reboot, possibly after the agent had already reported Success for its download), which is never
   retried, unlike a failure.

The agent cannot tell the server what it runs over HTTP, so gating uses the version the server knows
(registration, the last success). Authentication is the device token, as a bearer header or
``?token=`` for agents whose HTTP client cannot add headers; a token only opens its own device's path.
"""

from __future__ import annotations

import json
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from mcuota.image.version import ImageVersion
from mcuota.server.api_models import ErrorOut, Seed002Job, Seed002ResultIn, Seed002ResultOut
from mcuota.server.deps import get_runtime, seed002_device
from mcuota.server.downloads import serve_blob
from mcuota.server.errors import BadRequest
from mcuota.server.fleet import DeviceRow
from mcuota.server.names import check_file_name, check_name
from mcuota.server.runtime import Runtime

JOB_FILE = "ota_update.json"
router = APIRouter(prefix="/seed002/{serial}", tags=["seed-002"],
                   responses={code: {"model": ErrorOut} for code in (400, 401, 403, 404, 409, 429)})
FILE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"content": {"application/octet-stream": {}}, "description": "the whole image"},
    206: {"content": {"application/octet-stream": {}}, "description": "one byte range (Content-Range)"},
    304: {"description": "If-None-Match named the image's ETag"},
    416: {"model": ErrorOut, "description": "the range starts past the end"},
}
RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
Me = Annotated[DeviceRow, Depends(seed002_device)]
RESULT_BODY = {"requestBody": {"required": True, "content": {"application/json": {
    "schema": Seed002ResultIn.model_json_schema()}}}}


def _triple(version: ImageVersion) -> str:
    """The agent's "Major.Minor.Build" form (MCUboot's revision is the agent's third number)."""
    return f"{version.major}.{version.minor}.{version.revision}"


def _server_fields(request: Request, runtime: Runtime) -> tuple[str, str, str]:
    """(Connection, Server, Port) as the agent wants them: scheme, host name and port apart."""
    base = runtime.settings.public_url or str(request.base_url)
    parts = urlsplit(base)
    scheme = parts.scheme or "http"
    port = parts.port or (443 if scheme == "https" else 80)
    return ("HTTPS" if scheme == "https" else "HTTP"), parts.hostname or "localhost", str(port)


@router.get(f"/{JOB_FILE}", response_model=Seed002Job, response_model_exclude_none=True,
            summary="The job document: an update to fetch, or No Update Available")
def job_document(request: Request, serial: str, runtime: RuntimeDep,
                 me: Me) -> dict[str, Any]:
    job = runtime.fleet.job_for(me)
    runtime.metrics.checkins.labels("seed002-http", "offered" if job else "none").inc()
    if job is None:
        device = runtime.fleet.get_device(me.serial)
        running = ImageVersion.parse(device["version"])
        return {"Message": "No Update Available", "Manufacturer": runtime.settings.manufacturer,
                "ManufacturerId": runtime.settings.manufacturer_id, "Product": device["product"] or "",
                "SerialNumber": me.serial, "Version": _triple(running), "Board": me.board}
    offer = job.offer
    connection, server, port = _server_fields(request, runtime)
    version = offer.version
    return {"Message": "Update Available", "Manufacturer": offer.manufacturer,
            "ManufacturerId": offer.manufacturer_id, "Product": offer.product, "SerialNumber": me.serial,
            "Version": _triple(version), "Board": offer.board,
            "Connection": connection, "Server": server, "Port": port,
            "File": f"/seed002/{me.serial}/{offer.file_name}", "Size": offer.size, "Sha256": offer.sha256,
            "Md5": offer.md5 or None, "Format": offer.image_format}


def _file(request: Request, runtime: Runtime, me: DeviceRow, file_name: str, head: bool) -> Response:
    artifact = runtime.fleet.device_artifact(me, file_name=check_file_name(file_name))
    if not head:
        runtime.fleet.note_download(me, artifact)
    return serve_blob(request, runtime, artifact.sha256, size=artifact.size, file_name=artifact.file_name,
                      protocol="seed002-http", head=head)


@router.get("/{file_name}", response_class=Response, responses=FILE_RESPONSES,
            summary="The image named by the job document's File, by Range steps")
def get_file(request: Request, serial: str, file_name: str, runtime: RuntimeDep,
             me: Me) -> Response:
    return _file(request, runtime, me, file_name, head=False)


@router.head("/{file_name}", response_class=Response, responses=FILE_RESPONSES)
def head_file(request: Request, serial: str, file_name: str, runtime: RuntimeDep,
              me: Me) -> Response:
    return _file(request, runtime, me, file_name, head=True)


@router.post("/{file_name}", response_model=Seed002ResultOut, openapi_extra=RESULT_BODY,
             summary="The agent's result: Success or Failure")
async def post_result(request: Request, serial: str, file_name: str, runtime: RuntimeDep,
                      me: Me) -> dict[str, Any]:
    check_name(serial, "serial")
    check_file_name(file_name)
    raw = await request.body()
    try:
        body = json.loads(raw) if len(raw) <= 64 * 1024 else None
    except (ValueError, UnicodeDecodeError):
        body = None
    if not isinstance(body, dict):
        raise BadRequest("the result must be a JSON object like {\"Message\": \"Success\", \"File\": \"…\"}",
                         code="malformed_json")
    fields = {str(k).lower(): v for k, v in body.items()}  # the agent matches names case-insensitively
    message = fields.get("message")
    if message not in ("Success", "Failure"):
        raise BadRequest(f"Message must be \"Success\" or \"Failure\", not {message!r}"[:200],
                         code="invalid_result")
    reason = fields.get("reason")
    if reason is not None and not isinstance(reason, str):
        raise BadRequest("Reason must be a string", code="invalid_result")
    artifact = await run_in_threadpool(runtime.fleet.device_artifact, me, None, file_name)
    state = "success" if message == "Success" else "failure"
    if state == "failure" and reason is not None and reason.strip().lower().startswith("reverted"):
        state = "reverted"
    text = "".join(c for c in reason if c.isprintable())[:1000] if reason else "seed-002 agent result"
    outcome = await run_in_threadpool(runtime.fleet.report, me, artifact.release_id, state, text)
    runtime.metrics.reports.labels(state, str(outcome.changed).lower()).inc()
    return {"Message": "Result Received", "State": outcome.state}
