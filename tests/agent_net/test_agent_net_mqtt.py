"""The agent over seed-002 MQTT on real brokers (a private Mosquitto and the embedded amqtt) against the
update server's publisher: one device end to end, a fleet sharing one connection, a broker restart in
the middle of a download, a broker nobody answers on, and late answers that must not be mistaken for
the current one."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import agent_net_helpers as helpers
import paho.mqtt.client as mqtt
import pytest
import seed002_mqtt_harness as harness
from agent_net_helpers import BOARD, V1, Rig, make_rig, roll_out_2_0_0
from paho.mqtt.enums import CallbackAPIVersion
from seed002_mqtt_harness import Mosquitto, make_tls_files
from server_helpers import LiveServer

from conftest import require_tool
from mcuota.agent.core import Outcome, Status
from mcuota.agent.errors import AgentCode, AgentError
from mcuota.agent.mqtt_port import MqttLink, seed002_mqtt_transport
from mcuota.agent.states import Event, State
from mcuota.image.version import ImageVersion
from mcuota.netutil import free_port
from mcuota.server.mqtt import start_publisher
from mcuota.transport.seed002 import (
    DeviceInfo,
    DeviceRequest,
    Message,
    build_device_request,
    chunks_for_request,
    parse_device_message,
    unpack_chunk,
)

pytest_plugins = ["server_fixtures"]
pytestmark = pytest.mark.interop
rig = helpers.rig
mosquitto, amqtt_broker, broker_port = harness.mosquitto, harness.amqtt_broker, harness.broker_port


def topic_of(serial: str) -> str:
    return f"anycloud/{BOARD}/OTAImage/{serial}"


def device_of(serial: str) -> DeviceInfo:
    return DeviceInfo(serial_number=serial, board=BOARD, version=V1)


def mqtt_server(factory: Callable[..., LiveServer], port: int) -> LiveServer:
    """``mcuota serve`` with its seed-002 publisher on the broker at ``port``."""
    return factory(mqtt_url=f"mqtt://127.0.0.1:{port}", services=[start_publisher])


def test_mqtt_update_runs_2_0_0_after_the_reboot(live_server_factory: Callable[..., LiveServer],
                                                 broker_port: int, rig: Rig) -> None:
    world = roll_out_2_0_0(mqtt_server(live_server_factory, broker_port), rig)
    with MqttLink("127.0.0.1", broker_port) as link:
        transport = seed002_mqtt_transport(link, device_of(world.serial), topic_of(world.serial),
                                           packet_interval=10)
        outcome = rig.agent(transport).check_for_update()
        assert outcome.status is Status.STAGED, outcome.reason
        assert outcome.bytes_fetched == len(world.image) > 2 * 4096
        states = world.states()
        assert "downloading" in states
        assert states[-1] == "success"             # the seed's Success, sent once the download is verified
        transport.port.close()                      # type: ignore[attr-defined]

        fresh = seed002_mqtt_transport(link, device_of(world.serial), topic_of(world.serial),
                                       packet_interval=10)
        after = rig.agent(fresh).on_boot(rig.reboot())
        assert after.status is Status.UPDATED, after.reason
        assert link.connections == 1
    assert rig.running() == "2.0.0"
    assert world.device()["version"] == "2.0.0"


def test_a_fleet_shares_one_broker_connection(live_server_factory: Callable[..., LiveServer],
                                              amqtt_broker: object) -> None:
    port = int(amqtt_broker.port)                   # type: ignore[attr-defined]
    serials = [f"FLEET{n:04d}" for n in range(4)]
    rigs = [make_rig() for _ in serials]
    world = roll_out_2_0_0(mqtt_server(live_server_factory, port), rigs[0], serials[0],
                           others=tuple(serials[1:]))
    outcomes: dict[str, Outcome] = {}
    with MqttLink("127.0.0.1", port) as link:
        def run(serial: str, device_rig: Rig) -> None:
            transport = seed002_mqtt_transport(link, device_of(serial), topic_of(serial), packet_interval=10)
            outcomes[serial] = device_rig.agent(transport).check_for_update()
        threads = [threading.Thread(target=run, args=pair) for pair in zip(serials, rigs, strict=True)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert link.connections == 1
    assert {serial: o.status for serial, o in outcomes.items()} == dict.fromkeys(serials, Status.STAGED)
    assert all(o.bytes_fetched == len(world.image) for o in outcomes.values())
    for serial in serials:
        history = world.ops.ok("GET", f"/api/v1/devices/{serial}")["attempts"][0]["history"]
        assert history[-1]["state"] == "success", serial


@pytest.fixture
def private_mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    require_tool("mosquitto")
    broker = Mosquitto(tmp_path).start()
    yield broker
    broker.stop()


def test_broker_restart_mid_download_is_survived(live_server_factory: Callable[..., LiveServer],
                                                 private_mosquitto: Mosquitto, rig: Rig) -> None:
    world = roll_out_2_0_0(mqtt_server(live_server_factory, private_mosquitto.port), rig)
    restarted = threading.Event()

    def restart() -> None:
        private_mosquitto.start()
        restarted.set()

    stopped: list[bool] = []

    def hook(event: Event) -> None:
        if event.state is State.STORAGE_WRITE and event.percent >= 30 and not stopped:
            stopped.append(True)
            private_mosquitto.stop()
            threading.Timer(0.5, restart).start()
    rig.on_event = hook
    with MqttLink("127.0.0.1", private_mosquitto.port) as link:
        transport = seed002_mqtt_transport(link, device_of(world.serial), topic_of(world.serial),
                                           packet_interval=2)
        outcome = rig.agent(transport, retries=10, step=1024).check_for_update()
        assert restarted.is_set()
        assert outcome.status is Status.STAGED, outcome.reason
        assert link.connections >= 2                 # reconnected, subscriptions renewed
    with MqttLink("127.0.0.1", private_mosquitto.port) as link:
        fresh = seed002_mqtt_transport(link, device_of(world.serial), topic_of(world.serial),
                                       packet_interval=5)
        assert rig.agent(fresh).on_boot(rig.reboot()).status is Status.UPDATED
    assert rig.running() == "2.0.0"


def test_a_dropped_broker_ends_the_pending_request_and_the_next_one_reconnects(
        private_mosquitto: Mosquitto) -> None:
    with MqttLink("127.0.0.1", private_mosquitto.port) as link:
        port = link.port("anycloud", BOARD, topic_of("DROP0001"), packet_interval=30)
        request = build_device_request(DeviceRequest(Message.UPDATE_AVAILABILITY, device_of("DROP0001"),
                                                     topic_of("DROP0001")))
        threading.Timer(0.3, private_mosquitto.stop).start()
        started = time.monotonic()
        with pytest.raises(AgentError) as lost:
            port.publish(request)
        assert time.monotonic() - started < 10      # at once, not at the end of the packet interval
        assert lost.value.code is AgentCode.CONNECTION_LOST
        assert "lost while waiting" in lost.value.detail
        private_mosquitto.start()
        port.packet_interval = 0.3
        with pytest.raises(AgentError) as unanswered:
            port.publish(request)                    # waits for the reconnection, then for an answer
        assert "no answer" in unanswered.value.detail
        assert link.connections == 2


def test_nobody_answering_is_a_lost_connection(mosquitto: Mosquitto, rig: Rig) -> None:
    with MqttLink("127.0.0.1", mosquitto.port) as link:
        transport = seed002_mqtt_transport(link, device_of("LONELY01"), topic_of("LONELY01"),
                                           packet_interval=0.3)
        outcome = rig.agent(transport, retries=2, connect_retries=2).check_for_update()
    assert outcome.status is Status.FAILED
    assert outcome.code is AgentCode.CONNECTION_LOST
    assert "no answer" in outcome.reason
    assert len(rig.clock.sleeps) == 1 + 1            # the job request's retry, then the report's
    assert rig.running() == "1.0.0"


def test_unreachable_broker_is_a_lost_connection() -> None:
    with MqttLink("127.0.0.1", free_port(), connect_timeout=0.3) as link:
        port = link.port("anycloud", BOARD, topic_of("NOBROKER"), packet_interval=1)
        with pytest.raises(AgentError) as caught:
            port.publish(b"{}")
    assert caught.value.code is AgentCode.CONNECTION_LOST
    assert "no connection to the broker" in caught.value.detail


def test_closed_link_refuses_requests(mosquitto: Mosquitto) -> None:
    link = MqttLink("127.0.0.1", mosquitto.port)
    port = link.port("anycloud", BOARD, topic_of("CLOSED01"), packet_interval=1)
    link.close()
    link.close()
    with pytest.raises(AgentError) as caught:
        port.publish(b"{}")
    assert caught.value.code is AgentCode.CONNECTION_LOST


def test_late_and_repeated_answers_are_not_taken_for_the_current_one(mosquitto: Mosquitto) -> None:
    """A publisher that first repeats the answer to an earlier request, then answers this one twice."""
    image = bytes(range(256)) * 40                   # 10 KiB: three 4 KiB chunks
    version = ImageVersion(2, 0, 0)
    server = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id="late-publisher")

    def answer(client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        request = parse_device_message(bytes(message.payload))
        assert isinstance(request, DeviceRequest)
        stale = chunks_for_request(image, version, 0, 4096)
        fresh = chunks_for_request(image, version, request.offset, request.size)
        for payload in [*stale, *fresh, *fresh]:
            client.publish(request.unique_topic, payload, qos=1)

    subscribed = threading.Event()
    server.on_message = answer
    server.on_subscribe = lambda *args: subscribed.set()
    server.connect("127.0.0.1", mosquitto.port)
    server.loop_start()
    server.subscribe(f"anycloud/{BOARD}/publish_notify", qos=1)
    assert subscribed.wait(10)
    try:
        with MqttLink("127.0.0.1", mosquitto.port) as link:
            port = link.port("anycloud", BOARD, topic_of("LATE0001"), packet_interval=5)
            got = port.publish(build_device_request(DeviceRequest(
                Message.REQUEST_DATA_CHUNK, device_of("LATE0001"), topic_of("LATE0001"), filename="/f",
                offset=4096, size=8192)))
    finally:
        server.disconnect()
        server.loop_stop()
    headers = [unpack_chunk(p).header for p in got]
    assert [(h.image_offset, h.data_size) for h in headers] == [(4096, 4096), (8192, len(image) - 8192)]
    assert port.dropped >= 1                         # the stale chunk at offset 0


def test_tls_link_trusts_only_the_given_ca(tmp_path: Path) -> None:
    require_tool("mosquitto")
    broker = Mosquitto(tmp_path, tls=make_tls_files(tmp_path)).start()
    assert broker.tls is not None
    request = build_device_request(DeviceRequest(Message.UPDATE_AVAILABILITY, device_of("TLS00001"),
                                                 topic_of("TLS00001")))
    try:
        with MqttLink("127.0.0.1", broker.port, tls=True, ca_file=str(broker.tls.ca)) as link:
            port = link.port("anycloud", BOARD, topic_of("TLS00001"), packet_interval=0.3)
            with pytest.raises(AgentError) as unanswered:
                port.publish(request)
            assert "no answer" in unanswered.value.detail     # connected and subscribed; nobody publishes
            assert link.url.startswith("mqtts://")
        with MqttLink("127.0.0.1", broker.port, tls=True, connect_timeout=0.5) as stranger:
            port = stranger.port("anycloud", BOARD, topic_of("TLS00002"), packet_interval=0.3)
            with pytest.raises(AgentError) as refused:
                port.publish(request)
            assert "no connection to the broker" in refused.value.detail
    finally:
        broker.stop()
