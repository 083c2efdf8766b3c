"""In-memory stand-ins for the network the agent talks to: an HTTP server and an MQTT publisher that
serve a real image from bytes, with faults a flaky network or a broken server produces, and a clock
that only records how long the agent asked to wait.

They are the network, not a mock of the agent's modules: answers are built with the same seed-002
code the update service uses (:func:`~mcuota.transport.seed002.chunks_for_request`), and a fault
changes bytes on the wire, never the agent's decisions.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from mcuota.agent.errors import AgentCode, AgentError
from mcuota.agent.transport import HttpReply
from mcuota.image.version import ImageVersion
from mcuota.transport.seed002 import (
    Message,
    build_job_document,
    chunks_for_request,
    no_update_document,
    parse_device_message,
)
from mcuota.transport.seed002.messages import DeviceRequest, DeviceResult, JobDocument


class Fault(StrEnum):
    DROP = "drop"                  # the connection dies before an answer
    WHOLE_FILE = "whole-file"      # HTTP: 200 and the whole file instead of 206
    TRUNCATE = "truncate"          # the body / chunk data stops half-way
    BAD_RANGE = "bad-range"        # HTTP: Content-Range for other bytes
    BAD_MAGIC = "bad-magic"        # MQTT: chunk magic corrupted
    BAD_OFFSET = "bad-offset"      # MQTT: chunk image_offset past total_size
    BAD_SIZE = "bad-size"          # MQTT: chunk data_size disagrees with the payload
    BAD_INDEX = "bad-index"        # MQTT: this_payload_index wrong


@dataclass
class FaultRule:
    """Apply ``fault`` to data requests number ``after`` + 1 .. ``after`` + ``times`` (0-based count)."""

    fault: Fault
    after: int = 0
    times: int = 1_000_000


@dataclass
class Network:
    """What both servers share: the files, the job document, the faults and the counters a test reads."""

    files: dict[str, bytes] = field(default_factory=dict)
    job: bytes | None = None
    rules: list[FaultRule] = field(default_factory=list)
    data_requests: int = 0
    bytes_served: int = 0
    results: list[dict[str, str]] = field(default_factory=list)

    def fault_now(self) -> Fault | None:
        index = self.data_requests
        self.data_requests += 1
        for rule in self.rules:
            if rule.after <= index < rule.after + rule.times:
                return rule.fault
        return None


class MemoryHttpServer:
    """An :class:`~mcuota.agent.transport.HttpPort` serving ``network``'s files with range support."""

    def __init__(self, network: Network, *, job_path: str = "/ota_update.json") -> None:
        self.network = network
        self.job_path = job_path

    def request(self, method: str, path: str, headers: Mapping[str, str], body: bytes = b"") -> HttpReply:
        net = self.network
        if method == "POST" and (path == self.job_path or path in net.files):
            net.results.append(json.loads(body))
            return HttpReply(200, {}, b"")
        if method == "GET" and path == self.job_path:
            if net.job is None:
                return HttpReply(404, {}, b"")
            return HttpReply(200, {"Content-Type": "application/json"}, net.job)
        data = net.files.get(path)
        if data is None:
            return HttpReply(404, {}, b"")
        fault = net.fault_now()
        if fault is Fault.DROP:
            raise AgentError(AgentCode.CONNECTION_LOST, f"connection reset during GET {path}")
        if fault is Fault.WHOLE_FILE:
            net.bytes_served += len(data)
            return HttpReply(200, {"Content-Length": str(len(data))}, data)
        wanted = {k.lower(): v for k, v in headers.items()}.get("range", "")
        first_text, _, last_text = wanted.removeprefix("bytes=").partition("-")
        first, last = int(first_text), min(int(last_text), len(data) - 1)
        if first >= len(data):
            return HttpReply(416, {"Content-Range": f"bytes */{len(data)}"}, b"")
        piece = data[first:last + 1]
        shown = (first, last)
        if fault is Fault.TRUNCATE:
            piece = piece[:len(piece) // 2]
        elif fault is Fault.BAD_RANGE:
            shown = (first + 1, last)
        net.bytes_served += len(piece)
        return HttpReply(206, {"Content-Range": f"bytes {shown[0]}-{shown[1]}/{len(data)}"}, piece)


class MemoryPublisher:
    """A :class:`~mcuota.agent.transport.ChunkPort`: the seed-002 publisher answering on the device's
    unique topic, with the job document of ``network`` (None: "No Update Available")."""

    def __init__(self, network: Network, version: ImageVersion) -> None:
        self.network = network
        self.version = version

    def publish(self, payload: bytes) -> list[bytes]:
        net = self.network
        message = parse_device_message(payload)
        if isinstance(message, DeviceResult):
            net.results.append({"Message": "Success" if message.success else "Failure"})
            return [build_job_document(JobDocument(Message.RESULT_RECEIVED,
                                                   unique_topic=message.unique_topic))]
        if message.message is Message.UPDATE_AVAILABILITY:
            return [net.job if net.job is not None else build_job_document(no_update_document(message))]
        return self._chunks(message)

    def _chunks(self, request: DeviceRequest) -> list[bytes]:
        net = self.network
        data = net.files[request.filename]
        fault = net.fault_now()
        if fault is Fault.DROP:
            raise AgentError(AgentCode.CONNECTION_LOST, "broker connection lost")
        chunks = chunks_for_request(data, self.version, request.offset, request.size)
        out = []
        for raw in chunks:
            chunk = bytearray(raw)
            if fault is Fault.BAD_MAGIC:
                chunk[0:8] = b"OTAImagX"
            elif fault is Fault.BAD_OFFSET:
                chunk[22:26] = (len(data) + 1).to_bytes(4, "little")
            elif fault is Fault.BAD_SIZE:
                chunk[26:28] = (int.from_bytes(chunk[26:28], "little") + 1).to_bytes(2, "little")
            elif fault is Fault.BAD_INDEX:
                chunk[30:32] = (int.from_bytes(chunk[30:32], "little") + 1).to_bytes(2, "little")
            elif fault is Fault.TRUNCATE:
                size = int.from_bytes(chunk[26:28], "little") // 2 or 1
                chunk[26:28] = size.to_bytes(2, "little")
                del chunk[32 + size:]
            net.bytes_served += len(chunk) - 32
            out.append(bytes(chunk))
        return out


@dataclass
class RecordingClock:
    """A :class:`~mcuota.agent.core.Clock` that never sleeps: it adds up what it was asked to wait."""

    now: float = 0.0
    sleeps: list[float] = field(default_factory=list)

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
