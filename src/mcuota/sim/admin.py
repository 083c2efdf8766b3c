"""The operator's side of a rehearsal: the update service's admin REST API, called the way the
``mcuota trust/release/device/rollout`` commands call it, on one kept-alive connection so that
registering a thousand devices costs a thousand requests and not a thousand TCP handshakes."""

from __future__ import annotations

from typing import Any

import httpx

from mcuota.errors import McuotaError


class AdminError(McuotaError):
    """The update service refused an operator request."""


class AdminApi:
    def __init__(self, url: str, api_key: str, *, timeout: float = 30.0, verify: bool | str = True) -> None:
        self.url = url.rstrip("/")
        self.client = httpx.Client(base_url=self.url, timeout=timeout, verify=verify,
                                   headers={"Authorization": f"Bearer {api_key}"})

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> AdminApi:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self.client.request(method, f"/api/v1{path}", **kwargs)
        except httpx.HTTPError as exc:
            raise AdminError(f"cannot reach the update service at {self.url}: {exc}") from None
        if response.status_code >= 400:
            try:
                body = response.json()
                detail = f"{body.get('detail')} ({body.get('error')})"
            except ValueError:
                detail = response.reason_phrase
            raise AdminError(f"{method} {path} answered HTTP {response.status_code}: {detail}")
        return response.json() if response.content else None

    def ensure_board(self, name: str) -> None:
        """Create board ``name`` unless it exists."""
        if any(b.get("name") == name for b in self._call("GET", "/boards")):
            return
        self._call("POST", "/boards", json={"name": name})

    def trust(self, pem: str, board: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"pem": pem}
        if board:
            body["board"] = board
        result: dict[str, Any] = self._call("POST", "/trust/keys", json=body)
        return result

    def upload_release(self, data: bytes, *, board: str, image_format: str | None = None,
                       version: str | None = None) -> dict[str, Any]:
        params = {"board": board}
        if image_format:
            params["format"] = image_format
        if version:
            params["version"] = version
        result: dict[str, Any] = self._call("POST", "/releases", content=data, params=params,
                                            headers={"Content-Type": "application/octet-stream"})
        return result

    def add_device(self, serial: str, *, board: str, version: str, tags: list[str] | None = None) -> str:
        """Register a device; its token (shown once)."""
        result = self._call("POST", "/devices", json={"serial": serial, "board": board, "version": version,
                                                       "tags": tags or []})
        return str(result["token"])

    def create_rollout(self, release_id: int, *, board: str, stages: list[int], halt_failure_rate: float,
                       min_attempts: int, max_attempts: int | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"release_id": release_id, "board": board, "stages": stages,
                                "halt_failure_rate": halt_failure_rate, "min_attempts": min_attempts}
        if max_attempts is not None:
            body["max_attempts"] = max_attempts
        result: dict[str, Any] = self._call("POST", "/rollouts", json=body)
        return result

    def rollout(self, rollout_id: int) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", f"/rollouts/{rollout_id}")
        return result
