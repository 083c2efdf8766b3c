"""The agent's :class:`~mcuota.agent.transport.ChunkPort` on a real broker, with paho-mqtt (v2 API).

A :class:`MqttLink` is one broker connection that any number of simulated devices share: a fleet of
hundreds must not open hundreds of connections (a broker's connection limit, and the file descriptors
of the machine that simulates them, run out long before the update service does). Each device gets a
:class:`MqttChunkPort` from :meth:`MqttLink.port`: its unique topic is subscribed on the shared
connection, its requests go to ``<company>/<board>/publish_notify``, and what arrives on the unique
topic is handed to the one request waiting there.

A request ends as soon as its answer is complete (the job document; chunks covering the bytes asked
for, or up to the file's end; "Result Received"), else when the packet interval runs out: with nothing
at all that is ``CONNECTION_LOST``, with part of an answer the transport sees it is short. QoS 1 may
deliver an answer twice and paho re-sends unacknowledged requests after a reconnection, so answers that
belong to an earlier request (a chunk already taken or outside the range asked for, a document of
another kind) are dropped rather than taken for this one's.

When the broker drops the connection, every request waiting on it ends with ``CONNECTION_LOST`` at
once; paho reconnects in the background (the subscriptions are renewed, since sessions are clean) and
the next request waits for that, up to ``connect_timeout``.
"""

from __future__ import annotations

import json
import logging
import secrets
import ssl
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from mcuota.agent.errors import AgentCode, AgentError
from mcuota.agent.transport import MqttTransport
from mcuota.errors import UsageError
from mcuota.transport.seed002 import (
    DEFAULT_COMPANY,
    QOS,
    DeviceInfo,
    DeviceResult,
    Message,
    Seed002Error,
    check_topic_name,
    is_chunk,
    notify_topic,
    parse_device_message,
    unpack_chunk,
)

log = logging.getLogger("mcuota.agent.mqtt")

SUBSCRIBE_BATCH = 100
"""Topics per SUBSCRIBE when a reconnection renews a fleet's subscriptions."""


