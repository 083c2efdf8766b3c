"""Running the server in the foreground (``mcuota serve``): bind, open the runtime, serve with uvicorn.

The order is chosen so that every start-up failure is one clear line before anything is served: the
TLS files are loaded, the socket is bound (a busy port is "cannot listen on …", not a traceback), the
database is opened and migrated, and only then does uvicorn start on the bound socket.

The MQTT side is a service (see :mod:`mcuota.server.settings`): with MQTT enabled, the entry point
``mcuota.server.mqtt.start_publisher(context) -> async context manager`` is started with the server
when that module provides it; until it does, the server says so and serves HTTP only.
"""

from __future__ import annotations

import importlib
import logging
import socket
import ssl
from collections.abc import Callable

import uvicorn

from mcuota.errors import UsageError
from mcuota.server import logs
from mcuota.server.app import create_app
from mcuota.server.runtime import Runtime
from mcuota.server.settings import ServiceFactory, Settings

log = logging.getLogger("mcuota.server")
MQTT_MODULE = "mcuota.server.mqtt"


def mqtt_services(settings: Settings) -> list[ServiceFactory]:
    """The publisher's service factory when MQTT is enabled and the publisher exists, else nothing."""
    if not settings.mqtt_enabled:
        log.info("MQTT disabled (--no-mqtt): serving HTTP only", extra={"event": "mqtt_disabled"})
        return []
    try:
        module = importlib.import_module(MQTT_MODULE)
    except ModuleNotFoundError as exc:
        if exc.name != MQTT_MODULE:
            raise
        module = None
    start: Callable[..., object] | None = getattr(module, "start_publisher", None)
    if start is None:
        log.warning("MQTT publisher not available in this build yet: serving HTTP only "
                    "(--no-mqtt silences this)", extra={"event": "mqtt_unavailable"})
        return []
    log.info("MQTT publisher enabled",
             extra={"event": "mqtt_enabled", "broker": settings.mqtt_url or "embedded"})
    return [start]  # type: ignore[list-item]


def check_tls(settings: Settings) -> None:
    if (settings.tls_cert is None) != (settings.tls_key is None):
        raise UsageError("TLS needs both --tls-cert and --tls-key")
    if settings.tls_cert is None or settings.tls_key is None:
        return
    for path in (settings.tls_cert, settings.tls_key):
        if not path.is_file():
            raise UsageError(f"TLS file {path} does not exist")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(str(settings.tls_cert), str(settings.tls_key))
    except (ssl.SSLError, OSError) as exc:
        raise UsageError(f"cannot use TLS certificate {settings.tls_cert} with key {settings.tls_key}: "
                         f"{getattr(exc, 'reason', None) or exc}") from None


def bind(host: str, port: int) -> socket.socket:
    """A listening socket, bound before the slow start-up so a busy port fails first and clearly."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto=IPPROTO_TCP matters: asyncio sets TCP_NODELAY on accepted sockets only when the listening
    # socket says TCP, and without it every keep-alive response waits ~40 ms for a delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def run(settings: Settings, *, log_format: str = "json") -> int:
    """Serve until interrupted; returns the exit status."""
    logs.configure(log_format)
    check_tls(settings)
    sock = bind(settings.host, settings.port)
    port = sock.getsockname()[1]
    try:
        runtime = Runtime.open(settings)
        settings.services = [*settings.services, *mqtt_services(settings)]
        app = create_app(settings, runtime=runtime)
        config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="on",
                                ssl_certfile=str(settings.tls_cert) if settings.tls_cert else None,
                                ssl_keyfile=str(settings.tls_key) if settings.tls_key else None,
                                timeout_graceful_shutdown=5, server_header=False)
        server = uvicorn.Server(config)
        host = f"[{settings.host}]" if ":" in settings.host else settings.host
        url = f"{settings.scheme}://{host}:{port}"
        log.info(f"listening on {url}", extra={"event": "listening", "url": url, "port": port,
                                               "data_dir": str(settings.data_dir)})
        server.run(sockets=[sock])
    finally:
        sock.close()
    return 0 if server.started else 1
