"""The JSON documents of seed 002 (Infineon anycloud-ota / ota-update), both directions, as values.

Device → publisher, all published on ``<company>/<board>/publish_notify``::

    {"Message": "Update Availability" | "Request Update" | "Request Data Chunk" | "Send Direct Update",
     "Manufacturer", "ManufacturerID", "ProductID", "SerialNumber", "BoardName", "Version": "M.m.b",
     "UniqueTopicName"}  (+ "Filename", "Offset", "Size" as decimal strings for a chunk request)
    {"Message": "Success" | "Failure", "UniqueTopicName"}           the download result

Publisher → device, on the device's unique topic: the job document ::

    {"Message": "Update Available" | "No Update Available" | "Result Received", "Manufacturer",
     "ManufacturerId", "Product", "SerialNumber", "Board", "Version", "Connection": "MQTT" | "HTTP" |
     "HTTPS", "Broker" | "Server", "Port", "File", "UniqueTopicName"}

The same job document is what an HTTP server returns for ``GET /ota_update.json``; the HTTP result is
``{"Message": "Success" | "Failure", "File"}`` POSTed back. Field names are matched without regard to
case and Infineon's scripts echo a job document back as a request, so the parsers accept the job
document's spellings (``Board``, ``Product``) for the request's (``BoardName``, ``ProductID``).

Builders write fields in the order of the agent's templates; every value is a string, as on the wire.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from mcuota.errors import UsageError
from mcuota.image.version import ImageVersion
from mcuota.transport.seed002.fields import (
    Fields,
    decode_document,
    encode_document,
    format_seed_version,
    parse_seed_version,
)
from mcuota.transport.seed002.results import OtaError, Seed002Error
from mcuota.transport.seed002.topics import check_topic_name


class Message(StrEnum):
    """Every value the "Message" field takes in seed 002."""

    UPDATE_AVAILABILITY = "Update Availability"
    REQUEST_UPDATE = "Request Update"
    REQUEST_DATA_CHUNK = "Request Data Chunk"
    SEND_DIRECT_UPDATE = "Send Direct Update"
    SUCCESS = "Success"
    FAILURE = "Failure"
    UPDATE_AVAILABLE = "Update Available"
    NO_UPDATE_AVAILABLE = "No Update Available"
    RESULT_RECEIVED = "Result Received"


REQUEST_MESSAGES = frozenset({Message.UPDATE_AVAILABILITY, Message.REQUEST_UPDATE, Message.REQUEST_DATA_CHUNK,
                              Message.SEND_DIRECT_UPDATE})
RESULT_MESSAGES = frozenset({Message.SUCCESS, Message.FAILURE})
JOB_MESSAGES = frozenset({Message.UPDATE_AVAILABLE, Message.NO_UPDATE_AVAILABLE, Message.RESULT_RECEIVED})


class Connection(StrEnum):
    """Where a job document sends the device for the image."""

    MQTT = "MQTT"
    HTTP = "HTTP"
    HTTPS = "HTTPS"


@dataclass(frozen=True)
class DeviceInfo:
    """What a device says about itself in every request (and a job document echoes back)."""

    serial_number: str = ""
    board: str = ""
    version: ImageVersion = field(default_factory=ImageVersion)
    manufacturer: str = ""
    manufacturer_id: str = ""
    product: str = ""


@dataclass(frozen=True)
class DeviceRequest:
    """A device asking the publisher something: is there an update, send it, send this part of it."""

    message: Message
    device: DeviceInfo
    unique_topic: str = ""
    filename: str = ""
    offset: int = 0
    size: int = 0


@dataclass(frozen=True)
class DeviceResult:
    """A device reporting how the download ended."""

    success: bool
    unique_topic: str
    serial_number: str = ""


@dataclass(frozen=True)
class JobDocument:
    """The publisher's (or HTTP server's) answer: an update and where to get it, none, or "result noted"."""

    message: Message = Message.UPDATE_AVAILABLE
    board: str = ""
    version: ImageVersion | None = None
    serial_number: str = ""
    manufacturer: str = ""
    manufacturer_id: str = ""
    product: str = ""
    connection: Connection | None = None
    host: str = ""              # "Broker" for MQTT, "Server" for HTTP/HTTPS; "" = the one already in use
    port: int | None = None     # None = the one already in use
    file: str = ""
    unique_topic: str = ""
    # mcuota's additions, which Infineon's agent ignores: what the file must be before it is requested
    size: int | None = None
    sha256: str = ""
    md5: str = ""
    image_format: str = ""


@dataclass(frozen=True)
class HttpResult:
    """The HTTP flow's result, POSTed to the image's path."""

    success: bool
    file: str


# ---------------------------------------------------------------------------------------------- device side


def build_device_request(request: DeviceRequest) -> bytes:
    """A request as the agent's templates spell it (``CY_OTA_SUBSCRIBE_UPDATES_AVAIL`` and friends)."""
    if request.message not in REQUEST_MESSAGES:
        raise UsageError(f'"{request.message}" is not a device request')
    device = request.device
    fields = {
        "Message": request.message.value,
        "Manufacturer": device.manufacturer,
        "ManufacturerID": device.manufacturer_id,
        "ProductID": device.product,
        "SerialNumber": device.serial_number,
        "BoardName": device.board,
        "Version": format_seed_version(device.version),
    }
    if request.message is not Message.SEND_DIRECT_UPDATE or request.unique_topic:
        fields["UniqueTopicName"] = check_topic_name(request.unique_topic)
    if request.message is Message.REQUEST_DATA_CHUNK:
        if request.size <= 0 or request.offset < 0:
            raise UsageError(f"chunk request needs offset >= 0 and size > 0, "
                             f"not {request.offset}, {request.size}")
        fields |= {"Filename": request.filename, "Offset": str(request.offset), "Size": str(request.size)}
    return encode_document(fields)


