"""The publisher's decisions without a broker: what each device message is answered with."""

from __future__ import annotations

import json
import logging
from dataclasses import replace

import pytest
import seed002_mqtt_harness as harness
from seed002_mqtt_harness import AVAILABILITY, BOARD, CHUNK_REQUEST, RESULT

from mcuota.image.version import ImageVersion
from mcuota.server.catalog import DeviceReport, InMemoryCatalog, Offer
from mcuota.server.mqtt import JobLocation, Outgoing, Seed002Handler, job_document_for
from mcuota.transport.seed002 import (
    Connection,
    Reassembler,
    build_job_document,
    check_job,
    parse_job_document,
)

catalog, firmware = harness.catalog, harness.firmware     # fixtures
NOTIFY = f"anycloud/{BOARD}/publish_notify"
UNIQUE = f"anycloud/{BOARD}/OTAImage/7"


def availability(version: str = "1.0.0", serial: str = "SN1", unique: str = UNIQUE, board: str = BOARD,
                 message: str = "Update Availability") -> bytes:
    return (AVAILABILITY % (message, serial, board, version, unique)).encode()


def only(out: list[Outgoing]) -> dict[str, object]:
    assert len(out) == 1
    assert out[0].topic == UNIQUE
    doc: dict[str, object] = json.loads(out[0].payload)
    return doc


def test_job_document_for_a_newer_release(catalog: InMemoryCatalog) -> None:
    handler = Seed002Handler(catalog)
    job = only(handler.handle(NOTIFY, availability("1.0.0")))
    assert job == {"Message": "Update Available", "Manufacturer": "Express Widgits Corporation",
                   "ManufacturerId": "EWCO", "Product": "Easy Widgit", "SerialNumber": "SN1", "Board": BOARD,
                   "Version": "2.0.0", "Connection": "MQTT", "Broker": "", "Port": "",
                   "File": "sample-app-2.0.0.bin", "UniqueTopicName": UNIQUE}


@pytest.mark.parametrize("running", ["2.0.0", "2.0.1", "3.0.0"])
def test_no_offer_for_a_version_not_older(catalog: InMemoryCatalog, running: str) -> None:
    answer = only(Seed002Handler(catalog).handle(NOTIFY, availability(running)))
    assert answer["Message"] == "No Update Available"
    assert answer["Version"] == running


def test_unknown_board_and_unknown_device_get_no_update(catalog: InMemoryCatalog) -> None:
    handler = Seed002Handler(catalog)
    other = handler.handle("anycloud/OTHER_KIT/publish_notify", availability(board="OTHER_KIT"))
    assert json.loads(other[0].payload)["Message"] == "No Update Available"

    class Registry(InMemoryCatalog):
        def offer_for(self, serial: str, board: str, running_version: ImageVersion) -> Offer | None:
            return super().offer_for(serial, board, running_version) if serial == "KNOWN" else None

    registry = Registry()
    registry.add_release(BOARD, ImageVersion(2), b"x" * 100)
    assert only(Seed002Handler(registry).handle(NOTIFY, availability(serial="STRANGER")))["Message"] == (
        "No Update Available")
    assert only(Seed002Handler(registry).handle(NOTIFY, availability(serial="KNOWN")))["Message"] == (
        "Update Available")


def test_the_board_comes_from_the_topic(catalog: InMemoryCatalog) -> None:
    """The agent's template hard-codes "BoardName"; the topic is the device's real board."""
    job = only(Seed002Handler(catalog).handle(NOTIFY, availability(board="CY8CKIT_062S2_43012")))
    assert job["Board"] == BOARD


