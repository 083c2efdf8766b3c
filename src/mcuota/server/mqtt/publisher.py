"""The seed-002 publisher on a real broker: paho-mqtt in, :class:`Seed002Handler` decides, paho out.

Threads: paho's network loop (``loop_start``) only queues what arrives, one worker runs the handler
and publishes, so a slow catalog never stalls keepalives and one device's requests are answered in
the order it sent them. Chunks are handed to paho all at once at QoS 1 with a large in-flight window:
the PUBACKs overlap instead of being waited for one by one (Infineon's ``publisher.py`` sleeps 0.1 s
per chunk, about 25 KB/s per device). paho reconnects on its own with backoff (1 s doubling to 30 s),
and every (re)connection subscribes again, so a restarted broker costs a few seconds, not a restart.
"""

from __future__ import annotations

import logging
import queue
import ssl
import threading
from collections.abc import Sequence
from typing import Any

import paho.mqtt.client as mqtt

from mcuota.errors import McuotaError, UsageError
from mcuota.server.catalog import UpdateCatalog
from mcuota.server.mqtt.connection import BrokerEndpoint, make_client
from mcuota.server.mqtt.handler import JobLocation, Seed002Handler
from mcuota.transport.seed002 import DEFAULT_COMPANY, KEEPALIVE_SECONDS, QOS, notify_filter, notify_topic

log = logging.getLogger("mcuota.server.mqtt")


class MqttError(McuotaError):
    """The MQTT side of the service could not start: no broker, refused credentials, a port in use."""


class Seed002Publisher:
    """Answers seed-002 devices on one broker until :meth:`stop`."""

    def __init__(self, catalog: UpdateCatalog, endpoint: BrokerEndpoint, *, company: str = DEFAULT_COMPANY,
                 boards: Sequence[str] = (), location: JobLocation | None = None,
                 client_id: str | None = None, max_inflight: int = 1000) -> None:
        self.endpoint = endpoint
        self.handler = Seed002Handler(catalog, company=company, location=location)
        self.filters = [notify_topic(company, board) for board in boards] or [notify_filter(company)]
        try:
            self._client = make_client(endpoint, client_id=client_id, max_inflight=max_inflight)
        except (OSError, ssl.SSLError, ValueError) as exc:
            raise UsageError(f"cannot set up TLS for {endpoint.url}: {exc}") from None
        self._client.on_connect = self._on_connect
        self._client.on_connect_fail = self._on_connect_fail
        self._client.on_subscribe = self._on_subscribe
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message
        self._inbox: queue.Queue[tuple[str, bytes] | None] = queue.Queue()
        self._ready = threading.Event()
        self._subscribe_mid: int | None = None
        self._worker: threading.Thread | None = None
        self._stopping = False
        self._last_error = "no answer"
        self.connections = 0          # successful (re)subscriptions, for operators and tests

    # ---------------------------------------------------------------------------------------- lifecycle

    def start(self, *, timeout: float | None = 10.0) -> None:
        """Connect and subscribe; with a ``timeout``, wait for the subscription and raise
        :class:`MqttError` if the broker does not take it in time."""
        self._worker = threading.Thread(target=self._work, name="seed002-publisher", daemon=True)
        self._worker.start()
        self._client.connect_async(self.endpoint.host, self.endpoint.port, keepalive=KEEPALIVE_SECONDS)
        self._client.loop_start()
        if timeout is not None and not self._ready.wait(timeout):
            self.stop()
            raise MqttError(f"cannot reach the MQTT broker at {self.endpoint.url}: {self._last_error}")

    def wait_ready(self, timeout: float | None = None) -> bool:
        """Whether the publisher is connected and subscribed (waiting up to ``timeout``)."""
        return self._ready.wait(timeout)

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    def stop(self) -> None:
        """Disconnect and end both threads; safe to call twice."""
        if self._stopping:
            return
        self._stopping = True
        self._ready.clear()
        self._client.disconnect()
        self._client.loop_stop()
        self._inbox.put(None)
        if self._worker is not None:
            self._worker.join(timeout=10)

    def __enter__(self) -> Seed002Publisher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---------------------------------------------------------------------------------------- callbacks

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any,
                    properties: Any) -> None:
        if reason.is_failure:
            self._last_error = f"connection refused: {reason}"
            log.error("seed002 publisher: %s refused the connection: %s", self.endpoint.url, reason)
            return
        _, self._subscribe_mid = client.subscribe([(topic, QOS) for topic in self.filters])

    def _on_connect_fail(self, client: mqtt.Client, userdata: Any) -> None:
        self._last_error = "connection failed"
        log.debug("seed002 publisher: connecting to %s failed; retrying", self.endpoint.url)

    def _on_subscribe(self, client: mqtt.Client, userdata: Any, mid: int, reasons: Any,
                      properties: Any) -> None:
        if mid != self._subscribe_mid:
            return
        refused = [str(r) for r in reasons if r.is_failure]
        if refused:
            self._last_error = f"subscription refused: {', '.join(refused)}"
            log.error("seed002 publisher: %s refused %s: %s", self.endpoint.url, self.filters, refused)
            return
        self.connections += 1
        log.info("seed002 publisher: listening on %s at %s", ", ".join(self.filters), self.endpoint.url)
        self._ready.set()

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any,
                       properties: Any) -> None:
        self._ready.clear()
        if not self._stopping:
            self._last_error = f"disconnected: {reason}"
            log.warning("seed002 publisher: lost %s (%s); reconnecting", self.endpoint.url, reason)

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        try:
            self._inbox.put((message.topic, bytes(message.payload)))
        except Exception:   # e.g. a topic that is not UTF-8; paho's loop must not die of it
            log.warning("seed002 publisher: dropped an undecodable message")

    # ------------------------------------------------------------------------------------------- worker

    def _work(self) -> None:
        while (item := self._inbox.get()) is not None:
            topic, payload = item
            try:
                for out in self.handler.handle(topic, payload):
                    info = self._client.publish(out.topic, out.payload, qos=QOS)
                    if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
                        log.error("seed002 publisher: publishing to %s failed: %s", out.topic,
                                  mqtt.error_string(info.rc))
            except Exception:
                log.exception("seed002 publisher: failed on a message from %s", topic)