def build_device_result(result: DeviceResult) -> bytes:
    """``CY_OTA_MQTT_RESULT_JSON``: the message and the unique topic, nothing else."""
    return encode_document({"Message": (Message.SUCCESS if result.success else Message.FAILURE).value,
                            "UniqueTopicName": check_topic_name(result.unique_topic)})


def parse_device_message(payload: bytes | str) -> DeviceRequest | DeviceResult:
    """What the publisher receives on ``publish_notify``. A job document (the publisher's own kind of
    message) or an unknown "Message" is ``NOT_A_JOB_DOC``; anything malformed is ``MALFORMED_JOB_DOC``."""
    doc = decode_document(payload)
    message = _message(doc)
    if message in RESULT_MESSAGES:
        return DeviceResult(success=message is Message.SUCCESS,
                            unique_topic=check_topic_name(doc.text("UniqueTopicName", required=True)),
                            serial_number=doc.text("SerialNumber"))
    if message not in REQUEST_MESSAGES:
        raise Seed002Error(OtaError.NOT_A_JOB_DOC, f'"{message}" is not a device request or result')
    device = _device_info(doc, require_version=True)
    unique = doc.text("UniqueTopicName", required=message is not Message.SEND_DIRECT_UPDATE)
    if unique or message is not Message.SEND_DIRECT_UPDATE:
        unique = check_topic_name(unique)
    if message is not Message.REQUEST_DATA_CHUNK:
        return DeviceRequest(message=message, device=device, unique_topic=unique)
    offset = doc.unsigned("Offset", required=True)
    size = doc.unsigned("Size", required=True)
    if offset is None or not size:
        raise Seed002Error(OtaError.MALFORMED_JOB_DOC, 'field "Size" must be > 0')
    return DeviceRequest(message=message, device=device, unique_topic=unique,
                         filename=doc.text("Filename", "File"), offset=offset, size=size)


# -------------------------------------------------------------------------------------------- job documents


def build_job_document(job: JobDocument) -> bytes:
    """A job document in the field order of Infineon's ``ota_update.json``."""
    if job.message not in JOB_MESSAGES:
        raise UsageError(f'"{job.message}" is not a job document message')
    if job.message is Message.UPDATE_AVAILABLE and (job.version is None or not job.board):
        raise UsageError('an "Update Available" job document needs a board and a version')
    fields = {
        "Message": job.message.value,
        "Manufacturer": job.manufacturer,
        "ManufacturerId": job.manufacturer_id,
        "Product": job.product,
        "SerialNumber": job.serial_number,
        "Board": job.board,
    }
    if job.version is not None:
        fields["Version"] = format_seed_version(job.version)
    if job.connection is not None:
        fields["Connection"] = job.connection.value
        fields["Broker" if job.connection is Connection.MQTT else "Server"] = job.host
        fields["Port"] = "" if job.port is None else str(job.port)
    if job.file or job.connection in (Connection.HTTP, Connection.HTTPS):
        fields["File"] = job.file
    if job.unique_topic:
        fields["UniqueTopicName"] = check_topic_name(job.unique_topic)
    if job.size is not None:
        fields["Size"] = str(job.size)
    for name, value in (("Sha256", job.sha256), ("Md5", job.md5), ("Format", job.image_format)):
        if value:
            fields[name] = value
    return encode_document(fields)


