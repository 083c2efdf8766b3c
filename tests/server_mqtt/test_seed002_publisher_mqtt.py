"""The seed-002 publisher on real brokers — a private Mosquitto and the embedded amqtt — with a device
written from the seed's facts, Mosquitto's own command-line clients, TLS, a broker restart, and many
devices at once."""

from __future__ import annotations

import asyncio
import hashlib
import json
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import seed002_mqtt_harness as harness
from seed002_mqtt_harness import AVAILABILITY, BOARD, Mosquitto, SeedDevice, make_tls_files, wait_for_port

from conftest import require_tool
from mcuota.image.version import ImageVersion
from mcuota.server.catalog import InMemoryCatalog
from mcuota.server.mqtt import (
    BrokerEndpoint,
    EmbeddedBroker,
    MqttError,
    MqttSettings,
    Seed002Publisher,
    parse_broker_url,
    start_mqtt_services,
    start_publisher,
)
from mcuota.server.mqtt import services as mqtt_services
from mcuota.transport.seed002 import (
    Message,
    OtaError,
    Seed002Error,
    check_job,
    parse_job_document,
    unpack_chunk,
)

catalog, firmware = harness.catalog, harness.firmware                      # fixtures
mosquitto, amqtt_broker, broker_port = harness.mosquitto, harness.amqtt_broker, harness.broker_port

pytestmark = pytest.mark.interop


@pytest.fixture
def publisher(catalog: InMemoryCatalog, broker_port: int) -> Iterator[Seed002Publisher]:
    with Seed002Publisher(catalog, BrokerEndpoint("127.0.0.1", broker_port)) as pub:
        pub.start(timeout=10)
        yield pub


@pytest.fixture
def mosquitto_publisher(catalog: InMemoryCatalog, mosquitto: Mosquitto) -> Iterator[Seed002Publisher]:
    with Seed002Publisher(catalog, parse_broker_url(mosquitto.url)) as pub:
        pub.start(timeout=10)
        yield pub


def test_full_flow_is_byte_identical(publisher: Seed002Publisher, broker_port: int, firmware: bytes,
                                     catalog: InMemoryCatalog) -> None:
    with SeedDevice(broker_port, board=BOARD, serial="FLOW-1") as device:
        outcome = device.update("whole")
    assert outcome.image == firmware
    assert hashlib.sha256(outcome.image).hexdigest() == hashlib.sha256(firmware).hexdigest()
    assert outcome.job["Version"] == "2.0.0"
    assert outcome.job["UniqueTopicName"] == device.unique
    assert outcome.ack["Message"] == "Result Received"
    assert [r.state for r in catalog.reports if r.serial == "FLOW-1"] == ["downloading", "success"]


def test_chunk_by_chunk_flow(publisher: Seed002Publisher, broker_port: int, firmware: bytes) -> None:
    with SeedDevice(broker_port, board=BOARD, serial="FLOW-2") as device:
        outcome = device.update("chunks")
    assert outcome.image == firmware
    assert outcome.chunks == 3


def test_agent_reassembler_over_mosquitto(mosquitto_publisher: Seed002Publisher, mosquitto: Mosquitto,
                                          firmware: bytes) -> None:
    with SeedDevice(mosquitto.port, board=BOARD, serial="FLOW-3") as device:
        outcome = device.update("whole", use_reassembler=True)
    assert outcome.image == firmware


@pytest.mark.parametrize("running", ["2.0.0", "2.0.1", "9.9.9"])
def test_no_offer_for_a_version_not_older(mosquitto_publisher: Seed002Publisher, mosquitto: Mosquitto,
                                          running: str) -> None:
    with SeedDevice(mosquitto.port, board=BOARD, serial="GATE", version=running) as device:
        answer = device.ask()
    assert answer["Message"] == "No Update Available"
    assert answer["UniqueTopicName"] == device.unique


def test_wrong_board(mosquitto_publisher: Seed002Publisher, mosquitto: Mosquitto) -> None:
    """A CY8CKIT_062S2_43012 build that publishes on the 4343W topic is offered the 4343W image and
    refuses it, as the agent does; its own board's topic has no release."""
    with SeedDevice(mosquitto.port, board="CY8CKIT_062S2_43012", serial="WB", topic_board=BOARD) as device:
        job = device.ask()
        with pytest.raises(ValueError, match="WRONG_BOARD"):
            device.accept_job(job)
    with pytest.raises(Seed002Error) as refused:
        check_job(parse_job_document(json.dumps(job)), board="CY8CKIT_062S2_43012",
                  running_version=ImageVersion(1))
    assert refused.value.code is OtaError.WRONG_BOARD
    with SeedDevice(mosquitto.port, board="CY8CKIT_062S2_43012", serial="WB2") as device:
        assert device.ask()["Message"] == "No Update Available"


