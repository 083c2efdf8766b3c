"""The seed-002 agent's states, callback reasons and callback answers, spelled as ``cy_ota_agent_state_t``
names them so a log of the simulated agent reads like the device's."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from mcuota.agent.errors import AgentCode


class State(StrEnum):
    NOT_INITIALIZED = "NOT_INITIALIZED"
    EXITING = "EXITING"
    INITIALIZING = "INITIALIZING"
    AGENT_STARTED = "AGENT_STARTED"
    AGENT_WAITING = "AGENT_WAITING"
    STORAGE_OPEN = "STORAGE_OPEN"
    STORAGE_WRITE = "STORAGE_WRITE"
    STORAGE_CLOSE = "STORAGE_CLOSE"
    START_UPDATE = "START_UPDATE"
    JOB_CONNECT = "JOB_CONNECT"
    JOB_DOWNLOAD = "JOB_DOWNLOAD"
    JOB_DISCONNECT = "JOB_DISCONNECT"
    JOB_PARSE = "JOB_PARSE"
    JOB_REDIRECT = "JOB_REDIRECT"
    DATA_CONNECT = "DATA_CONNECT"
    DATA_DOWNLOAD = "DATA_DOWNLOAD"
    DATA_DISCONNECT = "DATA_DISCONNECT"
    VERIFY = "VERIFY"
    RESULT_REDIRECT = "RESULT_REDIRECT"
    RESULT_CONNECT = "RESULT_CONNECT"
    RESULT_SEND = "RESULT_SEND"
    RESULT_RESPONSE = "RESULT_RESPONSE"
    RESULT_DISCONNECT = "RESULT_DISCONNECT"
    OTA_COMPLETE = "OTA_COMPLETE"


class Reason(StrEnum):
    STATE_CHANGE = "STATE_CHANGE"
    SUCCESS = "SUCCESS"
    FAILURE = "FAILURE"


class Answer(StrEnum):
    """What the application's callback returns."""

    CONTINUE = "CONTINUE"
    STOP = "STOP"
    APP_SUCCESS = "APP_SUCCESS"
    APP_FAILED = "APP_FAILED"


@dataclass(frozen=True)
class Event:
    reason: Reason
    state: State
    percent: int = 0
    """Of the image held in the staging slot (0..100), during and after DATA_DOWNLOAD."""
    code: AgentCode | None = None
    detail: str = ""


Callback = Callable[[Event], Answer | None]
"""``None`` reads as CONTINUE, so a logging callback need not return anything."""
