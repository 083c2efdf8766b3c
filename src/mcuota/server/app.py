"""``create_app(settings)``: the update server as an ASGI app. No module-level app, engine or state.

Start-up (the lifespan) opens the :class:`~mcuota.server.runtime.Runtime` — data directory, database
migrated to the newest revision, blob store swept of orphans, first admin key — unless ``mcuota serve``
already opened it, then starts the services in ``settings.services`` (the MQTT publisher's hook) in
order; shutdown stops them in reverse order and closes the database. ``GET /healthz`` answers 200 only
once all of that is done.

Every refusal is a 4xx with ``{"error": code, "detail": …}``; malformed JSON is 400, a body that
parses but does not fit is 422, and an unexpected failure is a 500 with the same shape and no
traceback (the traceback goes to the log).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mcuota import __version__
from mcuota.errors import McuotaError
from mcuota.server import api_admin, api_device, api_seed002
from mcuota.server.errors import ServiceError
from mcuota.server.logs import AccessSummary
from mcuota.server.metrics import CONTENT_TYPE
from mcuota.server.ratelimit import RateLimitMiddleware, TokenBuckets
from mcuota.server.runtime import Runtime
from mcuota.server.settings import ServiceContext, Settings

log = logging.getLogger("mcuota.server")
access_log = logging.getLogger("mcuota.server.access")

_STATUS_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
                 405: "method_not_allowed", 406: "not_acceptable", 413: "too_large",
                 415: "unsupported_media_type", 429: "rate_limited", 503: "unavailable"}


def error_body(code: str, detail: Any, **extra: Any) -> dict[str, Any]:
    return {"error": code, "detail": detail, **extra}


def create_app(settings: Settings, *, runtime: Runtime | None = None) -> FastAPI:
    """The server for ``settings``; ``runtime`` is an already opened one (``mcuota serve`` opens it
    first so start-up failures are one line), else the lifespan opens it."""

    summary = None if settings.access_log else AccessSummary(access_log)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        current = runtime if runtime is not None else await run_in_threadpool(Runtime.open, settings)
        app.state.runtime = current
        context = ServiceContext(settings, current.fleet, current.fleet,
                                 logging.getLogger("mcuota.server.services"))
        try:
            async with AsyncExitStack() as services:
                for factory in settings.services:
                    await services.enter_async_context(factory(context))
                app.state.ready = True
                log.info("server ready", extra={"event": "ready", "services": len(settings.services)})
                yield
                app.state.ready = False
        finally:
            if summary is not None:
                summary.flush()
            app.state.runtime = None
            current.close()

    app = FastAPI(title="mcuota update server", version=__version__, lifespan=lifespan,
                  description="Releases, devices and staged rollouts for over-the-air firmware updates; "
                              "the device API, the seed-002 HTTP flow and the operator API.")
    app.state.runtime = None
    app.state.ready = False
    _install_error_handlers(app)

    @app.get("/healthz", tags=["server"], responses={503: {"description": "starting or stopping"}})
    def healthz(request: Request) -> JSONResponse:
        if not request.app.state.ready:
            return JSONResponse(error_body("starting", "the server is not ready"), status_code=503)
        return JSONResponse({"status": "ok", "version": __version__})

    @app.get("/metrics", tags=["server"], response_class=Response,
             responses={200: {"content": {CONTENT_TYPE: {}}, "description": "Prometheus text format"}})
    def metrics(request: Request) -> Response:
        current: Runtime | None = request.app.state.runtime
        if current is None:
            return JSONResponse(error_body("starting", "the server is not ready"), status_code=503)
        return Response(current.metrics.render(), media_type=CONTENT_TYPE)

    app.include_router(api_admin.router)
    app.include_router(api_device.router)
    app.include_router(api_seed002.router)

    if settings.rate_limit > 0:
        buckets = TokenBuckets(settings.rate_limit, settings.rate_burst)

        def count_limited() -> None:
            current: Runtime | None = app.state.runtime
            if current is not None:
                current.metrics.rate_limited.inc()

        app.add_middleware(RateLimitMiddleware, buckets=buckets, on_limited=count_limited)
    app.add_middleware(ObserveMiddleware, summary=summary)
    return app


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ServiceError)
    async def service_error(request: Request, exc: ServiceError) -> JSONResponse:
        headers = {}
        if exc.status == 401:
            headers["WWW-Authenticate"] = "Bearer"
        if exc.status == 416 and "size" in exc.extra:
            headers["Content-Range"] = f"bytes */{exc.extra['size']}"
        extra = {k: v for k, v in exc.extra.items() if k != "size"}
        return JSONResponse(error_body(exc.code, str(exc), **extra), status_code=exc.status, headers=headers)

    @app.exception_handler(McuotaError)
    async def mcuota_error(request: Request, exc: McuotaError) -> JSONResponse:
        return JSONResponse(error_body("bad_request", str(exc)), status_code=400)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [{"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg", ""))[:300],
                     "type": str(e.get("type", ""))} for e in exc.errors()]
        if any(p["type"] == "json_invalid" for p in problems):
            return JSONResponse(error_body("malformed_json", "the request body is not valid JSON"),
                                status_code=400)
        return JSONResponse(error_body("invalid_request", problems), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _STATUS_CODES.get(exc.status_code, f"http_{exc.status_code}")
        return JSONResponse(error_body(code, exc.detail), status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("unexpected error", exc_info=exc, extra={"path": request.url.path})
        return JSONResponse(error_body("internal_error", "the server failed to handle this request; see its "
                                       "log"), status_code=500)


class ObserveMiddleware:
    """Access log and request metrics, labelled by route template. With a ``summary`` (the default,
    see :class:`~mcuota.server.logs.AccessSummary`) successful requests are summed; refusals and
    failures always get their own line, as every request does without one (``--access-log``)."""

    def __init__(self, app: ASGIApp, summary: AccessSummary | None = None) -> None:
        self.app = app
        self.summary = summary

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        request_id = os.urandom(8).hex()  # 16 hex digits like uuid4().hex[:16], for less

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            elapsed = time.perf_counter() - started
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            app = scope.get("app")
            runtime: Runtime | None = getattr(getattr(app, "state", None), "runtime", None)
            if runtime is not None:
                runtime.metrics.requests.labels(scope["method"], template, str(status)).inc()
                runtime.metrics.latency.labels(template).observe(elapsed)
            if status < 400 and template in ("/healthz", "/metrics"):
                pass  # probes and scrapes: counted in the metrics only
            elif status < 400 and self.summary is not None:
                self.summary.add(scope["method"], template, status, elapsed)
            else:
                client = scope.get("client")
                access_log.info("request", extra={
                    "request_id": request_id, "method": scope["method"], "path": scope.get("path", ""),
                    "route": template, "status": status, "duration_ms": round(elapsed * 1000, 2),
                    "client": client[0] if client else None})
