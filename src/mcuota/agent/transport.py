"""The agent's one network port, :class:`Transport`, and its two adapters over smaller ports.

The core asks for three things only: the job document, ``size`` bytes of a file from ``offset``, and
to report a result. :class:`HttpTransport` turns those into seed-002 HTTP (``GET /ota_update.json``,
``Range: bytes=a-b`` answered by 206 + ``Content-Range``, ``POST <File>`` with the result) over an
:class:`HttpPort`; :class:`MqttTransport` into seed-002 MQTT (``Update Availability``, ``Request Data
Chunk`` answered by 32-byte-header chunks, ``Success``/``Failure``) over a :class:`ChunkPort`. Each
checks every answer and raises an :class:`~mcuota.agent.errors.AgentError` naming what was wrong;
the ports (sockets, a broker client, or :mod:`mcuota.agent.memory`) only move bytes and raise
``CONNECTION_LOST`` when the link drops.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from mcuota.agent.errors import AgentCode, AgentError
from mcuota.transport.seed002 import (
    DeviceInfo,
    DeviceRequest,
    DeviceResult,
    HttpResult,
    Message,
    Seed002Error,
    build_device_request,
    build_device_result,
    build_http_result,
    is_chunk,
    unpack_chunk,
)


class ReportKind(StrEnum):
    """What the agent tells the server, and when.

    The seed protocols have one result message, Success or Failure, sent when the download ends; an
    update service that wants to know what runs needs the end of the install too. Each transport maps
    these onto what its protocol can say."""

    STAGED = "staged"        # downloaded, verified, installation requested (the seed's "Success")
    UPDATED = "updated"      # after the reset: the new image passed its self-test and is confirmed
    FAILED = "failed"        # refused or abandoned, the running firmware untouched
    REVERTED = "reverted"    # after the reset: the bootloader went back to the previous image


@dataclass(frozen=True)
class Fetched:
    data: bytes
    total: int
    """The whole file's size, as the server announced it (Content-Range total, chunk total_size)."""


class Transport(Protocol):
    def get_job_document(self) -> bytes: ...

    def fetch(self, file: str, offset: int, size: int) -> Fetched: ...

    def report(self, file: str, kind: ReportKind, reason: str) -> None: ...


# ---------------------------------------------------------------------------------------------------- HTTP


@dataclass(frozen=True)
class HttpReply:
    status: int
    headers: Mapping[str, str]
    body: bytes

    def header(self, name: str) -> str | None:
        for key, value in self.headers.items():
            if key.lower() == name.lower():
                return value
        return None


class HttpPort(Protocol):
    def request(self, method: str, path: str, headers: Mapping[str, str], body: bytes = b"") -> HttpReply:
        """One exchange; raises ``AgentError(CONNECTION_LOST)`` when the connection drops."""
        ...


_CONTENT_RANGE = re.compile(r"^\s*bytes\s+(\d+)-(\d+)/(\d+)\s*$", re.IGNORECASE)