class MqttLink:
    """One connection to the broker at ``host``:``port`` (TLS with ``tls=True`` and the broker's CA in
    ``ca_file``, or an ``ssl.SSLContext``). Connecting starts at once and goes on in the background."""

    def __init__(self, host: str, port: int, *, tls: bool | ssl.SSLContext = False,
                 ca_file: str | None = None, tls_insecure: bool = False, client_id: str | None = None,
                 keepalive: int = 60,
                 username: str | None = None, password: str | None = None,
                 connect_timeout: float = 10.0) -> None:
        self.host, self.port_number = host, port
        self.url = f"{'mqtts' if tls else 'mqtt'}://{host}:{port}"
        self.connect_timeout = connect_timeout
        self._client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2,
                                   client_id=client_id or f"mcuota-agent-{secrets.token_hex(4)}",
                                   clean_session=True, protocol=mqtt.MQTTv311)
        self._client.max_inflight_messages_set(1000)
        self._client.reconnect_delay_set(min_delay=1, max_delay=8)
        if username is not None:
            self._client.username_pw_set(username, password)
        try:
            if isinstance(tls, ssl.SSLContext):
                self._client.tls_set_context(tls)
            elif tls:
                self._client.tls_set(ca_certs=ca_file, cert_reqs=ssl.CERT_REQUIRED)
            if tls and tls_insecure:
                self._client.tls_insecure_set(True)
        except (OSError, ssl.SSLError, ValueError) as exc:
            raise UsageError(f"cannot set up TLS for {self.url}: {exc}") from None
        self._client.on_connect = self._on_connect
        self._client.on_connect_fail = self._on_connect_fail
        self._client.on_disconnect = self._on_disconnect
        self._client.on_subscribe = self._on_subscribe
        self._client.on_message = self._on_message
        self._lock = threading.Condition()
        self._ports: dict[str, MqttChunkPort] = {}
        self._subacks: dict[int, bool] = {}
        self._up = threading.Event()
        self._closed = False
        self.generation = 0
        """Counts lost connections: a request that saw another value when it began lost its answer."""
        self.connections = 0
        self.last_error = "not connected yet"
        self._client.connect_async(host, port, keepalive=keepalive)
        self._client.loop_start()

    # ------------------------------------------------------------------------------------------- devices

    def port(self, company: str, board: str, unique_topic: str, packet_interval: float = 60.0
             ) -> MqttChunkPort:
        """A device's port: ``unique_topic`` subscribed (QoS 1) on this connection, requests published to
        ``<company>/<board>/publish_notify``."""
        check_topic_name(unique_topic)
        if any(c in unique_topic for c in "+#"):
            raise UsageError(f"unique topic {unique_topic!r} must not contain MQTT wildcards")
        chunk_port = MqttChunkPort(self, notify_topic(company, board), unique_topic, packet_interval)
        with self._lock:
            if self._closed:
                raise UsageError("the MQTT link is closed")
            if unique_topic in self._ports:
                raise UsageError(f"unique topic {unique_topic!r} is already in use on this link")
            self._ports[unique_topic] = chunk_port
            up = self._up.is_set()
        if up:
            self._subscribe_now(unique_topic)
        return chunk_port

    def _subscribe_now(self, topic: str) -> None:
        """Wait for the SUBACK, so the first request cannot be answered before anyone listens; while
        disconnected the renewal on the next connection subscribes instead."""
        rc, mid = self._client.subscribe(topic, qos=QOS)
        if rc != mqtt.MQTT_ERR_SUCCESS or mid is None:
            return
        deadline = time.monotonic() + self.connect_timeout
        with self._lock:
            while mid not in self._subacks:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self._up.is_set():
                    return
                self._lock.wait(remaining)
            granted = self._subacks.pop(mid)
        if not granted:
            raise AgentError(AgentCode.CONNECTION_LOST, f"the broker at {self.url} refused a subscription to "
                             f"{topic}")

    def _release(self, topic: str) -> None:
        with self._lock:
            self._ports.pop(topic, None)
        if self._up.is_set():
            self._client.unsubscribe(topic)

    def await_up(self) -> int:
        """The current connection's generation, once connected; ``CONNECTION_LOST`` after
        ``connect_timeout``."""
        if self._closed:
            raise AgentError(AgentCode.CONNECTION_LOST, f"the link to {self.url} is closed")
        if not self._up.wait(self.connect_timeout):
            raise AgentError(AgentCode.CONNECTION_LOST, f"no connection to the broker at {self.url} "
                             f"within {self.connect_timeout:g} s ({self.last_error})")
        return self.generation

    def send(self, topic: str, payload: bytes) -> None:
        info = self._client.publish(topic, payload, qos=QOS)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            raise AgentError(AgentCode.CONNECTION_LOST, f"publishing to {topic} on {self.url} failed: "
                             f"{mqtt.error_string(info.rc)}")

    @property
    def connected(self) -> bool:
        return self._up.is_set()

    # ------------------------------------------------------------------------------------------ lifecycle

    def close(self) -> None:
        """Disconnect, stop paho's thread, and end every waiting request; safe to call twice."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            ports = list(self._ports.values())
        self._client.disconnect()
        self._client.loop_stop()
        self._up.clear()
        with self._lock:
            self.generation += 1
        for chunk_port in ports:
            chunk_port.wake()

    def __enter__(self) -> MqttLink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------------------------------ callbacks

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any,
                    properties: Any) -> None:
        if reason.is_failure:
            self.last_error = f"connection refused: {reason}"
            log.warning("agent link: %s refused the connection: %s", self.url, reason)
            return
        with self._lock:       # a port registered meanwhile either is in this list or sees the link up
            topics = list(self._ports)
            for start in range(0, len(topics), SUBSCRIBE_BATCH):
                client.subscribe([(topic, QOS) for topic in topics[start:start + SUBSCRIBE_BATCH]])
            self.connections += 1
            self._up.set()     # the SUBSCRIBEs are queued ahead of any request, so the broker sees them first

    def _on_connect_fail(self, client: mqtt.Client, userdata: Any) -> None:
        self.last_error = "connection failed"

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any,
                       properties: Any) -> None:
        self._up.clear()
        with self._lock:
            self.generation += 1
            ports = list(self._ports.values())
            self._lock.notify_all()
        if not self._closed:
            self.last_error = f"disconnected: {reason}"
            log.warning("agent link: lost %s (%s); reconnecting", self.url, reason)
        for chunk_port in ports:
            chunk_port.wake()

    def _on_subscribe(self, client: mqtt.Client, userdata: Any, mid: int, reasons: Any,
                      properties: Any) -> None:
        with self._lock:
            self._subacks[mid] = not any(r.is_failure for r in reasons)
            if len(self._subacks) > 10_000:     # renewals nobody waits for
                self._subacks.clear()
            self._lock.notify_all()

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        with self._lock:
            chunk_port = self._ports.get(message.topic)
        if chunk_port is not None:
            chunk_port.deliver(bytes(message.payload))


class MqttChunkPort:
    """One device's requests on a shared :class:`MqttLink`; one request at a time per device."""

    def __init__(self, link: MqttLink, notify: str, unique_topic: str, packet_interval: float) -> None:
        self.link = link
        self.notify = notify
        self.unique_topic = unique_topic
        self.packet_interval = packet_interval
        self._cond = threading.Condition()
        self._inbox: list[bytes] = []
        self._one_request = threading.Lock()
        self.dropped = 0
        """Answers that belonged to an earlier request (late, repeated) and were not taken for the current."""

    def deliver(self, payload: bytes) -> None:
        with self._cond:
            self._inbox.append(payload)
            self._cond.notify_all()

    def wake(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def publish(self, payload: bytes) -> list[bytes]:
        answer = _Answer.to(payload)
        with self._one_request:
            generation = self.link.await_up()
            with self._cond:
                self._inbox.clear()      # late answers to a request that already gave up
            self.link.send(self.notify, payload)
            deadline = time.monotonic() + self.packet_interval
            with self._cond:
                while True:
                    while self._inbox:
                        if not answer.take(self._inbox.pop(0)):
                            self.dropped += 1
                    if answer.complete:
                        return answer.payloads
                    if self.link.generation != generation:
                        raise AgentError(AgentCode.CONNECTION_LOST, f"the broker connection to "
                                         f"{self.link.url} was lost while waiting on {self.unique_topic}")
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    self._cond.wait(remaining)
        if not answer.payloads:
            raise AgentError(AgentCode.CONNECTION_LOST, f"no answer on {self.unique_topic} within "
                             f"{self.packet_interval:g} s")
        return answer.payloads

    def close(self) -> None:
        self.link._release(self.unique_topic)

    def __enter__(self) -> MqttChunkPort:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass
class _Answer:
    """What completes the answer to one request, and which arriving payloads belong to it."""

    documents: frozenset[str] = frozenset()
    """Job-document messages that answer it; empty for a chunk request."""
    first: int = 0
    end: int | None = None
    """Chunk requests: the bytes asked for, ``first`` .. ``end`` (None: to the file's end)."""
    payloads: list[bytes] = field(default_factory=list)
    complete: bool = False
    _next: int = 0
    _seen: set[int] = field(default_factory=set)
    _covered: int = 0

    @classmethod
    def to(cls, request: bytes) -> _Answer:
        try:
            message = parse_device_message(request)
        except Seed002Error:
            return cls(documents=frozenset({"*"}))
        if isinstance(message, DeviceResult):
            return cls(documents=frozenset({Message.RESULT_RECEIVED.value}))
        if message.message is Message.UPDATE_AVAILABILITY:
            return cls(documents=frozenset({Message.UPDATE_AVAILABLE.value,
                                            Message.NO_UPDATE_AVAILABLE.value}))
        if message.message is Message.REQUEST_DATA_CHUNK:
            return cls(first=message.offset, end=message.offset + message.size, _next=message.offset)
        return cls()      # the whole file, chunk after chunk

    def take(self, payload: bytes) -> bool:
        if not is_chunk(payload):
            return self._take_document(payload)
        if self.documents:
            return False
        try:
            header = unpack_chunk(payload).header
        except Seed002Error:
            return self._finish(payload)       # a broken chunk: the transport names what is wrong
        if self.end is None:                    # the whole file: chunks may come in any order
            if header.image_offset in self._seen:
                return False
            self._seen.add(header.image_offset)
            self._covered += header.data_size
            self.payloads.append(payload)
            self.complete = self._covered >= header.total_size
            return True
        if not self._next <= header.image_offset < self.end:
            return False                        # a chunk taken already, or another request's
        self.payloads.append(payload)
        self._next = header.image_offset + header.data_size
        self.complete = self._next >= min(self.end, header.total_size)
        return True

    def _take_document(self, payload: bytes) -> bool:
        try:
            doc = json.loads(payload)
            message = next((str(v) for k, v in doc.items() if str(k).lower() == "message"), "")
        except (ValueError, UnicodeDecodeError, AttributeError):
            return self._finish(payload)       # not JSON: the transport says it is malformed
        if "*" in self.documents or message in self.documents:
            return self._finish(payload)
        if not self.documents and message == Message.NO_UPDATE_AVAILABLE.value and not self.payloads:
            return self._finish(payload)       # the publisher withdrew the offer mid-download
        return False

    def _finish(self, payload: bytes) -> bool:
        self.payloads.append(payload)
        self.complete = True
        return True


def seed002_mqtt_transport(link: MqttLink, device: DeviceInfo, unique_topic: str, *,
                           company: str = DEFAULT_COMPANY, packet_interval: float = 60.0) -> MqttTransport:
    """A device on ``link``: seed-002 MQTT with the publisher listening on ``<company>/+/publish_notify``
    (the board in the topic is the device's)."""
    port = link.port(company, device.board, unique_topic, packet_interval)
    return MqttTransport(port, device, unique_topic)
