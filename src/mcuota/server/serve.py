"""Running the server in the foreground (``mcuota serve``): bind, open the runtime, serve with uvicorn.

The order is chosen so that every start-up failure is one clear line before anything is served: the
TLS files are loaded, the socket is bound (a busy port is "cannot listen on …", not a traceback), the
database is opened and migrated, and only then does uvicorn start on the bound socket.

With ``--workers N`` (N > 1) this process does the start-up chores once (migrations, the orphan-blob
sweep, the first admin key), closes its database connections, and forks N workers that each open their
own connections and serve the inherited socket; the kernel spreads the connections between them. The
parent only supervises: SIGTERM or SIGINT stops every worker gracefully, and a worker that dies after
running a while is replaced (one that dies at once stops the server, so a broken start-up cannot loop).
Each worker keeps its own caches: a token rotated or revoked through one worker is refused by every
other within :data:`mcuota.server.ttlcache.DEFAULT_TTL` seconds (at once by the worker that changed it).
Metrics and the rate limit are per worker too.

The MQTT side is a service (see :mod:`mcuota.server.settings`): with MQTT enabled, the entry point
``mcuota.server.mqtt.start_publisher(context) -> async context manager`` is started with the server
when that module provides it; until it does, the server says so and serves HTTP only. With several
workers the publisher runs in worker 0 only (one MQTT client, one subscription per topic), and moves
with it if that worker is replaced.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import signal
import socket
import ssl
import time
from collections.abc import Callable
from types import FrameType

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


RESTART_AFTER = 5.0
"""A worker that dies after running this many seconds is replaced; sooner, it stops the server."""


def run(settings: Settings, *, log_format: str = "json") -> int:
    """Serve until interrupted; returns the exit status."""
    logs.configure(log_format)
    check_tls(settings)
    if settings.workers < 1:
        raise UsageError(f"--workers {settings.workers}: at least one worker is needed")
    sock = bind(settings.host, settings.port)
    port = sock.getsockname()[1]
    try:
        runtime = Runtime.open(settings)
        services = mqtt_services(settings)
        host = f"[{settings.host}]" if ":" in settings.host else settings.host
        url = f"{settings.scheme}://{host}:{port}"
        log.info(f"listening on {url}", extra={"event": "listening", "url": url, "port": port,
                                               "data_dir": str(settings.data_dir),
                                               "workers": settings.workers})
        if settings.workers == 1:
            settings.services = [*settings.services, *services]
            return _serve(settings, runtime, sock)
        runtime.close()  # no connection may cross a fork: every worker opens its own
        return _Supervisor(settings, sock, services).run()
    finally:
        sock.close()


def _serve(settings: Settings, runtime: Runtime, sock: socket.socket) -> int:
    app = create_app(settings, runtime=runtime)
    config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="on",
                            ssl_certfile=str(settings.tls_cert) if settings.tls_cert else None,
                            ssl_keyfile=str(settings.tls_key) if settings.tls_key else None,
                            timeout_graceful_shutdown=5, server_header=False)
    server = uvicorn.Server(config)
    server.run(sockets=[sock])
    return 0 if server.started else 1


class _Supervisor:
    """The parent of ``--workers N``: forks the workers, replaces one that dies, stops them all."""

    def __init__(self, settings: Settings, sock: socket.socket, services: list[ServiceFactory]) -> None:
        self.settings = settings
        self.sock = sock
        self.services = services
        self.workers: dict[int, tuple[int, float]] = {}  # pid -> (index, started at)
        self.stopping = False

    def run(self) -> int:
        previous = {sig: signal.signal(sig, self._stop) for sig in (signal.SIGTERM, signal.SIGINT)}
        status = 0
        try:
            for index in range(self.settings.workers):
                self._fork(index)
            while self.workers:
                pid, wait_status = os.waitpid(-1, 0)
                if pid not in self.workers:
                    continue
                index, started = self.workers.pop(pid)
                code = os.waitstatus_to_exitcode(wait_status)
                if self.stopping:
                    status = max(status, 1 if code > 0 else 0)
                    continue
                ran = time.monotonic() - started
                if ran >= RESTART_AFTER:
                    log.error(f"worker {index} exited with status {code} after {ran:.0f} s: replacing it",
                              extra={"event": "worker_replaced", "worker": index, "status": code})
                    self._fork(index)
                    continue
                log.error(f"worker {index} exited with status {code} during start-up: stopping the server",
                          extra={"event": "worker_failed", "worker": index, "status": code})
                status = 1
                self._stop(signal.SIGTERM, None)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return status

    def _stop(self, signum: int, _frame: FrameType | None) -> None:
        self.stopping = True
        for pid in list(self.workers):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    def _fork(self, index: int) -> None:
        pid = os.fork()
        if pid:
            self.workers[pid] = (index, time.monotonic())
            return
        code = 1
        try:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.default_int_handler)
            logs.set_worker(index)
            settings = self.settings
            settings.services = [*settings.services, *(self.services if index == 0 else [])]
            code = _serve(settings, Runtime.open(settings, start_up=False), self.sock)
        except KeyboardInterrupt:
            code = 0
        except UsageError as exc:
            log.error(str(exc), extra={"event": "worker_failed"})
        except BaseException as exc:  # a worker must never unwind into the parent's code
            log.error("worker failed", exc_info=exc, extra={"event": "worker_failed"})
        finally:
            logging.shutdown()
            os._exit(code)
