"""The agent's link to the update service for a device configuration: seed-002 HTTP, mcuota's token API,
or seed-002 MQTT, over the real adapters in :mod:`mcuota.agent` (httpx, paho-mqtt).

A fleet passes one shared httpx client and one :class:`~mcuota.agent.mqtt_port.MqttLink` to all its
devices, so a thousand devices cost a connection pool and one broker session, not a thousand of each.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from mcuota.agent.transport import ChunkPort, MqttTransport, Transport
from mcuota.device.config import DeviceConfig, Protocol
from mcuota.errors import UsageError
from mcuota.image.version import ImageVersion
from mcuota.transport.seed002 import DeviceInfo

if TYPE_CHECKING:
    import httpx

    from mcuota.agent.mqtt_port import MqttLink
    from mcuota.device.device import SimDevice


def link_factory(config: DeviceConfig, token: str, *, http_client: httpx.Client | None = None,
                 mqtt_link: MqttLink | None = None) -> Callable[[SimDevice], Transport]:
    """A factory the device calls at every start: the link, saying what the device runs now."""
    if config.protocol in (Protocol.SEED002_HTTP, Protocol.DEVICE_API) and not config.server:
        raise UsageError(f"device {config.serial} talks {config.protocol.value} but has no server URL")
    if config.protocol is Protocol.SEED002_MQTT and mqtt_link is None:
        raise UsageError(f"device {config.serial} talks MQTT but no broker link was given")

    ports: list[ChunkPort] = []   # one subscription per device for its whole life, made on first use

    def make(device: SimDevice) -> Transport:
        def running() -> ImageVersion:
            return device.storage.running_version() or device.running_version() or ImageVersion()

        settings = config.agent_config()
        if config.protocol is Protocol.SEED002_MQTT:
            assert mqtt_link is not None
            if not ports:
                ports.append(mqtt_link.port(config.company, config.board, config.unique_topic,
                                            packet_interval=settings.packet_interval))
            port = ports[0]
            info = DeviceInfo(serial_number=config.serial, board=config.board, version=running())
            return MqttTransport(port, info, config.unique_topic)
        from mcuota.agent.http_port import HttpxPort  # noqa: PLC0415 - httpx only for HTTP devices

        http = HttpxPort(config.server, token=token, serial=config.serial, client=http_client,
                         timeout_ms=settings.http_timeout_ms)
        if config.protocol is Protocol.SEED002_HTTP:
            from mcuota.agent.transport import HttpTransport  # noqa: PLC0415

            return HttpTransport(http, job_path=f"/seed002/{config.serial}/ota_update.json")
        from mcuota.agent.device_api import DeviceApiTransport  # noqa: PLC0415

        return DeviceApiTransport(http, serial=config.serial, board=config.board, running_version=running)

    return make
