"""What a simulated device is, as it is saved in its state directory (``device.json``): identity, layout,
how it reaches the update service, and the agent's settings. The token lives in its own file
(``token``, mode 0600), as credentials on a device live apart from its configuration."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from mcuota.agent.config import AgentConfig
from mcuota.errors import UsageError

DEFAULT_COMPANY = "anycloud"


class Protocol(StrEnum):
    """How the agent reaches the update service."""

    SEED002_HTTP = "http"
    """The seed-002 HTTP job flow at ``/seed002/<serial>/`` (Infineon's agent)."""
    DEVICE_API = "api"
    """mcuota's token API: check-in with the running version, progress and install results."""
    SEED002_MQTT = "mqtt"
    """The seed-002 MQTT flow through the broker (publish_notify / unique topic, 4 KB chunks)."""


@dataclass(frozen=True)
class DeviceConfig:
    serial: str
    layout: str
    board: str
    """The board name the update service and the job documents use (not necessarily the layout's)."""
    protocol: Protocol = Protocol.DEVICE_API
    server: str = ""
    """Base URL of the update service (HTTP protocols)."""
    mqtt: str = ""
    """``host:port`` of the broker (MQTT protocol)."""
    company: str = DEFAULT_COMPANY
    keys: tuple[str, ...] = ()
    """PEM public keys an MCUboot bootloader trusts (its development key when empty)."""
    agent: Mapping[str, Any] = field(default_factory=dict)
    """:class:`AgentConfig` settings that differ from the seed's defaults."""

    def agent_config(self) -> AgentConfig:
        try:
            return AgentConfig(board=self.board, **dict(self.agent))
        except TypeError as exc:
            raise UsageError(f"device {self.serial}: bad agent setting: {exc}") from None

    @property
    def unique_topic(self) -> str:
        return f"{self.company}/{self.board}/OTAImage/{self.serial}"

    def to_json(self) -> str:
        data = dataclasses.asdict(self)
        data["protocol"] = self.protocol.value
        data["keys"] = list(self.keys)
        data["agent"] = dict(self.agent)
        return json.dumps(data, indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> DeviceConfig:
        try:
            data = json.loads(text)
            if not isinstance(data, dict):
                raise ValueError("not a JSON object")
            data["protocol"] = Protocol(data.get("protocol", Protocol.DEVICE_API.value))
            data["keys"] = tuple(data.get("keys", ()))
            names = {f.name for f in dataclasses.fields(cls)}
            unknown = sorted(set(data) - names)
            if unknown:
                raise ValueError(f"unknown field {unknown[0]!r}")
            return cls(**data)
        except (ValueError, TypeError) as exc:
            raise UsageError(f"device.json is not a device configuration: {exc}") from None
