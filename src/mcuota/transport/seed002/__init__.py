"""Seed 002, Infineon's anycloud-ota / ota-update protocol, byte for byte; pure: bytes in, values out.

Shared by the update service's MQTT publisher (``mcuota.server.mqtt``), the seed-002 HTTP routes and
the device agent, so that both ends of every exchange are the same code::

    device                                              publisher (on <company>/<board>/publish_notify)
    build_device_request(UPDATE_AVAILABILITY)   ──▶     parse_device_message
    parse_job_document + check_job              ◀──     build_job_document (or no_update_document)
    build_device_request(REQUEST_UPDATE | REQUEST_DATA_CHUNK)  ──▶
    Reassembler.feed(chunk) …                   ◀──     chunk_image / chunks_for_request
    build_device_result(success)                ──▶     parse_device_message → DeviceResult
    parse_job_document → "Result Received"      ◀──     build_job_document(result_received_document)

Refusals are :class:`Seed002Error` (a ``FormatError``) carrying an :class:`OtaError` code named as the
agent names it: MALFORMED_JOB_DOC, NOT_A_JOB_DOC, WRONG_BOARD, INVALID_VERSION, NOT_A_HEADER, and the
chunk codes BAD_CHUNK_SIZE / BAD_CHUNK_OFFSET / BAD_CHUNK_INDEX / CHUNK_MISMATCH / TOO_LARGE / INCOMPLETE.
"""

from mcuota.transport.seed002.chunks import (
    CHUNK_SIZE,
    HEADER_SIZE,
    MAGIC,
    Chunk,
    ChunkHeader,
    chunk_image,
    chunks_for_request,
    is_chunk,
    pack_chunk,
    payload_count,
    unpack_chunk,
)
from mcuota.transport.seed002.fields import format_seed_version, parse_seed_version
from mcuota.transport.seed002.messages import (
    Connection,
    DeviceInfo,
    DeviceRequest,
    DeviceResult,
    HttpResult,
    JobDocument,
    Message,
    build_device_request,
    build_device_result,
    build_http_result,
    build_job_document,
    check_job,
    no_update_document,
    parse_device_message,
    parse_http_result,
    parse_job_document,
    result_received_document,
)
from mcuota.transport.seed002.reassembly import ChunkOutcome, Reassembler
from mcuota.transport.seed002.results import OtaError, Seed002Error
from mcuota.transport.seed002.topics import (
    DEFAULT_COMPANY,
    KEEPALIVE_SECONDS,
    QOS,
    board_of_notify_topic,
    check_topic_name,
    direct_topic,
    notify_filter,
    notify_topic,
    unique_topic,
)

__all__ = [
    "CHUNK_SIZE",
    "DEFAULT_COMPANY",
    "HEADER_SIZE",
    "KEEPALIVE_SECONDS",
    "MAGIC",
    "QOS",
    "Chunk",
    "ChunkHeader",
    "ChunkOutcome",
    "Connection",
    "DeviceInfo",
    "DeviceRequest",
    "DeviceResult",
    "HttpResult",
    "JobDocument",
    "Message",
    "OtaError",
    "Reassembler",
    "Seed002Error",
    "board_of_notify_topic",
    "build_device_request",
    "build_device_result",
    "build_http_result",
    "build_job_document",
    "check_job",
    "check_topic_name",
    "chunk_image",
    "chunks_for_request",
    "direct_topic",
    "format_seed_version",
    "is_chunk",
    "no_update_document",
    "notify_filter",
    "notify_topic",
    "pack_chunk",
    "parse_device_message",
    "parse_http_result",
    "parse_job_document",
    "parse_seed_version",
    "payload_count",
    "result_received_document",
    "unique_topic",
    "unpack_chunk",
]
