"""The agent's :class:`~mcuota.agent.transport.Transport` over the update service's own device API
(``/api/v1/device``), for devices that are not bound to the seed-002 wire formats.

The core speaks seed-002 job documents, so a check-in answer is turned into one (File = the job's
artifact URL, with Size, Sha256, Md5 and Format): the core checks board, version and hash the same way
whichever door the offer came through. Downloads are Range GETs of that URL, judged by
:class:`~mcuota.agent.transport.HttpTransport`.

Reports name the release by id, which the artifact URL carries (``/api/v1/device/artifacts/<id>``):
after a reboot a fresh transport still knows whom to tell from the file name the journal kept. A
report the server refuses as contradicting the attempt's end (409 ``conflicting_report``, e.g. a late
"failure" after "success") is final; retrying it cannot change the answer, so it is logged and dropped.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from typing import Any

from mcuota.agent.errors import AgentCode, AgentError
from mcuota.agent.transport import Fetched, HttpPort, HttpReply, HttpTransport, ReportKind
from mcuota.errors import McuotaError
from mcuota.image.version import ImageVersion
from mcuota.transport.seed002 import JobDocument, Message, build_job_document

log = logging.getLogger("mcuota.agent")

API = "/api/v1/device"
REPORT_STATE = {
    ReportKind.STAGED: "downloaded",
    ReportKind.UPDATED: "success",
    ReportKind.FAILED: "failure",
    ReportKind.REVERTED: "reverted",
}
_ARTIFACT = re.compile(r"/api/v1/device/artifacts/(\d+)(?:[?#].*)?$")


def release_id_of(file: str) -> int | None:
    match = _ARTIFACT.search(file)
    return int(match.group(1)) if match else None


class DeviceApiTransport:
    def __init__(self, port: HttpPort, *, serial: str, board: str,
                 running_version: Callable[[], ImageVersion]) -> None:
        self.port = port
        self.serial = serial
        self.board = board
        self.running_version = running_version
        self.last_release_id: int | None = None
        """The release of the last offer: whom to tell about a refused job document, which names no file."""
        self._ranges = HttpTransport(port)

    def get_job_document(self) -> bytes:
        running = self.running_version()
        body = json.dumps({"serial": self.serial, "board": self.board, "version": str(running)}).encode()
        reply = self.port.request("POST", f"{API}/checkin", {"Content-Type": "application/json"}, body)
        if reply.status != 200:
            raise AgentError(AgentCode.HTTP_STATUS, f"POST {API}/checkin answered {reply.status}"
                             f"{_error_text(reply)}")
        answer = _json(reply, "check-in answer")
        job = answer.get("job")
        if not answer.get("update") or not isinstance(job, dict):
            return build_job_document(JobDocument(Message.NO_UPDATE_AVAILABLE, board=self.board,
                                                  version=running, serial_number=self.serial))
        try:
            document = JobDocument(
                Message.UPDATE_AVAILABLE, board=str(job["board"]),
                version=ImageVersion.parse(str(job["version"])), serial_number=self.serial,
                product=str(job.get("product") or ""), file=str(job["url"]),
                size=int(job["size"]), sha256=str(job.get("sha256") or ""), md5=str(job.get("md5") or ""),
                image_format=str(job.get("format") or ""))
        except (KeyError, TypeError, ValueError, McuotaError) as exc:
            raise AgentError(AgentCode.MALFORMED_JOB_DOC, f"check-in job {_short(job)}: {exc}") from None
        self.last_release_id = release_id_of(document.file)
        return build_job_document(document)

    def fetch(self, file: str, offset: int, size: int) -> Fetched:
        return self._ranges.fetch(file, offset, size)

    def report(self, file: str, kind: ReportKind, reason: str) -> None:
        release_id = release_id_of(file) or self.last_release_id
        if release_id is None:
            log.info("device %s: %s report (%s) names no release; nothing to tell the server",
                     self.serial, kind.value, reason)
            return
        body = json.dumps({"release_id": release_id, "state": REPORT_STATE[kind], "reason": reason[:1000]})
        reply = self.port.request("POST", f"{API}/reports", {"Content-Type": "application/json"},
                                  body.encode())
        if reply.status == 409 and _error_code(reply) == "conflicting_report":
            log.info("device %s: the server keeps its record of release %d: %s", self.serial, release_id,
                     _error_text(reply).lstrip(": "))
            return
        if reply.status != 200:
            raise AgentError(AgentCode.HTTP_STATUS, f"POST {API}/reports answered {reply.status}"
                             f"{_error_text(reply)}")


def _json(reply: HttpReply, what: str) -> dict[str, Any]:
    try:
        value = json.loads(reply.body)
    except (ValueError, UnicodeDecodeError):
        value = None
    if not isinstance(value, dict):     # our API always answers an object: the bytes were damaged on the way
        raise AgentError(AgentCode.CONNECTION_LOST, f"{what} is not a JSON object (damaged in transit?): "
                         f"{reply.body[:80]!r}")
    return value


def _error_code(reply: HttpReply) -> str:
    try:
        value = json.loads(reply.body)
    except (ValueError, UnicodeDecodeError):
        return ""
    return str(value.get("error", "")) if isinstance(value, dict) else ""


def _error_text(reply: HttpReply) -> str:
    """The server's one-line reason, when it gave one (``{"error": code, "detail": text}``)."""
    try:
        value = json.loads(reply.body)
    except (ValueError, UnicodeDecodeError):
        return ""
    if not isinstance(value, dict) or "detail" not in value:
        return ""
    return f": {_short(value['detail'])}"


def _short(value: object) -> str:
    return " ".join(str(value).split())[:200]
