"""A per-client request-rate limit: one token bucket per credential (device token or API key), else
per client address, so a fleet behind one NAT is not throttled as a single client while one device
stuck in a retry loop is. Refusals are 429 with ``Retry-After`` and the usual JSON error body.

In memory and per process: a limit against accidents and floods from one client, not a quota system.
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
import time
from collections.abc import Callable
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

EXEMPT = ("/healthz", "/metrics")


class TokenBuckets:
    """``rate`` tokens per second up to ``burst`` per key; pure apart from the clock it is given."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic,
                 max_keys: int = 100_000) -> None:
        self.rate = rate
        self.burst = max(1, burst)
        self.clock = clock
        self.max_keys = max_keys
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, key: str) -> float:
        """0 when the request may proceed, else the seconds until it would."""
        now = self.clock()
        with self._lock:
            tokens, last = self._buckets.get(key, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - last) * self.rate)
            if tokens >= 1:
                self._buckets[key] = (tokens - 1, now)
                wait = 0.0
            else:
                self._buckets[key] = (tokens, now)
                wait = (1 - tokens) / self.rate
            if len(self._buckets) > self.max_keys:
                self._forget_full(now)
        return wait

    def _forget_full(self, now: float) -> None:
        refill = self.burst / self.rate
        for key in [k for k, (_, last) in self._buckets.items() if now - last > refill]:
            del self._buckets[key]


def client_key(scope: Scope) -> str:
    headers = dict(scope.get("headers") or [])
    credential = headers.get(b"authorization") or headers.get(b"x-api-key")
    if credential is None:
        query = scope.get("query_string", b"")
        for part in query.split(b"&"):
            if part.startswith(b"token="):
                credential = part[6:]
    if credential:
        return "cred:" + hashlib.sha256(credential).hexdigest()[:32]
    client = scope.get("client")
    return f"addr:{client[0] if client else 'unknown'}"


class RateLimitMiddleware:
    def __init__(self, app: ASGIApp, buckets: TokenBuckets,
                 on_limited: Callable[[], Any] | None = None) -> None:
        self.app = app
        self.buckets = buckets
        self.on_limited = on_limited

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path", "") in EXEMPT:
            await self.app(scope, receive, send)
            return
        wait = self.buckets.take(client_key(scope))
        if wait <= 0:
            await self.app(scope, receive, send)
            return
        if self.on_limited is not None:
            self.on_limited()
        body = json.dumps({"error": "rate_limited",
                           "detail": f"too many requests from this client; retry in {wait:.2f} s"}).encode()
        await send({"type": "http.response.start", "status": 429, "headers": [
            (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
            (b"retry-after", str(max(1, math.ceil(wait))).encode())]})
        await send({"type": "http.response.body", "body": body})
