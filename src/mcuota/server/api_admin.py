"""The operator's REST API under ``/api/v1``: products, boards, trust, releases, devices, rollouts,
API keys, the audit log. Reads need the ``read`` scope, changes ``write``, keys and trust ``admin``.

Handlers only translate between HTTP and :class:`~mcuota.server.fleet.Fleet`; plain ``def`` handlers
run in the thread pool, where the database calls belong.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from mcuota.server.api_models import (
    MAX_ID,
    ApiKeyCreatedOut,
    ApiKeyIn,
    ApiKeyOut,
    AuditOut,
    BoardIn,
    BoardOut,
    DeviceCreatedOut,
    DeviceDetailOut,
    DeviceIn,
    DeviceOut,
    ErrorOut,
    ProductIn,
    ProductOut,
    ReleaseOut,
    RolloutIn,
    RolloutOut,
    SettingsOut,
    TagsIn,
    TokenOut,
    TrustKeyIn,
    TrustKeyOut,
)
from mcuota.server.deps import get_runtime, require
from mcuota.server.downloads import serve_blob
from mcuota.server.errors import TooLarge
from mcuota.server.fleet import ApiKey
from mcuota.server.names import check_name, check_tag
from mcuota.server.runtime import Runtime

ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorOut} for code in (400, 401, 403, 404, 409, 413, 422, 429)}
router = APIRouter(prefix="/api/v1", responses=ERRORS)
RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
ReadKey = Annotated[ApiKey, Depends(require("read"))]
WriteKey = Annotated[ApiKey, Depends(require("write"))]
AdminKey = Annotated[ApiKey, Depends(require("admin"))]
BoardQuery = Annotated[str | None, Query(min_length=1, max_length=64)]
SerialPath = Annotated[str, Path(min_length=1, max_length=64)]

IdPath = Annotated[int, Path(ge=1, le=MAX_ID)]
OCTET_STREAM = {"requestBody": {"required": True, "description": "the image file, as raw bytes",
                                "content": {"application/octet-stream": {
                                    "schema": {"type": "string", "format": "binary"}}}}}


@router.get("/settings", response_model=SettingsOut, tags=["server"])
def get_settings(runtime: RuntimeDep, _: ReadKey) -> dict[str, Any]:
    s = runtime.settings
    return {"require_signatures": s.require_signatures, "max_upload_bytes": s.max_upload_bytes,
            "rate_limit": s.rate_limit, "rate_burst": s.rate_burst, "database": runtime.db.dialect,
            "mqtt": (s.mqtt_url or "embedded") if s.mqtt_enabled else "disabled"}


# --- products and boards ---------------------------------------------------------------------------

@router.get("/products", response_model=list[ProductOut], tags=["products"])
def list_products(runtime: RuntimeDep, _: ReadKey) -> list[dict[str, Any]]:
    return runtime.fleet.list_products()


@router.post("/products", response_model=ProductOut, status_code=201, tags=["products"])
def create_product(body: ProductIn, runtime: RuntimeDep,
                   key: WriteKey) -> dict[str, Any]:
    return runtime.fleet.create_product(body.name, body.manufacturer, body.manufacturer_id, key.name)


@router.get("/boards", response_model=list[BoardOut], tags=["boards"])
def list_boards(runtime: RuntimeDep, _: ReadKey) -> list[dict[str, Any]]:
    return runtime.fleet.list_boards()


@router.post("/boards", response_model=BoardOut, status_code=201, tags=["boards"])
def create_board(body: BoardIn, runtime: RuntimeDep,
                 key: WriteKey) -> dict[str, Any]:
    return runtime.fleet.create_board(body.name, body.product, key.name)


# --- trust ------------------------------------------------------------------------------------------

@router.get("/trust/keys", response_model=list[TrustKeyOut], tags=["trust"])
def list_keys(runtime: RuntimeDep, _: ReadKey) -> list[dict[str, Any]]:
    return runtime.fleet.list_trusted_keys()


@router.post("/trust/keys", response_model=TrustKeyOut, status_code=201, tags=["trust"])
def add_key(body: TrustKeyIn, runtime: RuntimeDep,
            key: AdminKey) -> dict[str, Any]:
    if body.board is not None:
        check_name(body.board, "board")
    return runtime.fleet.add_trusted_key(body.pem, body.board, key.name)


@router.delete("/trust/keys/{key_id}", status_code=204, tags=["trust"])
def remove_key(key_id: IdPath, runtime: RuntimeDep,
               key: AdminKey) -> Response:
    runtime.fleet.remove_trusted_key(key_id, key.name)
    return Response(status_code=204)


# --- releases ---------------------------------------------------------------------------------------

async def read_limited(request: Request, limit: int) -> bytes:
    """The request body, refusing (413) anything over ``limit`` before reading it all."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise TooLarge(f"upload of {declared} bytes is over the {limit}-byte limit", code="upload_too_large")
    chunks: list[bytes] = []
    total = 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > limit:
            raise TooLarge(f"upload is over the {limit}-byte limit", code="upload_too_large")
        chunks.append(chunk)
    return b"".join(chunks)


