"""What the seed-002 publisher answers, decided without a broker: (topic, payload) in, messages out.

Kept apart from the paho adapter so the decisions (who gets which job document, which bytes, what is
recorded) are one testable function. The rules:

* The board is the one in the topic (``<company>/<board>/publish_notify``): the agent's request
  template hard-codes "BoardName", the topic comes from the device's build.
* "Update Availability" asks the catalog (:meth:`UpdateCatalog.offer_for`; version gating lives
  there) and answers the job document or "No Update Available"; the offer is remembered per unique
  topic, because Infineon's own subscriber echoes the *job document* back as its "Request Update" —
  with the offered version in place of the running one — so asking the catalog again would say "no".
* "Request Update" sends every 4096-byte chunk of the remembered (else newly asked) offer; "Request
  Data Chunk" sends the asked range; "Send Direct Update" sends the image to the direct topic.
* "Success"/"Failure" is recorded (:meth:`UpdateCatalog.record_report`) and acknowledged with
  "Result Received".
* Anything that does not parse, a unique topic that is one of the publisher's own notify topics, or
  a catalog that fails is logged and answered with nothing (or "No Update Available"); never raised.

The artifact is checked against the offer's size and SHA-256 before the first byte goes out, and the
chunks of the few most recent releases are kept, so a hundred devices cost one catalog read.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass, replace

from mcuota.image.version import ImageVersion
from mcuota.server.catalog import DeviceReport, Offer, UpdateCatalog
from mcuota.transport.seed002 import (
    CHUNK_SIZE,
    DEFAULT_COMPANY,
    Connection,
    DeviceInfo,
    DeviceRequest,
    DeviceResult,
    JobDocument,
    Message,
    Seed002Error,
    board_of_notify_topic,
    build_job_document,
    chunk_image,
    chunks_for_request,
    direct_topic,
    no_update_document,
    parse_device_message,
    result_received_document,
)

log = logging.getLogger("mcuota.server.mqtt")


@dataclass(frozen=True)
class Outgoing:
    """One message to publish (QoS 1)."""

    topic: str
    payload: bytes


@dataclass(frozen=True)
class JobLocation:
    """Where the job document sends devices for the image. The defaults ("MQTT", Broker "", Port "")
    mean "this broker, the connection you already have", which is what the agent assumes for empty
    values and what survives NAT and TLS front ends."""

    connection: Connection = Connection.MQTT
    host: str = ""
    port: int | None = None
    file_template: str = "/{file_name}"   # for HTTP(S): the path the HTTP server serves the release at

    def file_for(self, offer: Offer) -> str:
        return self.file_template.format(file_name=offer.file_name, release_id=offer.release_id)


def job_document_for(offer: Offer, location: JobLocation, *, device: DeviceInfo | None = None,
                     unique_topic: str = "") -> JobDocument:
    """The "Update Available" job document for ``offer`` — what the MQTT publisher sends and what the
    seed-002 HTTP flow serves as ``/ota_update.json`` (with an HTTP(S) ``location``)."""
    device = device or DeviceInfo()
    return JobDocument(
        message=Message.UPDATE_AVAILABLE, board=offer.board, version=offer.version,
        serial_number=device.serial_number, manufacturer=offer.manufacturer or device.manufacturer,
        manufacturer_id=offer.manufacturer_id or device.manufacturer_id,
        product=offer.product or device.product, connection=location.connection, host=location.host,
        port=location.port,
        file=offer.file_name if location.connection is Connection.MQTT else location.file_for(offer),
        unique_topic=unique_topic)


@dataclass
class _Session:
    serial: str
    board: str
    device: DeviceInfo
    offer: Offer
    job: JobDocument


@dataclass
class HandlerStats:
    received: int = 0
    ignored: int = 0
    job_documents: int = 0
    no_update: int = 0
    chunks: int = 0
    results: int = 0


class _ReleaseCache:
    """The bytes and the full chunk list of the most recently served releases, checked once."""

    def __init__(self, catalog: UpdateCatalog, capacity: int) -> None:
        self._catalog = catalog
        self._capacity = capacity
        self._entries: OrderedDict[str, tuple[bytes, list[bytes]]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, offer: Offer) -> tuple[bytes, list[bytes]]:
        with self._lock:
            if offer.release_id in self._entries:
                self._entries.move_to_end(offer.release_id)
                return self._entries[offer.release_id]
        data = bytes(self._catalog.artifact(offer.release_id))
        digest = hashlib.sha256(data).hexdigest()
        if len(data) != offer.size or (offer.sha256 and digest != offer.sha256.lower()):
            raise ValueError(f"artifact of release {offer.release_id} does not match its size/SHA-256")
        entry = (data, chunk_image(data, offer.version))
        with self._lock:
            self._entries[offer.release_id] = entry
            while len(self._entries) > self._capacity:
                self._entries.popitem(last=False)
        return entry


class Seed002Handler:
    """The publisher's decisions; thread-safe; never raises for anything a device sends."""

    def __init__(self, catalog: UpdateCatalog, *, company: str = DEFAULT_COMPANY,
                 location: JobLocation | None = None, max_sessions: int = 10_000,
                 cached_releases: int = 8) -> None:
        self.catalog = catalog
        self.company = company
        self.location = location or JobLocation()
        self.stats = HandlerStats()
        self._sessions: OrderedDict[str, _Session] = OrderedDict()
        self._max_sessions = max_sessions
        self._cache = _ReleaseCache(catalog, cached_releases)
        self._lock = threading.Lock()

    def handle(self, topic: str, payload: bytes) -> list[Outgoing]:
        self.stats.received += 1
        board = board_of_notify_topic(topic, self.company)
        if board is None:
            return self._ignore(topic, payload, "not a publish_notify topic of this company")
        try:
            message = parse_device_message(payload)
        except Seed002Error as exc:
            return self._ignore(topic, payload, str(exc))
        unique = message.unique_topic
        if unique and board_of_notify_topic(unique, self.company) is not None:
            return self._ignore(topic, payload, f"unique topic {unique!r} is a publisher topic")
        try:
            if isinstance(message, DeviceResult):
                return self._result(message)
            if message.message is Message.UPDATE_AVAILABILITY:
                return self._availability(board, message)
            return self._download(board, message)
        except Exception:  # a catalog or storage failure must not take the publisher down
            log.exception("seed002: failed to handle %s from %s", message, topic)
            return []

    # ---------------------------------------------------------------------------------------- requests

    def _availability(self, board: str, request: DeviceRequest) -> list[Outgoing]:
        device = request.device
        offer = self._offer(device.serial_number, board, device.version)
        if offer is None:
            self.stats.no_update += 1
            return [Outgoing(request.unique_topic, build_job_document(no_update_document(request)))]
        job = job_document_for(offer, self.location, device=device, unique_topic=request.unique_topic)
        with self._lock:
            self._sessions[request.unique_topic] = _Session(device.serial_number, board, device, offer, job)
            self._sessions.move_to_end(request.unique_topic)
            while len(self._sessions) > self._max_sessions:
                self._sessions.popitem(last=False)
        self.stats.job_documents += 1
        log.info("seed002: offering %s %s to %s on %s", offer.board, offer.version,
                 device.serial_number or "?", request.unique_topic)
        return [Outgoing(request.unique_topic, build_job_document(job))]

    def _download(self, board: str, request: DeviceRequest) -> list[Outgoing]:
        device = request.device
        with self._lock:
            session = self._sessions.get(request.unique_topic) if request.unique_topic else None
        if session is not None and session.board == board and device.serial_number in ("", session.serial):
            offer: Offer | None = session.offer
            serial = session.serial
        else:
            offer = self._offer(device.serial_number, board, device.version)
            serial = device.serial_number
        direct = request.message is Message.SEND_DIRECT_UPDATE
        target = direct_topic(self.company, board) if direct else request.unique_topic
        if offer is None:
            if direct:
                log.info("seed002: no direct update for %s on %s", serial or "?", board)
                return []
            self.stats.no_update += 1
            return [Outgoing(target, build_job_document(no_update_document(request)))]
        data, all_chunks = self._cache.get(offer)
        if request.message is Message.REQUEST_DATA_CHUNK:
            try:
                aligned = request.size == CHUNK_SIZE and request.offset % CHUNK_SIZE == 0
                index = request.offset // CHUNK_SIZE
                chunks = (all_chunks[index:index + 1] if aligned and request.offset < len(data)
                          else chunks_for_request(data, offer.version, request.offset, request.size))
            except Seed002Error as exc:
                return self._ignore(target, b"", f"chunk request from {serial or '?'}: {exc}")
            first = request.offset == 0
        else:
            chunks, first = all_chunks, True
        if first and serial:
            self._report(DeviceReport(serial, offer.release_id, "downloading"))
        self.stats.chunks += len(chunks)
        return [Outgoing(target, chunk) for chunk in chunks]

    def _result(self, result: DeviceResult) -> list[Outgoing]:
        with self._lock:
            session = self._sessions.pop(result.unique_topic, None)
        serial = session.serial if session is not None and session.serial else result.serial_number
        state = "success" if result.success else "failure"
        if serial:
            self._report(DeviceReport(serial, session.offer.release_id if session else None, state))
        else:
            log.warning("seed002: %s result on %s from an unknown device; not recorded",
                        state, result.unique_topic)
        self.stats.results += 1
        ack = (replace(session.job, message=Message.RESULT_RECEIVED) if session is not None
               else result_received_document(result.unique_topic))
        return [Outgoing(result.unique_topic, build_job_document(ack))]

    # ----------------------------------------------------------------------------------------- helpers

    def _offer(self, serial: str, board: str, running: ImageVersion) -> Offer | None:
        try:
            offer = self.catalog.offer_for(serial, board, running)
        except Exception:
            log.exception("seed002: catalog failed to answer for %s on %s", serial or "?", board)
            return None
        if offer is not None and offer.board != board:
            log.error("seed002: catalog offered a %s release to a %s device; withheld", offer.board, board)
            return None
        return offer

    def _report(self, report: DeviceReport) -> None:
        try:
            self.catalog.record_report(report)
        except Exception:
            log.exception("seed002: could not record %s", report)

    def _ignore(self, topic: str, payload: bytes, why: str) -> list[Outgoing]:
        self.stats.ignored += 1
        log.warning("seed002: ignored message on %s (%s): %r", topic, why, payload[:120])
        return []
