"""The agent's :class:`~mcuota.agent.transport.HttpPort` on a real network, with httpx.

One :class:`HttpxPort` per device, over a keep-alive connection pool that a whole simulated fleet may
share (``client=``): a fleet of hundreds then costs a handful of sockets, not one per device. The port
only moves bytes; :class:`~mcuota.agent.transport.HttpTransport` judges every answer.

Whatever goes wrong on the way (refused, reset, timed out, TLS refused, a malformed answer) is one
``AgentError(CONNECTION_LOST)`` naming what happened, which the agent retries. A body shorter than its
Content-Length is the same thing: the connection died before the answer was complete, and h11 refuses
such a body before anyone can mistake it for a short range.

Every request says ``User-Agent: mcuota-agent/<serial>``: the fleet simulator's fault proxy tells
devices apart by that header alone, so its form must not change.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx

from mcuota.agent.errors import AgentCode, AgentError
from mcuota.agent.transport import HttpReply, HttpTransport
from mcuota.errors import UsageError

USER_AGENT = "mcuota-agent/{serial}"


class HttpxPort:
    """``request(method, path, headers, body)`` against ``base_url``; ``path`` may also be a full URL
    (a job document that names another server)."""

    def __init__(self, base_url: str, *, serial: str, token: str | None = None, token_in_query: bool = False,
                 timeout_ms: int = 3000, verify: bool | str | Path = True,
                 client: httpx.Client | None = None) -> None:
        try:
            url = httpx.URL(base_url)
        except httpx.InvalidURL as exc:
            raise UsageError(f"invalid server URL {base_url!r}: {exc}") from None
        if url.scheme not in ("http", "https") or not url.host:
            raise UsageError(f"invalid server URL {base_url!r}: it must be http(s)://host[:port]")
        self.base_url = str(url).rstrip("/")
        self.serial = serial
        self.timeout = httpx.Timeout(timeout_ms / 1000)
        self.headers = {"User-Agent": USER_AGENT.format(serial=serial)}
        self.params: dict[str, str] = {}
        if token and token_in_query:
            self.params["token"] = token
        elif token:
            self.headers["Authorization"] = f"Bearer {token}"
        self._own_client = client is None
        self.client = client if client is not None else httpx.Client(verify=_tls(verify),
                                                                      timeout=self.timeout)

    def url_for(self, path: str) -> str:
        if path.startswith(("http://", "https://")):
            return path
        return f"{self.base_url}/{path.lstrip('/')}"

    def request(self, method: str, path: str, headers: Mapping[str, str], body: bytes = b"") -> HttpReply:
        url = self.url_for(path)
        what = f"{method} {path}"
        try:
            with self.client.stream(method, url, headers={**self.headers, **headers},
                                    params=self.params or None, content=body or None,
                                    timeout=self.timeout) as response:
                data = response.read()
                return HttpReply(response.status_code, dict(response.headers), data)
        except httpx.TimeoutException as exc:
            raise AgentError(AgentCode.CONNECTION_LOST,
                             f"{what}: no answer in time ({_describe(exc)})") from None
        except httpx.ConnectError as exc:
            raise AgentError(AgentCode.CONNECTION_LOST, f"{what}: cannot connect to {self.base_url} "
                             f"({_describe(exc)})") from None
        except httpx.RemoteProtocolError as exc:
            raise AgentError(AgentCode.CONNECTION_LOST, f"{what}: connection closed mid-answer "
                             f"({_describe(exc)})") from None
        except httpx.InvalidURL as exc:
            raise AgentError(AgentCode.MALFORMED_JOB_DOC, f"{what}: not a usable URL ({exc})") from None
        except (httpx.HTTPError, httpx.StreamError) as exc:
            raise AgentError(AgentCode.CONNECTION_LOST, f"{what}: {_describe(exc)}") from None

    def close(self) -> None:
        """Closes the pool only if this port made it: a shared client belongs to its owner."""
        if self._own_client:
            self.client.close()

    def __enter__(self) -> HttpxPort:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _tls(verify: bool | str | Path) -> bool | ssl.SSLContext:
    """A CA file becomes a context trusting it (httpx no longer takes a path)."""
    if isinstance(verify, bool):
        return verify
    try:
        return ssl.create_default_context(cafile=str(verify))
    except (OSError, ssl.SSLError) as exc:
        raise UsageError(f"cannot use {verify} as the server's CA file: {exc}") from None


def _describe(exc: Exception) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:200]


def seed002_http_transport(server_url: str, serial: str, token: str, **kw: Any) -> HttpTransport:
    """The seed-002 HTTP flow of ``mcuota serve`` for one device: the job document under
    ``/seed002/<serial>/``, whose File is already an absolute path on the same server. ``kw`` goes to
    :class:`HttpxPort` (timeout_ms, verify, token_in_query, client)."""
    port = HttpxPort(server_url, serial=serial, token=token, **kw)
    return HttpTransport(port, job_path=f"/seed002/{serial}/ota_update.json")
