"""Request and response bodies of the REST API, as pydantic models: they are the OpenAPI document.

Numbers are bounded to what the database stores and strings to what the columns hold, so a request
that is merely absurd (an id of 10**30, a 1 MB name) is a 422 at the edge rather than a driver error
deep inside; the finer rules (which characters a serial may use) are checked by
:mod:`mcuota.server.names` and answered with 400.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from mcuota.server.catalog import RESULT_STATES
from mcuota.server.rollout_policy import DEFAULT_STAGES

MAX_ID = 2**31 - 1
Id = Field(ge=1, le=MAX_ID)
Name = Field(min_length=1, max_length=64)
ReportState = Literal["downloading", "downloaded", "installing", "rebooting", "success", "failure",
                      "reverted"]
assert set(ReportState.__args__) == set(RESULT_STATES)  # type: ignore[attr-defined]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorOut(BaseModel):
    error: str = Field(description="machine-readable code, e.g. unknown_device, tampered, duplicate_version")
    detail: Any = Field(description="one human line (or, for invalid requests, the list of problems)")


class ProductIn(_In):
    name: str = Name
    manufacturer: str | None = Field(default=None, max_length=128, pattern=r"^[^\x00-\x1f]*$")
    manufacturer_id: str | None = Field(default=None, max_length=64, pattern=r"^[^\x00-\x1f]*$")


class ProductOut(BaseModel):
    name: str
    manufacturer: str
    manufacturer_id: str
    created_at: str


class BoardIn(_In):
    name: str = Name
    product: str | None = Field(default=None, min_length=1, max_length=64)


class BoardOut(BaseModel):
    name: str
    product: str | None
    created_at: str


class TrustKeyIn(_In):
    pem: str = Field(min_length=1, max_length=16384, description="PEM public key (or private key: only its "
                     "public half is kept)")
    board: str | None = Field(default=None, min_length=1, max_length=64,
                              description="trust the key for this board only (default: every board)")


class TrustKeyOut(BaseModel):
    id: int
    key_hash: str
    key_type: str
    board: str | None
    created_at: str


class ReleaseOut(BaseModel):
    id: int
    board: str
    product: str | None
    version: str
    sha256: str
    size: int
    md5: str | None = Field(description="hex MD5 of the image (what a Gizwits MCU checks)")
    format: str
    soft_ver: str | None = Field(default=None, description="the Gizwits softVer, for gizwits releases")
    file_name: str
    signed: bool
    key_hash: str | None
    created_at: str
    summary: str | None = Field(default=None, description="what the upload check found (upload answer only)")


class DeviceIn(_In):
    serial: str = Name
    board: str = Name
    product: str | None = Field(default=None, min_length=1, max_length=64)
    version: str = Field(default="0.0.0", min_length=1, max_length=32)
    tags: list[str] = Field(default_factory=list, max_length=32)


class TagsIn(_In):
    tags: list[str] = Field(max_length=32)


class HistoryOut(BaseModel):
    state: str
    reason: str
    at: str


class AttemptOut(BaseModel):
    id: int
    release_id: int
    version: str
    rollout_id: int | None
    state: str
    reason: str
    created_at: str
    updated_at: str
    history: list[HistoryOut]


class DeviceOut(BaseModel):
    serial: str
    board: str
    product: str | None
    version: str
    tags: list[str]
    created_at: str
    last_seen_at: str | None


class DeviceDetailOut(DeviceOut):
    attempts: list[AttemptOut]


class DeviceCreatedOut(DeviceDetailOut):
    token: str = Field(description="the device's bearer token: shown once, stored only as a hash")


class TokenOut(BaseModel):
    serial: str
    token: str


class RolloutIn(_In):
    release_id: int = Id
    board: str | None = Field(default=None, min_length=1, max_length=64)
    tags: list[str] = Field(default_factory=list, max_length=32,
                            description="a device must carry every one of these tags")
    stages: list[int] = Field(default_factory=lambda: list(DEFAULT_STAGES), min_length=1, max_length=20,
                              description="cumulative percentages of the targets, strictly increasing")
    halt_failure_rate: float = Field(default=0.1, ge=0, le=1)
    min_attempts: int = Field(default=20, ge=1, le=MAX_ID)
    advance_success_rate: float = Field(default=0.9, ge=0, le=1)
    allow_downgrade: bool = Field(default=False, description="an explicit downgrade: offer the release even "
                                  "to devices running a newer version")
    max_attempts: int = Field(default=3, ge=1, le=10, description="attempts per device: one whose latest "
                              "attempt ended in failure is offered the release again until it used these")


class RolloutOut(BaseModel):
    id: int
    release_id: int
    version: str
    board: str
    tags: list[str]
    state: Literal["active", "paused", "halted", "cancelled", "completed"] = Field(
        description="completed: active, at a final 100 % stage, and every target has a final result")
    stages: list[int]
    stage: int = Field(description="1-based index of the current stage")
    stage_percent: int
    stage_cap: int
    targets: int
    admitted: int
    succeeded: int
    failed: int
    in_progress: int
    counts: dict[str, int]
    halt_failure_rate: float
    min_attempts: int
    advance_success_rate: float
    allow_downgrade: bool
    max_attempts: int
    retried: int = Field(description="attempts that were retries of a failed one")
    complete: bool = Field(description="every target succeeded, reverted, or failed with no attempt left")
    reason: str
    created_at: str
    updated_at: str


class ApiKeyIn(_In):
    name: str = Name
    scopes: list[Literal["read", "write", "admin"]] = Field(min_length=1, max_length=3)


class ApiKeyOut(BaseModel):
    id: int
    name: str
    scopes: list[str]
    created_at: str
    revoked: bool


class ApiKeyCreatedOut(BaseModel):
    id: int
    name: str
    scopes: list[str]
    key: str = Field(description="the key itself: shown once, stored only as a hash")


class AuditOut(BaseModel):
    id: int
    at: str
    actor: str
    action: str
    target: str
    detail: dict[str, Any]


class SettingsOut(BaseModel):
    require_signatures: bool
    max_upload_bytes: int
    rate_limit: float
    rate_burst: int
    database: str
    mqtt: str


class CheckinIn(_In):
    serial: str = Name
    board: str = Name
    version: str = Field(min_length=1, max_length=32, description="the running version, e.g. 1.2.3+4")


class JobOut(BaseModel):
    release_id: int
    attempt_id: int
    version: str
    board: str
    product: str
    size: int
    sha256: str
    md5: str = Field(description="hex MD5 of the image")
    format: str
    file_name: str
    url: str = Field(description="path of the artifact on this server (Range GETs, strong ETag = sha256)")


class CheckinOut(BaseModel):
    update: bool
    job: JobOut | None = None


class ReportIn(_In):
    release_id: int = Id
    state: ReportState
    reason: str = Field(default="", max_length=1000)


class ReportOut(BaseModel):
    attempt_id: int
    release_id: int
    state: str = Field(description="the attempt's state after this report")
    changed: bool = Field(description="false for a repeated or late report, which changes nothing")
    note: str


class Seed002Job(BaseModel):
    """The seed-002 (Infineon OTA agent) job document, with its field names."""

    Message: Literal["Update Available", "No Update Available"]
    Manufacturer: str
    ManufacturerId: str
    Product: str
    SerialNumber: str
    Version: str
    Board: str
    Connection: Literal["HTTP", "HTTPS"] | None = None
    Server: str | None = None
    Port: str | None = None
    File: str | None = None
    Size: int | None = None
    Sha256: str | None = None
    Md5: str | None = None
    Format: str | None = None


class Seed002ResultIn(BaseModel):
    model_config = ConfigDict(extra="allow")
    Message: Literal["Success", "Failure"]
    File: str | None = Field(default=None, max_length=256)
    Reason: str | None = Field(default=None, max_length=1000,
                               description='with "Failure": why; one that starts with "reverted" records '
                                           'that the bootloader went back to the old image')


class Seed002ResultOut(BaseModel):
    Message: Literal["Result Received"]
    State: str