def test_whole_image_and_reports(catalog: InMemoryCatalog, firmware: bytes) -> None:
    handler = Seed002Handler(catalog)
    handler.handle(NOTIFY, availability())
    chunks = handler.handle(NOTIFY, availability(message="Request Update"))
    assert {out.topic for out in chunks} == {UNIQUE}
    assert len(chunks) == -(-len(firmware) // 4096)
    reassembler = Reassembler(running_version=ImageVersion(1))
    for out in reversed(chunks):
        reassembler.feed(out.payload)
    assert reassembler.image() == firmware
    ack = only(handler.handle(NOTIFY, (RESULT % ("Success", UNIQUE)).encode()))
    assert ack["Message"] == "Result Received"
    assert ack["Version"] == "2.0.0"
    release = catalog.offer_for("SN1", BOARD, ImageVersion(1))
    assert release is not None
    assert catalog.reports == [DeviceReport("SN1", release.release_id, "downloading"),
                               DeviceReport("SN1", release.release_id, "success")]


def test_request_update_uses_the_offer_made(catalog: InMemoryCatalog, firmware: bytes) -> None:
    """Infineon's subscriber.py echoes the job document (offered version 2.0.0) as its request."""
    handler = Seed002Handler(catalog)
    handler.handle(NOTIFY, availability("1.0.0"))
    chunks = handler.handle(NOTIFY, availability("2.0.0", message="Request Update"))
    assert len(chunks) == 3
    # without a session the catalog is asked with the version given, and says no
    fresh = Seed002Handler(catalog).handle(NOTIFY, availability("2.0.0", message="Request Update"))
    assert json.loads(fresh[0].payload)["Message"] == "No Update Available"


def test_chunk_requests(catalog: InMemoryCatalog, firmware: bytes) -> None:
    handler = Seed002Handler(catalog)

    def ask(offset: int, size: int) -> list[Outgoing]:
        return handler.handle(NOTIFY, (CHUNK_REQUEST % ("Request Data Chunk", "SN1", BOARD, "1.0.0", UNIQUE,
                                                        "sample-app-2.0.0.bin", offset, size)).encode())

    one = ask(4096, 4096)
    assert len(one) == 1
    assert one[0].payload[32:] == firmware[4096:8192]
    assert ask(100, 50)[0].payload[32:] == firmware[100:150]
    assert len(ask(0, 1 << 20)) == 3
    assert ask(len(firmware), 4096) == []              # past the end: logged, nothing sent
    assert handler.stats.ignored == 1
    assert [r.state for r in catalog.reports] == ["downloading"]     # offset 0 marks the start


def test_results_are_recorded_and_acknowledged(catalog: InMemoryCatalog) -> None:
    handler = Seed002Handler(catalog)
    handler.handle(NOTIFY, availability(serial="SN9"))
    failure = (RESULT % ("Failure", UNIQUE)).encode()
    assert only(handler.handle(NOTIFY, failure))["Message"] == "Result Received"
    assert catalog.reports[-1].state == "failure"
    assert catalog.reports[-1].serial == "SN9"
    # a result nobody asked for is still acknowledged, but there is no device to record it against
    before = list(catalog.reports)
    success = (RESULT % ("Success", UNIQUE)).encode()
    assert only(handler.handle(NOTIFY, success))["Message"] == "Result Received"
    assert catalog.reports == before


MALFORMED = [b"", b"\x00\xff", b"{", b"[]", b'{"Message": "Update Availability"}', b"OTAImage" + bytes(40),
             b'{"Message": "Update Available", "UniqueTopicName": "x/y"}',
             b'{"Message": "Update Availability", "Version": "1.0.0", "UniqueTopicName": "a/#"}']


def test_malformed_messages_are_logged_and_ignored(catalog: InMemoryCatalog,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    handler = Seed002Handler(catalog)
    with caplog.at_level(logging.WARNING, "mcuota.server.mqtt"):
        for payload in MALFORMED:
            assert handler.handle(NOTIFY, payload) == []
    assert handler.stats.ignored == len(MALFORMED)
    assert sum("ignored" in r.message for r in caplog.records) == len(MALFORMED)
    assert handler.handle("anycloud/KIT/other", availability()) == []
    assert only(handler.handle(NOTIFY, availability()))["Message"] == "Update Available"


def test_a_unique_topic_may_not_be_a_publisher_topic(catalog: InMemoryCatalog) -> None:
    """Else the publisher would answer itself."""
    assert Seed002Handler(catalog).handle(NOTIFY, availability(unique=NOTIFY)) == []


def test_catalog_failures_do_not_escape(catalog: InMemoryCatalog) -> None:
    class Broken(InMemoryCatalog):
        def offer_for(self, serial: str, board: str, running_version: ImageVersion) -> Offer | None:
            raise RuntimeError("database is down")

        def record_report(self, report: DeviceReport) -> None:
            raise RuntimeError("database is down")

    handler = Seed002Handler(Broken())
    assert only(handler.handle(NOTIFY, availability()))["Message"] == "No Update Available"
    success = (RESULT % ("Success", UNIQUE)).encode()
    assert only(handler.handle(NOTIFY, success))["Message"] == "Result Received"


def test_an_artifact_that_does_not_match_its_offer_is_not_sent(catalog: InMemoryCatalog) -> None:
    class Corrupt(InMemoryCatalog):
        def artifact(self, release_id: str) -> bytes:
            data = bytearray(super().artifact(release_id))
            data[0] ^= 0xFF
            return bytes(data)

    corrupt = Corrupt()
    corrupt.add_release(BOARD, ImageVersion(2), b"y" * 9000)
    handler = Seed002Handler(corrupt)
    handler.handle(NOTIFY, availability())
    assert handler.handle(NOTIFY, availability(message="Request Update")) == []


def test_an_offer_for_another_board_is_withheld(catalog: InMemoryCatalog) -> None:
    class Confused(InMemoryCatalog):
        def offer_for(self, serial: str, board: str, running_version: ImageVersion) -> Offer | None:
            offer = super().offer_for(serial, BOARD, running_version)
            return offer if offer is None else replace(offer, board=BOARD)

    confused = Confused()
    confused.add_release(BOARD, ImageVersion(2), b"z" * 100)
    out = Seed002Handler(confused).handle("anycloud/OTHER/publish_notify",
                                          availability(unique="anycloud/O/1"))
    assert json.loads(out[0].payload)["Message"] == "No Update Available"


def test_http_location(catalog: InMemoryCatalog) -> None:
    location = JobLocation(Connection.HTTPS, "ota.example.com", 443, "/releases/{release_id}/{file_name}")
    out = Seed002Handler(catalog, location=location).handle(NOTIFY, availability())
    job = parse_job_document(out[0].payload)
    offer = catalog.offer_for("SN1", BOARD, ImageVersion(1))
    assert offer is not None
    assert (job.connection, job.host, job.port, job.file) == (
        Connection.HTTPS, "ota.example.com", 443, f"/releases/{offer.release_id}/sample-app-2.0.0.bin")


def test_company_prefix(catalog: InMemoryCatalog) -> None:
    handler = Seed002Handler(catalog, company="OTAUpdate")
    assert handler.handle(NOTIFY, availability()) == []
    out = handler.handle(f"OTAUpdate/{BOARD}/publish_notify", availability(unique="OTAUpdate/K/OTAImage/1"))
    assert json.loads(out[0].payload)["Message"] == "Update Available"


def test_http_job_document_for_the_http_flow(catalog: InMemoryCatalog) -> None:
    """What the seed-002 HTTP routes serve as /ota_update.json, from the same helper."""
    offer = catalog.offer_for("", BOARD, ImageVersion(1))
    assert offer is not None
    job = job_document_for(offer, JobLocation(Connection.HTTP, "10.0.0.88", 80, "/{file_name}"))
    doc = json.loads(build_job_document(job))
    assert doc == {"Message": "Update Available", "Manufacturer": "Express Widgits Corporation",
                   "ManufacturerId": "EWCO", "Product": "Easy Widgit", "SerialNumber": "", "Board": BOARD,
                   "Version": "2.0.0", "Connection": "HTTP", "Server": "10.0.0.88", "Port": "80",
                   "File": "/sample-app-2.0.0.bin"}
    check_job(parse_job_document(json.dumps(doc)), board=BOARD, running_version=ImageVersion(1, 9, 0))


def test_direct_flow_sends_the_image_to_the_direct_topic(catalog: InMemoryCatalog, firmware: bytes) -> None:
    handler = Seed002Handler(catalog)
    request = json.dumps({"Message": "Send Direct Update", "SerialNumber": "D1", "Board": BOARD,
                          "Version": "1.0.0"}).encode()
    out = handler.handle(NOTIFY, request)
    assert {o.topic for o in out} == {f"anycloud/{BOARD}/OTAImage"}
    assert b"".join(o.payload[32:] for o in out) == firmware
    up_to_date = json.dumps({"Message": "Send Direct Update", "Version": "2.0.0"}).encode()
    assert handler.handle(NOTIFY, up_to_date) == []          # nothing to send, and nowhere to say so