def test_malformed_messages_are_ignored(publisher: Seed002Publisher, broker_port: int) -> None:
    garbage = [b"", b"\xff\xfe\x00", b"{not json", b"[1, 2]", b'{"Message": 42}',
               b'{"Message": "Update Availability", "Version": "1.0"}',
               b'{"Message": "Request Data Chunk", "Version": "1.0.0", "UniqueTopicName": "x", '
               b'"Offset": "a"}',
               b"OTAImage" + bytes(100)]
    with SeedDevice(broker_port, board=BOARD, serial="MAL") as device:
        for payload in garbage:
            device.send(payload)
        device.send((AVAILABILITY % ("Request Data Chunk", "MAL", BOARD, "1.0.0", device.unique))
                    .replace('"}', '", "Offset": "0", "Size": "-5"}'))
        device.expect_silence(0.5)
        assert device.ask()["Message"] == "Update Available"          # the loop survived all of it
    assert publisher.handler.stats.ignored >= len(garbage) + 1
    assert publisher.ready


def test_mosquitto_command_line_clients(mosquitto_publisher: Seed002Publisher, mosquitto: Mosquitto,
                                        firmware: bytes) -> None:
    sub_tool, pub_tool = require_tool("mosquitto_sub"), require_tool("mosquitto_pub")
    unique = f"anycloud/{BOARD}/OTAImage/31337"
    notify = f"anycloud/{BOARD}/publish_notify"
    port = str(mosquitto.port)

    def pub(message: str) -> None:
        body = AVAILABILITY % (message, "CLI-1", BOARD, "1.0.0", unique)
        subprocess.run([pub_tool, "-h", "127.0.0.1", "-p", port, "-q", "1", "-t", notify, "-m", body],
                       check=True, timeout=10)

    # "Update Availability" from mosquitto_pub, the job document read by mosquitto_sub -C 1
    sub = subprocess.Popen([sub_tool, "-h", "127.0.0.1", "-p", port, "-q", "1", "-t", unique, "-C", "1",
                            "-W", "20"], stdout=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 15
    while sub.poll() is None and time.monotonic() < deadline:
        pub("Update Availability")           # until mosquitto_sub's subscription is live
        time.sleep(0.2)
    out, _ = sub.communicate(timeout=10)
    job = parse_job_document(out.strip())
    assert (job.message, job.board, job.version, job.unique_topic) == (
        Message.UPDATE_AVAILABLE, BOARD, ImageVersion(2, 0, 0), unique)

    # "Request Update" from mosquitto_pub, every chunk through mosquitto_sub as length + hex
    sub = subprocess.Popen([sub_tool, "-h", "127.0.0.1", "-p", port, "-q", "1", "-t", unique, "-C", "5",
                            "-W", "20", "-F", "%l %x"], stdout=subprocess.PIPE, text=True)
    assert sub.stdout is not None
    pub_thread_stop = threading.Event()

    def ask_until_heard() -> None:
        while not pub_thread_stop.is_set():
            pub("Update Availability")
            pub_thread_stop.wait(0.2)

    asker = threading.Thread(target=ask_until_heard)
    asker.start()
    try:
        first = sub.stdout.readline()       # a job document: the subscription is live
    finally:
        pub_thread_stop.set()
        asker.join()
    assert not bytes.fromhex(first.split()[1]).startswith(b"OTAImage")
    pub("Request Update")
    pieces = {}
    for line in sub.stdout:
        length, hexdata = line.split()
        payload = bytes.fromhex(hexdata)
        assert len(payload) == int(length)
        if payload.startswith(b"OTAImage"):
            chunk = unpack_chunk(payload)
            pieces[chunk.header.image_offset] = chunk.data
        if sum(map(len, pieces.values())) == len(firmware):
            break
    sub.kill()
    sub.wait()
    assert b"".join(pieces[k] for k in sorted(pieces)) == firmware


def test_reconnects_after_a_broker_restart(catalog: InMemoryCatalog, tmp_path: Path, firmware: bytes) -> None:
    require_tool("mosquitto")
    broker = Mosquitto(tmp_path).start()
    try:
        with Seed002Publisher(catalog, parse_broker_url(broker.url)) as pub:
            pub.start(timeout=10)
            broker.stop()
            broker.start()
            assert pub.wait_ready(20), "publisher did not come back after the broker restarted"
            assert pub.connections == 2
            with SeedDevice(broker.port, board=BOARD, serial="RESTART") as device:
                assert device.update("whole").image == firmware
    finally:
        broker.stop()


def test_many_devices_at_once(mosquitto_publisher: Seed002Publisher, mosquitto: Mosquitto,
                              catalog: InMemoryCatalog) -> None:
    image = bytes(range(256)) * 256                               # 64 KiB: 16 chunks each
    catalog.add_release("MANY_KIT", ImageVersion(5, 0, 0), image)
    devices = [SeedDevice(mosquitto.port, board="MANY_KIT", serial=f"M{i:03}") for i in range(20)]
    results: dict[str, bytes] = {}
    errors: list[BaseException] = []

    def run(device: SeedDevice) -> None:
        try:
            results[device.serial] = device.update("whole").image
        except BaseException as exc:
            errors.append(exc)

    started = time.monotonic()
    threads = [threading.Thread(target=run, args=(d,)) for d in devices]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    elapsed = time.monotonic() - started
    for d in devices:
        d.close()
    assert not errors, errors[:3]
    assert len(results) == 20
    assert all(data == image for data in results.values())
    assert elapsed < 30, f"20 x 64 KiB took {elapsed:.1f} s"


def test_tls_with_a_self_signed_ca(catalog: InMemoryCatalog, tmp_path: Path, firmware: bytes) -> None:
    require_tool("mosquitto")
    tls = make_tls_files(tmp_path)
    broker = Mosquitto(tmp_path, tls=tls).start()
    try:
        settings = MqttSettings(url=broker.url, ca_file=str(tls.ca), connect_timeout=10)
        with start_mqtt_services(catalog, settings) as services:
            assert services.broker is None
            assert services.broker_url == f"mqtts://127.0.0.1:{broker.port}"
            with SeedDevice(broker.port, board=BOARD, serial="TLS-1", ca=tls.ca) as device:
                assert device.update("whole").image == firmware
        # a publisher that does not trust the broker's CA does not get in
        (tmp_path / "other").mkdir()
        stranger = make_tls_files(tmp_path / "other")
        with pytest.raises(MqttError, match=f"mqtts://127.0.0.1:{broker.port}"):
            start_mqtt_services(catalog, MqttSettings(url=broker.url, ca_file=str(stranger.ca),
                                                      connect_timeout=2))
    finally:
        broker.stop()


def test_embedded_services_end_to_end(catalog: InMemoryCatalog, firmware: bytes) -> None:
    services = start_mqtt_services(catalog, MqttSettings(embedded_port=0))
    try:
        assert services.broker is not None
        assert services.broker_url == services.broker.url
        port = services.broker.port
        with SeedDevice(port, board=BOARD, serial="EMB-1") as device:
            assert device.update("chunks").image == firmware
    finally:
        services.stop()
    with pytest.raises(TimeoutError):
        wait_for_port(port, timeout=0.5)          # the broker is gone with the services
    assert start_mqtt_services(catalog, MqttSettings(enabled=False)).broker_url is None


def test_unreachable_broker_is_one_clear_error(catalog: InMemoryCatalog) -> None:
    port = harness.free_port()
    started = time.monotonic()
    with pytest.raises(MqttError, match=f"mqtt://127.0.0.1:{port}"):
        start_mqtt_services(catalog, MqttSettings(url=f"mqtt://127.0.0.1:{port}", connect_timeout=1.5))
    assert time.monotonic() - started < 5


def test_embedded_broker_port_in_use(amqtt_broker: EmbeddedBroker) -> None:
    with pytest.raises(MqttError, match="could not listen"):
        EmbeddedBroker("127.0.0.1", amqtt_broker.port).start()


@dataclass(frozen=True)
class _ServerSettings:
    """The MQTT fields of mcuota.server.settings.Settings (plus the optional port)."""

    mqtt_url: str | None = None
    mqtt_enabled: bool = True
    mqtt_port: int | None = 0


@dataclass(frozen=True)
class _ServiceContext:
    """The shape of mcuota.server.settings.ServiceContext that the hook relies on."""

    settings: _ServerSettings
    catalog: InMemoryCatalog


def test_server_service_hook(catalog: InMemoryCatalog, mosquitto: Mosquitto, firmware: bytes) -> None:
    """``start_publisher(context)`` is the async context manager ``mcuota serve`` enters once the
    catalog is ready: embedded broker by default, --mqtt-url honoured, --no-mqtt starts nothing."""

    async def serve(settings: _ServerSettings) -> tuple[str | None, bytes | None]:
        async with start_publisher(_ServiceContext(settings, catalog)) as services:
            if services.broker_url is None:
                return None, None
            port = int(services.broker_url.rsplit(":", 1)[1])
            device = SeedDevice(port, board=BOARD, serial="HOOK")
            try:
                outcome = await asyncio.to_thread(device.update, "whole")
            finally:
                device.close()
            return services.broker_url, outcome.image

    url, image = asyncio.run(serve(_ServerSettings()))
    assert url is not None
    assert image == firmware
    with pytest.raises(TimeoutError):
        wait_for_port(int(url.rsplit(":", 1)[1]), timeout=0.5)        # stopped with the server
    url, image = asyncio.run(serve(_ServerSettings(mqtt_url=mosquitto.url)))
    assert (url, image) == (mosquitto.url, firmware)
    assert asyncio.run(serve(_ServerSettings(mqtt_enabled=False))) == (None, None)


def test_default_embedded_port_taken_falls_back(catalog: InMemoryCatalog, amqtt_broker: EmbeddedBroker,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """The default port being taken (a system Mosquitto on 1883) is not fatal; an explicit one is."""
    monkeypatch.setattr(mqtt_services, "DEFAULT_EMBEDDED_PORT", amqtt_broker.port)
    with start_mqtt_services(catalog, MqttSettings()) as services:
        assert services.broker is not None
        assert services.broker.port not in (0, amqtt_broker.port)
        assert services.publisher is not None
        assert services.publisher.ready
    with pytest.raises(MqttError, match="could not listen"):
        start_mqtt_services(catalog, MqttSettings(embedded_port=amqtt_broker.port))
