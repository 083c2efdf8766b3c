"""An MQTT broker inside the service, for ``mcuota serve`` without ``--mqtt-url`` and for tests.

amqtt runs on its own asyncio loop in a background thread, bound to a loopback address only: it is
a convenience for one machine (the fleet simulator, a demo), not a broker to expose to a network —
point real devices at Mosquitto or a cloud broker with ``--mqtt-url``. Port 0 takes a free port;
:attr:`EmbeddedBroker.url` says which.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import threading
from typing import Any

from amqtt.broker import Broker

from mcuota.errors import UsageError
from mcuota.server.mqtt.publisher import MqttError

log = logging.getLogger("mcuota.server.mqtt")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class EmbeddedBroker:
    """amqtt on ``host:port`` (loopback only) in a background thread; :meth:`stop` shuts it down cleanly."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        if not _is_loopback(host):
            raise UsageError(f"the embedded MQTT broker listens on loopback only, not {host!r}; "
                             "use --mqtt-url for a broker devices on a network can reach")
        if not 0 <= port <= 0xFFFF:
            raise UsageError(f"port {port} is out of range (0..65535)")
        self.host = host
        self.port = port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._broker: Any = None
        self._started = threading.Event()
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"mqtt://{host}:{self.port}"

    def start(self, timeout: float = 10.0) -> EmbeddedBroker:
        self._thread = threading.Thread(target=self._run, name="embedded-mqtt-broker", daemon=True)
        self._thread.start()
        if not self._started.wait(timeout):
            self.stop()
            raise MqttError(f"the embedded MQTT broker did not start within {timeout:g} s")
        if self._error is not None:
            self._thread.join(timeout)
            raise MqttError(f"the embedded MQTT broker could not listen on {self.host}:{self.port}: "
                            f"{self._error}")
        log.info("embedded MQTT broker listening at %s", self.url)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        loop, thread = self._loop, self._thread
        if loop is not None and thread is not None and thread.is_alive():
            asyncio.run_coroutine_threadsafe(self._shutdown(), loop)
            thread.join(timeout)
        self._loop = None

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------------------------------ thread

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._serve())
            if self._error is None:
                loop.run_forever()
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _serve(self) -> None:
        config = {
            "listeners": {"default": {"type": "tcp", "bind": f"{self.host}:{self.port}"}},
            "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
        }
        try:
            self._broker = Broker(config)
            await self._broker.start()
            server = self._broker._servers["default"].instance
            self.port = server.sockets[0].getsockname()[1]
        except Exception as exc:
            self._error = exc
        finally:
            self._started.set()

    async def _shutdown(self) -> None:
        try:
            if self._broker is not None:
                await self._broker.shutdown()
        except Exception:
            log.exception("embedded MQTT broker: unclean shutdown")
        finally:
            asyncio.get_running_loop().stop()