@router.post("/releases", response_model=ReleaseOut, status_code=201, tags=["releases"],
             openapi_extra=OCTET_STREAM,
             summary="Upload a release image (raw bytes); verified before it is stored")
async def upload_release(*, request: Request, runtime: RuntimeDep, key: WriteKey,
                         board: Annotated[str, Query(min_length=1, max_length=64,
                                                     description="board the release is for")],
                         product: BoardQuery = None,
                         file_name: Annotated[str | None, Query(
                             min_length=1, max_length=128, description="name devices download it as")] = None,
                         format: Annotated[Literal["auto", "gizwits"], Query(
                             description="auto: recognised from the bytes; gizwits: a bare Gizwits "
                                         "application, which needs version")] = "auto",
                         version: Annotated[str | None, Query(
                             min_length=1, max_length=32, description="x.y.z, for format=gizwits")] = None,
                         ) -> dict[str, Any]:
    data = await read_limited(request, runtime.settings.max_upload_bytes)
    try:
        release = await run_in_threadpool(runtime.fleet.upload_release, data, board=board, product=product,
                                          file_name=file_name, image_format=format, version=version,
                                          actor=key.name)
    except Exception:
        runtime.metrics.uploads.labels("rejected").inc()
        raise
    runtime.metrics.uploads.labels("stored").inc()
    return release


@router.get("/releases", response_model=list[ReleaseOut], tags=["releases"])
def list_releases(runtime: RuntimeDep, _: ReadKey, board: BoardQuery = None) -> list[dict[str, Any]]:
    if board is not None:
        check_name(board, "board")
    return runtime.fleet.list_releases(board)


@router.get("/releases/{release_id}", response_model=ReleaseOut, tags=["releases"])
def get_release(release_id: IdPath, runtime: RuntimeDep,
                _: ReadKey) -> dict[str, Any]:
    return runtime.fleet.get_release(release_id)


@router.get("/releases/{release_id}/image", tags=["releases"], response_class=Response,
            responses={200: {"content": {"application/octet-stream": {}}, "description": "the image"},
                       206: {"content": {"application/octet-stream": {}}, "description": "a range of it"},
                       416: {"model": ErrorOut}})
def download_release(request: Request, release_id: IdPath, runtime: RuntimeDep,
                     _: ReadKey) -> Response:
    digest, size, name = runtime.fleet.release_blob(release_id)
    return serve_blob(request, runtime, digest, size=size, file_name=name, protocol="admin")


# --- devices ----------------------------------------------------------------------------------------

@router.post("/devices", response_model=DeviceCreatedOut, status_code=201, tags=["devices"])
def add_device(body: DeviceIn, runtime: RuntimeDep,
               key: WriteKey) -> dict[str, Any]:
    check_name(body.board, "board")
    if body.product is not None:
        check_name(body.product, "product")
    return runtime.fleet.add_device(body.serial, board=body.board, product=body.product, version=body.version,
                                    tags=body.tags, actor=key.name)


@router.get("/devices", response_model=list[DeviceOut], tags=["devices"])
def list_devices(runtime: RuntimeDep, _: ReadKey, board: BoardQuery = None,
                 tag: BoardQuery = None) -> list[dict[str, Any]]:
    if board is not None:
        check_name(board, "board")
    if tag is not None:
        check_tag(tag)
    return runtime.fleet.list_devices(board, tag)