class HttpTransport:
    def __init__(self, port: HttpPort, *, job_path: str = "/ota_update.json") -> None:
        self.port = port
        self.job_path = job_path

    def get_job_document(self) -> bytes:
        reply = self.port.request("GET", self.job_path, {})
        if reply.status != 200:
            raise AgentError(AgentCode.HTTP_STATUS, f"GET {self.job_path} answered {reply.status}")
        return reply.body

    def fetch(self, file: str, offset: int, size: int) -> Fetched:
        last = offset + size - 1
        reply = self.port.request("GET", file, {"Range": f"bytes={offset}-{last}"})
        if reply.status == 200:
            raise AgentError(AgentCode.NOT_PARTIAL,
                             f"GET {file} bytes={offset}-{last} answered 200 (whole file), not 206")
        if reply.status != 206:
            raise AgentError(AgentCode.HTTP_STATUS,
                             f"GET {file} bytes={offset}-{last} answered {reply.status}")
        text = reply.header("Content-Range") or ""
        match = _CONTENT_RANGE.match(text)
        if match is None:
            raise AgentError(AgentCode.BAD_CONTENT_RANGE, f"206 with Content-Range {text!r}")
        first, end, total = (int(g) for g in match.groups())
        if first != offset or end < first or end != min(last, total - 1):
            raise AgentError(AgentCode.BAD_CONTENT_RANGE,
                             f"asked for bytes {offset}-{last}, Content-Range says {text.strip()!r}")
        want = end - first + 1
        if len(reply.body) < want:
            raise AgentError(AgentCode.TRUNCATED, f"body of {len(reply.body)} bytes for a range of {want}")
        if len(reply.body) > want:
            raise AgentError(AgentCode.BAD_CONTENT_RANGE, f"body of {len(reply.body)} bytes for a range "
                             f"of {want}")
        return Fetched(reply.body, total)

    def report(self, file: str, kind: ReportKind, reason: str) -> None:
        """Seed-002 POSTs Success when the download ends; a revert after the reset is a Failure whose
        "Reason" (mcuota's addition) starts with "reverted", which the update service records as such."""
        success = kind in (ReportKind.STAGED, ReportKind.UPDATED)
        doc = json.loads(build_http_result(HttpResult(success, file)))
        doc["Reason"] = reason
        target = file or self.job_path      # a refused job document names no file: answer its URL
        reply = self.port.request("POST", target, {"Content-Type": "application/json"},
                                  json.dumps(doc).encode())
        if reply.status >= 300:
            raise AgentError(AgentCode.HTTP_STATUS, f"POST {target} answered {reply.status}")


# ---------------------------------------------------------------------------------------------------- MQTT


class ChunkPort(Protocol):
    def publish(self, payload: bytes) -> list[bytes]:
        """Publish on ``<company>/<board>/publish_notify``; what arrived on the unique topic in answer
        (before the packet interval ran out). ``AgentError(CONNECTION_LOST)`` when the link drops."""
        ...


class MqttTransport:
    def __init__(self, port: ChunkPort, device: DeviceInfo, unique_topic: str) -> None:
        self.port = port
        self.device = device
        self.unique_topic = unique_topic

    def get_job_document(self) -> bytes:
        replies = self.port.publish(build_device_request(
            DeviceRequest(Message.UPDATE_AVAILABILITY, self.device, self.unique_topic)))
        docs = [r for r in replies if not is_chunk(r)]
        if not docs:
            raise AgentError(AgentCode.CONNECTION_LOST, "no job document arrived on the unique topic")
        return docs[0]

    def fetch(self, file: str, offset: int, size: int) -> Fetched:
        replies = self.port.publish(build_device_request(DeviceRequest(
            Message.REQUEST_DATA_CHUNK, self.device, self.unique_topic, filename=file, offset=offset,
            size=size)))
        if not replies:
            raise AgentError(AgentCode.CONNECTION_LOST, f"no chunk arrived for offset {offset}")
        data = bytearray()
        total: int | None = None
        for payload in replies:
            try:
                chunk = unpack_chunk(payload)
            except Seed002Error as exc:
                raise AgentError(AgentCode(exc.code.value), exc.detail) from None
            header = chunk.header
            if total is not None and header.total_size != total:
                raise AgentError(AgentCode.CHUNK_MISMATCH, f"total_size {header.total_size} after {total}")
            total = header.total_size
            if header.image_offset != offset + len(data):
                raise AgentError(AgentCode.BAD_CHUNK_OFFSET, f"chunk at image_offset {header.image_offset}, "
                                 f"expected {offset + len(data)}")
            data += chunk.data
        assert total is not None
        want = min(size, total - offset)
        if len(data) < want:
            raise AgentError(AgentCode.TRUNCATED, f"chunks brought {len(data)} of {want} bytes")
        return Fetched(bytes(data[:want]), total)

    def report(self, file: str, kind: ReportKind, reason: str) -> None:
        success = kind in (ReportKind.STAGED, ReportKind.UPDATED)
        self.port.publish(build_device_result(DeviceResult(success, self.unique_topic,
                                                           serial_number=self.device.serial_number)))