def parse_job_document(payload: bytes | str) -> JobDocument:
    """What the device receives on its unique topic (or from ``GET /ota_update.json``). Checks form only;
    :func:`check_job` decides whether *this* device may take it."""
    doc = decode_document(payload)
    message = _message(doc)
    if message not in JOB_MESSAGES:
        raise Seed002Error(OtaError.NOT_A_JOB_DOC, f'"{message}" is not a job document')
    version_text = doc.text("Version", required=message is Message.UPDATE_AVAILABLE)
    connection = None
    connection_text = doc.text("Connection")
    if connection_text:
        try:
            connection = Connection(connection_text.upper())
        except ValueError:
            raise Seed002Error(OtaError.MALFORMED_JOB_DOC,
                               f'field "Connection" must be MQTT, HTTP or HTTPS, '
                               f'not {connection_text!r}') from None
    port = doc.unsigned("Port", limit=0xFFFF)
    unique = doc.text("UniqueTopicName")
    digests = {name: doc.text(name).lower() for name, length in _DIGESTS.items()}
    for name, length in _DIGESTS.items():
        if digests[name] and not _is_hex(digests[name], length):
            raise Seed002Error(OtaError.MALFORMED_JOB_DOC,
                               f'field "{name}" must be {length} hex digits, not {digests[name][:80]!r}')
    return JobDocument(
        message=message,
        board=doc.text("Board", "BoardName"),
        version=parse_seed_version(version_text) if version_text else None,
        serial_number=doc.text("SerialNumber"),
        manufacturer=doc.text("Manufacturer"),
        manufacturer_id=doc.text("ManufacturerId"),
        product=doc.text("Product", "ProductID"),
        connection=connection,
        host=doc.text("Broker", "Server"),
        port=port if port else None,      # the agent reads "" and "0" as "keep the current port"
        file=doc.text("File", "FileName"),
        unique_topic=check_topic_name(unique) if unique else "",
        size=doc.unsigned("Size"),
        sha256=digests["Sha256"],
        md5=digests["Md5"],
        image_format=doc.text("Format"),
    )


_DIGESTS = {"Sha256": 64, "Md5": 32}


def _is_hex(text: str, length: int) -> bool:
    return len(text) == length and all(c in "0123456789abcdef" for c in text)


def check_job(job: JobDocument, *, board: str, running_version: ImageVersion) -> None:
    """The agent's acceptance test, in its order: the version must be newer (``INVALID_VERSION``), then the
    board must match exactly (``WRONG_BOARD``)."""
    if job.message is not Message.UPDATE_AVAILABLE:
        raise Seed002Error(OtaError.NOT_A_JOB_DOC, f'"{job.message}" offers no update')
    if job.version is None or not job.version.newer_than(running_version):
        raise Seed002Error(OtaError.INVALID_VERSION,
                           f"offered version {job.version} is not newer than running {running_version}")
    if job.board != board:
        raise Seed002Error(OtaError.WRONG_BOARD, f"job is for board {job.board!r}, this device is {board!r}")


def no_update_document(request: DeviceRequest) -> JobDocument:
    """"No Update Available", echoing the device's own details (Infineon's subscriber needs the topic)."""
    return _echo(Message.NO_UPDATE_AVAILABLE, request.device, request.unique_topic)


def result_received_document(unique_topic: str, device: DeviceInfo | None = None) -> JobDocument:
    """The publisher's acknowledgement of a result."""
    return _echo(Message.RESULT_RECEIVED, device or DeviceInfo(), unique_topic, version=device is not None)


# ---------------------------------------------------------------------------------------------- HTTP result


def build_http_result(result: HttpResult) -> bytes:
    """``CY_OTA_HTTP_RESULT_JSON``."""
    return encode_document({"Message": (Message.SUCCESS if result.success else Message.FAILURE).value,
                            "File": result.file})


def parse_http_result(payload: bytes | str) -> HttpResult:
    doc = decode_document(payload)
    message = _message(doc)
    if message not in RESULT_MESSAGES:
        raise Seed002Error(OtaError.NOT_A_JOB_DOC, f'"{message}" is not a result')
    return HttpResult(success=message is Message.SUCCESS, file=doc.text("File", "Filename"))


# ------------------------------------------------------------------------------------------------- helpers


def _message(doc: Fields) -> Message:
    text = doc.text("Message", required=True)
    try:
        return Message(text)
    except ValueError:
        raise Seed002Error(OtaError.NOT_A_JOB_DOC, f'unknown "Message" {text!r}') from None


def _device_info(doc: Fields, *, require_version: bool) -> DeviceInfo:
    version_text = doc.text("Version", required=require_version)
    return DeviceInfo(
        serial_number=doc.text("SerialNumber"),
        board=doc.text("BoardName", "Board"),
        version=parse_seed_version(version_text) if version_text else ImageVersion(),
        manufacturer=doc.text("Manufacturer"),
        manufacturer_id=doc.text("ManufacturerID"),
        product=doc.text("ProductID", "Product"),
    )


def _echo(message: Message, device: DeviceInfo, unique_topic: str, *, version: bool = True) -> JobDocument:
    return JobDocument(message=message, board=device.board, version=device.version if version else None,
                       serial_number=device.serial_number, manufacturer=device.manufacturer,
                       manufacturer_id=device.manufacturer_id, product=device.product,
                       unique_topic=unique_topic)