@router.get("/devices/{serial}", response_model=DeviceDetailOut, tags=["devices"])
def get_device(serial: SerialPath, runtime: RuntimeDep,
               _: ReadKey) -> dict[str, Any]:
    return runtime.fleet.get_device(check_name(serial, "serial"))


@router.put("/devices/{serial}/tags", response_model=DeviceDetailOut, tags=["devices"])
def set_tags(body: TagsIn, serial: SerialPath,
             runtime: RuntimeDep, key: WriteKey) -> dict[str, Any]:
    return runtime.fleet.set_tags(check_name(serial, "serial"), body.tags, key.name)


@router.post("/devices/{serial}/token", response_model=TokenOut, tags=["devices"],
             summary="Issue a new token for a device (the old one stops working)")
def rotate_token(serial: SerialPath, runtime: RuntimeDep,
                 key: WriteKey) -> dict[str, Any]:
    return runtime.fleet.rotate_token(check_name(serial, "serial"), key.name)


# --- rollouts ---------------------------------------------------------------------------------------

@router.post("/rollouts", response_model=RolloutOut, status_code=201, tags=["rollouts"])
def create_rollout(body: RolloutIn, runtime: RuntimeDep,
                   key: WriteKey) -> dict[str, Any]:
    if body.board is not None:
        check_name(body.board, "board")
    return runtime.fleet.create_rollout(
        body.release_id, board=body.board, tags=body.tags, stages=body.stages,
        halt_failure_rate=body.halt_failure_rate, min_attempts=body.min_attempts,
        advance_success_rate=body.advance_success_rate,
        allow_downgrade=body.allow_downgrade, max_attempts=body.max_attempts, actor=key.name)


@router.get("/rollouts", response_model=list[RolloutOut], tags=["rollouts"])
def list_rollouts(runtime: RuntimeDep, _: ReadKey) -> list[dict[str, Any]]:
    return runtime.fleet.list_rollouts()


@router.get("/rollouts/{rollout_id}", response_model=RolloutOut, tags=["rollouts"])
def rollout_status(rollout_id: IdPath, runtime: RuntimeDep,
                   _: ReadKey) -> dict[str, Any]:
    return runtime.fleet.rollout_status(rollout_id)


def _action(action: str) -> Any:
    def handler(rollout_id: IdPath, runtime: RuntimeDep,
                key: WriteKey) -> dict[str, Any]:
        return runtime.fleet.rollout_action(rollout_id, action, key.name)

    handler.__name__ = f"{action}_rollout"
    return handler


for _verb in ("pause", "resume", "cancel"):
    router.add_api_route(f"/rollouts/{{rollout_id}}/{_verb}", _action(_verb), methods=["POST"],
                         response_model=RolloutOut, tags=["rollouts"],
                         summary=f"{_verb.capitalize()} a rollout")


# --- API keys and audit ----------------------------------------------------------------------------

@router.get("/api-keys", response_model=list[ApiKeyOut], tags=["access"])
def list_api_keys(runtime: RuntimeDep, _: AdminKey) -> list[dict[str, Any]]:
    return runtime.fleet.list_api_keys()


@router.post("/api-keys", response_model=ApiKeyCreatedOut, status_code=201, tags=["access"])
def create_api_key(body: ApiKeyIn, runtime: RuntimeDep,
                   key: AdminKey) -> dict[str, Any]:
    return runtime.fleet.create_api_key(body.name, list(body.scopes), key.name)


@router.delete("/api-keys/{key_id}", response_model=ApiKeyOut, tags=["access"])
def revoke_api_key(key_id: IdPath, runtime: RuntimeDep,
                   key: AdminKey) -> dict[str, Any]:
    return runtime.fleet.revoke_api_key(key_id, key.name)


@router.get("/audit", response_model=list[AuditOut], tags=["access"])
def audit(runtime: RuntimeDep, _: ReadKey,
          limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[dict[str, Any]]:
    return runtime.fleet.audit_entries(limit)
