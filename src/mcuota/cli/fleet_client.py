"""What the operator commands (trust, release, device, rollout) share: finding the server and the API
key, calling the REST API with httpx, and turning any failure into one line with exit status 2.

The server is ``--server`` or ``$MCUOTA_URL`` (default http://127.0.0.1:8080); the key is
``--api-key``, else ``$MCUOTA_API_KEY``, else the ``admin-api-key`` file the server wrote into
``--data-dir`` on its first start — so on the server's own machine no key needs to be copied around.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

DEFAULT_URL = "http://127.0.0.1:8080"


def add_server_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("server")
    group.add_argument("--server", metavar="URL",
                       help=f"update server (default $MCUOTA_URL or {DEFAULT_URL})")
    group.add_argument("--api-key", metavar="KEY", help="operator API key (default $MCUOTA_API_KEY, else "
                       "DIR/admin-api-key with --data-dir)")
    group.add_argument("--data-dir", metavar="DIR", help="the server's data directory, to read its admin key")
    group.add_argument("--cacert", metavar="FILE", help="CA certificate to trust for an https:// server")
    group.add_argument("--timeout", type=float, default=30.0, metavar="S",
                       help="request timeout (default 30 s)")


def add_json_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def _api_key(args: argparse.Namespace) -> str:
    from mcuota.errors import UsageError

    if args.api_key:
        return str(args.api_key)
    if os.environ.get("MCUOTA_API_KEY"):
        return os.environ["MCUOTA_API_KEY"]
    if args.data_dir:
        from pathlib import Path

        path = Path(args.data_dir) / "admin-api-key"
        try:
            key = path.read_text().strip()
        except FileNotFoundError:
            raise UsageError(f"no API key: {path} does not exist (has the server started with --data-dir "
                             f"{args.data_dir}?)") from None
        except OSError as exc:
            raise UsageError(f"cannot read the API key in {path}: {exc.strerror}") from None
        if key:
            return key
        raise UsageError(f"no API key: {path} is empty")
    raise UsageError("no API key: pass --api-key, set MCUOTA_API_KEY, or give the server's --data-dir")


class Client:
    """One server, one key; ``call`` returns the decoded JSON answer or raises a one-line error."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.url = (args.server or os.environ.get("MCUOTA_URL") or DEFAULT_URL).rstrip("/")
        self.key = _api_key(args)
        self.cacert = args.cacert
        self.timeout = args.timeout

    def call(self, method: str, path: str, *, json: Any = None, content: bytes | None = None,
             params: dict[str, Any] | None = None) -> Any:
        import httpx

        from mcuota.errors import McuotaError, UsageError

        headers = {"Authorization": f"Bearer {self.key}"}
        if content is not None:
            headers["Content-Type"] = "application/octet-stream"
        verify: Any = self.cacert if self.cacert else True
        clean = {k: v for k, v in (params or {}).items() if v is not None}
        try:
            with httpx.Client(base_url=self.url, timeout=self.timeout, verify=verify) as client:
                response = client.request(method, path, json=json, content=content, params=clean,
                                          headers=headers)
        except httpx.InvalidURL as exc:
            raise UsageError(f"invalid server URL {self.url!r}: {exc}") from None
        except httpx.UnsupportedProtocol:
            raise UsageError(f"invalid server URL {self.url!r}: use http:// or https://") from None
        except httpx.TimeoutException:
            raise UsageError(f"the update server at {self.url} did not answer within {self.timeout:g} s"
                             ) from None
        except (httpx.TransportError, OSError) as exc:
            reason = str(exc).strip() or type(exc).__name__
            raise UsageError(f"cannot reach the update server at {self.url}: {reason}") from None
        if response.status_code >= 400:
            raise McuotaError(_error_line(response))
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise McuotaError(f"the server at {self.url} answered {response.status_code} with something that "
                              "is not JSON (is it an mcuota server?)") from None


def _error_line(response: Any) -> str:
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and "error" in body:
        detail = body.get("detail")
        if isinstance(detail, list):
            detail = "; ".join(f"{'.'.join(map(str, d.get('loc', [])))}: {d.get('msg')}"
                               if isinstance(d, dict) else str(d) for d in detail)
        return f"{detail} (HTTP {response.status_code}, {body['error']})"
    return f"the server answered HTTP {response.status_code} {response.reason_phrase}"
