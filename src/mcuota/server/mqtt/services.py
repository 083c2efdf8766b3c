"""Starting and stopping the service's MQTT side as one unit: broker (if embedded) and publisher.

Two doors: :func:`start_mqtt_services` (blocking, returns a handle with ``stop()``), and
:func:`start_publisher`, the server's service hook (``mcuota.server.settings.ServiceFactory``: context
in, async context manager out) that ``mcuota serve`` looks up in this package.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

from mcuota.server.catalog import UpdateCatalog
from mcuota.server.mqtt.broker import EmbeddedBroker
from mcuota.server.mqtt.connection import BrokerEndpoint, parse_broker_url
from mcuota.server.mqtt.handler import JobLocation
from mcuota.server.mqtt.publisher import MqttError, Seed002Publisher
from mcuota.transport.seed002 import DEFAULT_COMPANY

log = logging.getLogger("mcuota.server.mqtt")

DEFAULT_EMBEDDED_PORT = 1883


@dataclass(frozen=True)
class MqttSettings:
    """What ``mcuota serve`` knows about MQTT. ``enabled=False`` is ``--no-mqtt``; ``url`` is
    ``--mqtt-url`` (None: run the embedded broker on ``embedded_host:embedded_port``, 0 = any free port;
    an explicit port that is taken is an error, the default 1883 being taken falls back to a free one)."""

    enabled: bool = True
    url: str | None = None
    embedded_host: str = "127.0.0.1"
    embedded_port: int | None = None             # None: 1883, or any free port if 1883 is taken
    company: str = DEFAULT_COMPANY
    boards: tuple[str, ...] = ()                 # () = every board: "<company>/+/publish_notify"
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    tls_insecure: bool = False
    location: JobLocation = field(default_factory=JobLocation)
    client_id: str | None = None
    connect_timeout: float = 10.0


@dataclass
class MqttServices:
    """What :func:`start_mqtt_services` started; :meth:`stop` undoes it (publisher first)."""

    broker: EmbeddedBroker | None = None
    publisher: Seed002Publisher | None = None

    @property
    def broker_url(self) -> str | None:
        """The broker devices should use (None when MQTT is disabled)."""
        return self.publisher.endpoint.url if self.publisher is not None else None

    def stop(self) -> None:
        if self.publisher is not None:
            self.publisher.stop()
        if self.broker is not None:
            self.broker.stop()

    def __enter__(self) -> MqttServices:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_mqtt_services(catalog: UpdateCatalog, settings: MqttSettings | None = None) -> MqttServices:
    """Start the embedded broker (unless ``settings.url``) and the seed-002 publisher on it; returns
    once the publisher is subscribed, or raises :class:`~mcuota.server.mqtt.publisher.MqttError`
    (a ``McuotaError``) naming the broker. Bad settings are a ``UsageError``."""
    settings = settings or MqttSettings()
    if not settings.enabled:
        return MqttServices()
    broker: EmbeddedBroker | None = None
    if settings.url is None:
        broker = _start_embedded(settings)
        endpoint = BrokerEndpoint(host=broker.host, port=broker.port)
    else:
        endpoint = parse_broker_url(settings.url, ca_file=settings.ca_file, cert_file=settings.cert_file,
                                    key_file=settings.key_file, tls_insecure=settings.tls_insecure)
    try:
        publisher = Seed002Publisher(catalog, endpoint, company=settings.company, boards=settings.boards,
                                     location=settings.location, client_id=settings.client_id)
        publisher.start(timeout=settings.connect_timeout)
    except BaseException:
        if broker is not None:
            broker.stop()
        raise
    return MqttServices(broker=broker, publisher=publisher)


def _start_embedded(settings: MqttSettings) -> EmbeddedBroker:
    if settings.embedded_port is not None:
        return EmbeddedBroker(settings.embedded_host, settings.embedded_port).start()
    try:
        return EmbeddedBroker(settings.embedded_host, DEFAULT_EMBEDDED_PORT).start()
    except MqttError as exc:
        broker = EmbeddedBroker(settings.embedded_host, 0).start()
        log.warning("embedded MQTT broker: port %d is taken (%s); listening at %s instead",
                    DEFAULT_EMBEDDED_PORT, exc, broker.url)
        return broker


# ------------------------------------------------------------------------------------- the server hook


class PublisherContext(Protocol):
    """What the server hands its services (``mcuota.server.settings.ServiceContext``)."""

    @property
    def settings(self) -> Any: ...

    @property
    def catalog(self) -> UpdateCatalog: ...


def settings_from_server(server_settings: Any) -> MqttSettings:
    """:class:`MqttSettings` from the server's settings: ``mqtt_enabled`` and ``mqtt_url`` (what
    ``mcuota serve`` has today) and, when the server grows them, ``mqtt_port``, ``mqtt_ca_file``,
    ``mqtt_cert_file``, ``mqtt_key_file``, ``mqtt_company`` and ``mqtt_boards``."""
    def opt(name: str, default: Any = None) -> Any:
        return getattr(server_settings, name, default)
    return MqttSettings(
        enabled=bool(opt("mqtt_enabled", True)), url=opt("mqtt_url"), embedded_port=opt("mqtt_port"),
        ca_file=_path_text(opt("mqtt_ca_file")), cert_file=_path_text(opt("mqtt_cert_file")),
        key_file=_path_text(opt("mqtt_key_file")), company=opt("mqtt_company") or DEFAULT_COMPANY,
        boards=tuple(opt("mqtt_boards") or ()))


@asynccontextmanager
async def start_publisher(context: PublisherContext) -> AsyncIterator[MqttServices]:
    """The server's service factory: start the MQTT side with the server's catalog once the server is
    ready, stop it at shutdown. Blocking work runs in a thread so the event loop keeps serving."""
    settings = settings_from_server(context.settings)
    services = await asyncio.to_thread(start_mqtt_services, context.catalog, settings)
    if services.broker_url is not None:
        log.info("MQTT: seed-002 publisher on %s (%s broker)", services.broker_url,
                 "embedded" if services.broker is not None else "external")
    try:
        yield services
    finally:
        await asyncio.to_thread(services.stop)


def _path_text(value: Any) -> str | None:
    return None if value is None else str(value)
