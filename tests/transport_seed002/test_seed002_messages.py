"""Seed-002 JSON documents: round trips, the documents Infineon's own code sends, and every refusal."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mcuota.errors import FormatError, UsageError
from mcuota.image.version import ImageVersion
from mcuota.transport.seed002 import (
    Connection,
    DeviceInfo,
    DeviceRequest,
    DeviceResult,
    HttpResult,
    JobDocument,
    Message,
    OtaError,
    Seed002Error,
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
from mcuota.transport.seed002.topics import (
    board_of_notify_topic,
    check_topic_name,
    direct_topic,
    notify_filter,
    notify_topic,
    unique_topic,
)

# The agent's templates (cy_ota_defaults.h) after its sprintf, byte for byte: note the spaces.
AGENT_AVAILABILITY = (
    '{"Message":"Update Availability", "Manufacturer": "Express Widgits Corporation", '
    '"ManufacturerID": "EWCO", "ProductID": "Easy Widgit", "SerialNumber": "ABC213450001", '
    '"BoardName": "CY8CPROTO_062_4343W", "Version": "1.0.0", '
    '"UniqueTopicName": "anycloud/CY8CPROTO_062_4343W/OTAImage/4711"}')
AGENT_CHUNK_REQUEST = (
    '{"Message":"Request Data Chunk", "Manufacturer": "Express Widgits Corporation", '
    '"ManufacturerID": "EWCO", "ProductID": "Easy Widgit", "SerialNumber": "ABC213450001", '
    '"BoardName": "CY8CPROTO_062_4343W", "Version": "1.0.0", '
    '"UniqueTopicName": "anycloud/CY8CPROTO_062_4343W/OTAImage/4711", "Filename": "/ota-update.bin", '
    '"Offset": "8192", "Size": "4096"}')
AGENT_RESULT = '{"Message":"Success", "UniqueTopicName": "anycloud/CY8CPROTO_062_4343W/OTAImage/4711"}'
# Infineon's scripts/ota_update.json with the publisher's substitutions.
PUBLISHER_JOB = json.dumps({
    "Message": "Update Available", "Manufacturer": "Infineon", "ManufacturerId": "ABCD123",
    "Product": "EFGH456", "SerialNumber": "ABC213450001", "Board": "CY8CPROTO_062_4343W",
    "Version": "2.0.0", "Connection": "MQTT", "Broker": "", "Port": "",
    "UniqueTopicName": "anycloud/CY8CPROTO_062_4343W/OTAImage/4711"}, indent=2)
HTTP_JOB = json.dumps({
    "Message": "Update Available", "Manufacturer": "Express Widgits Corporation", "ManufacturerId": "EWCO",
    "Product": "Easy Widgit", "SerialNumber": "ABC213450001", "Board": "CY8CPROTO_062_4343W",
    "Version": "1.6.0", "Connection": "HTTP", "Server": "10.0.0.88", "Port": "80", "File": "/ota-update.bin",
    "UniqueTopicName": "replace"})


def test_agent_requests_parse() -> None:
    request = parse_device_message(AGENT_AVAILABILITY)
    assert request == DeviceRequest(
        Message.UPDATE_AVAILABILITY,
        DeviceInfo("ABC213450001", "CY8CPROTO_062_4343W", ImageVersion(1, 0, 0),
                   "Express Widgits Corporation", "EWCO", "Easy Widgit"),
        "anycloud/CY8CPROTO_062_4343W/OTAImage/4711")
    chunk = parse_device_message(AGENT_CHUNK_REQUEST)
    assert isinstance(chunk, DeviceRequest)
    assert (chunk.message, chunk.filename, chunk.offset, chunk.size) == (
        Message.REQUEST_DATA_CHUNK, "/ota-update.bin", 8192, 4096)
    assert parse_device_message(AGENT_RESULT) == DeviceResult(
        True, "anycloud/CY8CPROTO_062_4343W/OTAImage/4711")


def test_built_request_matches_the_agent_template_fields() -> None:
    request = parse_device_message(AGENT_CHUNK_REQUEST)
    assert isinstance(request, DeviceRequest)
    ours = json.loads(build_device_request(request))
    assert ours == json.loads(AGENT_CHUNK_REQUEST)
    assert list(ours) == list(json.loads(AGENT_CHUNK_REQUEST))      # and in the same order
    assert json.loads(build_device_result(DeviceResult(False, "t/u"))) == {
        "Message": "Failure", "UniqueTopicName": "t/u"}


def test_infineon_job_documents_parse() -> None:
    job = parse_job_document(PUBLISHER_JOB)
    assert (job.message, job.board, job.version, job.connection, job.host, job.port) == (
        Message.UPDATE_AVAILABLE, "CY8CPROTO_062_4343W", ImageVersion(2, 0, 0), Connection.MQTT, "", None)
    http = parse_job_document(HTTP_JOB)
    assert (http.connection, http.host, http.port, http.file) == (
        Connection.HTTP, "10.0.0.88", 80, "/ota-update.bin")


def test_subscriber_echo_of_a_job_document_is_a_request() -> None:
    """Infineon's subscriber.py turns the job document into its "Request Update": Board and Product
    spellings, any case."""
    echo = json.loads(PUBLISHER_JOB) | {"Message": "Request Update"}
    echo = {key.upper() if key == "Board" else key: value for key, value in echo.items()}
    request = parse_device_message(json.dumps(echo))
    assert isinstance(request, DeviceRequest)
    assert (request.device.board, request.device.product, request.device.manufacturer_id) == (
        "CY8CPROTO_062_4343W", "EFGH456", "ABCD123")


@pytest.mark.parametrize("spelling", ["message", "MESSAGE", "mEsSaGe"])
def test_field_names_are_case_insensitive(spelling: str) -> None:
    doc = json.loads(PUBLISHER_JOB)
    doc[spelling] = doc.pop("Message")
    doc["board"] = doc.pop("Board")
    job = parse_job_document(json.dumps(doc))
    assert job.message is Message.UPDATE_AVAILABLE
    assert job.board == "CY8CPROTO_062_4343W"


def test_job_document_field_order_and_strings() -> None:
    job = JobDocument(board="KIT", version=ImageVersion(1, 2, 3), serial_number="S", manufacturer="M",
                      manufacturer_id="MI", product="P", connection=Connection.HTTPS, host="ota.example",
                      port=443, file="/kit-1.2.3.bin", unique_topic="anycloud/KIT/OTAImage/1")
    doc = json.loads(build_job_document(job))
    assert list(doc) == ["Message", "Manufacturer", "ManufacturerId", "Product", "SerialNumber", "Board",
                         "Version", "Connection", "Server", "Port", "File", "UniqueTopicName"]
    assert all(isinstance(v, str) for v in doc.values())
    assert doc["Port"] == "443"
    assert doc["Version"] == "1.2.3"
    mqtt = json.loads(build_job_document(
        JobDocument(board="KIT", version=ImageVersion(1), connection=Connection.MQTT)))
    assert "Broker" in mqtt
    assert "Server" not in mqtt


def test_check_job_in_the_agents_order() -> None:
    job = parse_job_document(PUBLISHER_JOB)
    check_job(job, board="CY8CPROTO_062_4343W", running_version=ImageVersion(1, 9, 9))
    with pytest.raises(Seed002Error) as wrong_board:
        check_job(job, board="CY8CKIT_062S2_43012", running_version=ImageVersion(1))
    assert wrong_board.value.code is OtaError.WRONG_BOARD
    for running in (ImageVersion(2, 0, 0), ImageVersion(2, 0, 1), ImageVersion(3)):
        with pytest.raises(Seed002Error) as old:
            check_job(job, board="CY8CPROTO_062_4343W", running_version=running)
        assert old.value.code is OtaError.INVALID_VERSION
    # version first, as cy_ota_parse_job_info does
    with pytest.raises(Seed002Error) as both:
        check_job(job, board="OTHER", running_version=ImageVersion(2))
    assert both.value.code is OtaError.INVALID_VERSION
    with pytest.raises(Seed002Error) as none:
        check_job(no_update_document(parse_device_message(AGENT_AVAILABILITY)),  # type: ignore[arg-type]
                  board="CY8CPROTO_062_4343W", running_version=ImageVersion(1))
    assert none.value.code is OtaError.NOT_A_JOB_DOC


def test_no_update_and_result_received_echo_the_device() -> None:
    request = parse_device_message(AGENT_AVAILABILITY)
    assert isinstance(request, DeviceRequest)
    doc = json.loads(build_job_document(no_update_document(request)))
    assert doc["Message"] == "No Update Available"
    assert doc["UniqueTopicName"] == request.unique_topic       # Infineon's subscriber.py needs it
    assert doc["SerialNumber"] == "ABC213450001"
    ack = parse_job_document(build_job_document(result_received_document("a/b/OTAImage/1")))
    assert ack.message is Message.RESULT_RECEIVED
    assert ack.unique_topic == "a/b/OTAImage/1"


def test_http_result() -> None:
    payload = build_http_result(HttpResult(True, "/ota-update.bin"))
    assert json.loads(payload) == {"Message": "Success", "File": "/ota-update.bin"}
    assert parse_http_result(payload) == HttpResult(True, "/ota-update.bin")
    assert parse_http_result('{"message": "Failure", "file": "/x.bin"}') == HttpResult(False, "/x.bin")
    with pytest.raises(Seed002Error):
        parse_http_result('{"Message": "Update Available"}')


def test_topics() -> None:
    assert notify_topic("anycloud", "KIT") == "anycloud/KIT/publish_notify"
    assert notify_filter("OTAUpdate") == "OTAUpdate/+/publish_notify"
    assert unique_topic("anycloud", "KIT", 65535) == "anycloud/KIT/OTAImage/65535"
    assert direct_topic("anycloud", "KIT") == "anycloud/KIT/OTAImage"
    assert board_of_notify_topic("anycloud/KIT/publish_notify", "anycloud") == "KIT"
    for other in ("anycloud/KIT/OTAImage/1", "other/KIT/publish_notify", "anycloud//publish_notify",
                  "anycloud/a/b/publish_notify"):
        assert board_of_notify_topic(other, "anycloud") is None
    for bad in ("", "a/+/b", "a/#", "a\x00b"):
        with pytest.raises(Seed002Error):
            check_topic_name(bad)
    with pytest.raises(Seed002Error):
        notify_topic("any/cloud", "KIT")


# ------------------------------------------------------------------------------------------ refusals

CHUNK = b'{"Message": "Request Data Chunk", "Version": "1.0.0", "UniqueTopicName": "a/b", '
MALFORMED_DEVICE = {
    "empty": b"",
    "not json": b"Update Availability please",
    "truncated": AGENT_AVAILABILITY[:-10].encode(),
    "array": b'[{"Message": "Update Availability"}]',
    "not utf-8": b'{"Message": "Update Availability\xff"}',
    "no message": b'{"UniqueTopicName": "a/b"}',
    "message not a string": b'{"Message": 1, "UniqueTopicName": "a/b"}',
    "no unique topic": b'{"Message": "Update Availability", "Version": "1.0.0"}',
    "wildcard topic": b'{"Message": "Update Availability", "Version": "1.0.0", "UniqueTopicName": "a/+"}',
    "empty topic": b'{"Message": "Request Update", "Version": "1.0.0", "UniqueTopicName": ""}',
    "no version": b'{"Message": "Update Availability", "UniqueTopicName": "a/b"}',
    "two-part version": b'{"Message": "Update Availability", "Version": "1.0", "UniqueTopicName": "a/b"}',
    "version out of range": (b'{"Message": "Update Availability", "Version": "256.0.0", '
                             b'"UniqueTopicName": "a/b"}'),
    "version not text": b'{"Message": "Update Availability", "Version": 1, "UniqueTopicName": "a/b"}',
    "serial not text": (b'{"Message": "Update Availability", "Version": "1.0.0", "UniqueTopicName": "a/b", '
                        b'"SerialNumber": ["x"]}'),
    "surrogate": (b'{"Message": "Update Availability", "Version": "1.0.0", "UniqueTopicName": "a/b", '
                  b'"SerialNumber": "\\ud800"}'),
    "chunk without offset": CHUNK + b'"Size": "4096"}',
    "chunk without size": CHUNK + b'"Offset": "0"}',
    "negative offset": CHUNK + b'"Offset": "-1", "Size": "4096"}',
    "hex size": CHUNK + b'"Offset": "0", "Size": "0x1000"}',
    "zero size": CHUNK + b'"Offset": "0", "Size": "0"}',
    "boolean size": CHUNK + b'"Offset": "0", "Size": true}',
    "huge offset": CHUNK + b'"Offset": "99999999999", "Size": "1"}',
    "result without topic": b'{"Message": "Success"}',
    "oversized": b'{"Message": "Update Availability", "Pad": "' + b"x" * 70_000 + b'"}',
}


@pytest.mark.parametrize("payload", MALFORMED_DEVICE.values(), ids=MALFORMED_DEVICE.keys())
def test_malformed_device_messages_are_refused_by_name(payload: bytes) -> None:
    with pytest.raises(Seed002Error) as refused:
        parse_device_message(payload)
    assert refused.value.code is OtaError.MALFORMED_JOB_DOC
    assert isinstance(refused.value, FormatError)
    assert str(refused.value).startswith("MALFORMED_JOB_DOC: ")


@pytest.mark.parametrize("message", ["Update Available", "No Update Available", "Result Received", "Hello",
                                     "update availability"])
def test_publisher_side_messages_are_not_requests(message: str) -> None:
    with pytest.raises(Seed002Error) as refused:
        parse_device_message(json.dumps({"Message": message, "UniqueTopicName": "a/b", "Version": "1.0.0"}))
    assert refused.value.code is OtaError.NOT_A_JOB_DOC


MALFORMED_JOB = {
    "no version": {"Message": "Update Available", "Board": "KIT"},
    "bad version": {"Message": "Update Available", "Board": "KIT", "Version": "v2"},
    "bad connection": {"Message": "Update Available", "Board": "KIT", "Version": "2.0.0",
                       "Connection": "FTP"},
    "port out of range": {"Message": "Update Available", "Board": "KIT", "Version": "2.0.0", "Port": "70000"},
    "port not a number": {"Message": "Update Available", "Board": "KIT", "Version": "2.0.0", "Port": "http"},
    "board not text": {"Message": "Update Available", "Board": 7, "Version": "2.0.0"},
}


@pytest.mark.parametrize("doc", MALFORMED_JOB.values(), ids=MALFORMED_JOB.keys())
def test_malformed_job_documents_are_refused(doc: dict[str, object]) -> None:
    with pytest.raises(Seed002Error) as refused:
        parse_job_document(json.dumps(doc))
    assert refused.value.code is OtaError.MALFORMED_JOB_DOC


@pytest.mark.parametrize("message", ["Update Availability", "Request Update", "Success", "Bogus"])
def test_device_requests_are_not_job_documents(message: str) -> None:
    with pytest.raises(Seed002Error) as refused:
        parse_job_document(json.dumps({"Message": message, "Version": "1.0.0", "UniqueTopicName": "a/b"}))
    assert refused.value.code is OtaError.NOT_A_JOB_DOC


def test_builders_refuse_what_cannot_be_sent() -> None:
    with pytest.raises(UsageError):
        build_job_document(JobDocument(message=Message.REQUEST_UPDATE))
    with pytest.raises(UsageError):
        build_job_document(JobDocument(board="KIT"))                 # an offer without a version
    with pytest.raises(UsageError):
        build_device_request(DeviceRequest(Message.SUCCESS, DeviceInfo()))
    with pytest.raises(UsageError):
        build_device_request(DeviceRequest(Message.REQUEST_DATA_CHUNK, DeviceInfo(), "a/b", size=0))
    with pytest.raises(Seed002Error):
        build_device_request(DeviceRequest(Message.REQUEST_UPDATE, DeviceInfo(), "a/#"))


def test_tolerated_framing() -> None:
    """Leading whitespace (the publisher lstrips) and the C string terminator some agents send."""
    assert isinstance(parse_device_message(b"  \r\n" + AGENT_RESULT.encode() + b"\x00"), DeviceResult)


# ---------------------------------------------------------------------------------------- round trips

_text = st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=40)
_topic = st.text(alphabet=st.characters(exclude_categories=["Cs"], exclude_characters="+#\x00"),
                 min_size=1, max_size=60)
_version = st.builds(ImageVersion, st.integers(0, 255), st.integers(0, 255), st.integers(0, 0xFFFF))
_device = st.builds(DeviceInfo, _text, _text, _version, _text, _text, _text)


@st.composite
def _requests(draw: st.DrawFn) -> DeviceRequest:
    message = draw(st.sampled_from([Message.UPDATE_AVAILABILITY, Message.REQUEST_UPDATE,
                                    Message.REQUEST_DATA_CHUNK, Message.SEND_DIRECT_UPDATE]))
    device = draw(_device)
    topic = draw(st.just("") | _topic) if message is Message.SEND_DIRECT_UPDATE else draw(_topic)
    if message is Message.REQUEST_DATA_CHUNK:
        return DeviceRequest(message, device, topic, draw(_text), draw(st.integers(0, 0xFFFFFFFF)),
                             draw(st.integers(1, 0xFFFFFFFF)))
    return DeviceRequest(message, device, topic)


@given(_requests())
def test_device_request_round_trip(request: DeviceRequest) -> None:
    assert parse_device_message(build_device_request(request)) == request


@given(st.booleans(), _topic)
def test_device_result_round_trip(success: bool, topic: str) -> None:
    result = DeviceResult(success, topic)
    assert parse_device_message(build_device_result(result)) == result


@st.composite
def _jobs(draw: st.DrawFn) -> JobDocument:
    message = draw(st.sampled_from([Message.UPDATE_AVAILABLE, Message.NO_UPDATE_AVAILABLE,
                                    Message.RESULT_RECEIVED]))
    offer = message is Message.UPDATE_AVAILABLE
    return JobDocument(
        message=message, board=draw(_text.filter(bool)) if offer else draw(_text),
        version=draw(_version) if offer else draw(st.none() | _version),
        serial_number=draw(_text), manufacturer=draw(_text), manufacturer_id=draw(_text),
        product=draw(_text), connection=draw(st.none() | st.sampled_from(list(Connection))),
        host=draw(_text), port=draw(st.none() | st.integers(1, 0xFFFF)), file=draw(_text),
        unique_topic=draw(st.just("") | _topic))


@given(_jobs())
def test_job_document_round_trip(job: JobDocument) -> None:
    if job.connection is None:
        job = JobDocument(**{**job.__dict__, "host": "", "port": None})
    assert parse_job_document(build_job_document(job)) == job


@given(st.booleans(), _text)
def test_http_result_round_trip(success: bool, file: str) -> None:
    assert parse_http_result(build_http_result(HttpResult(success, file))) == HttpResult(success, file)
