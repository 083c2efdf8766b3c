"""Why the agent refused or abandoned an update, named as Infineon's agent names it where it has a name.

Seed-002 refusals keep their :class:`~mcuota.transport.seed002.OtaError` names (MALFORMED_JOB_DOC,
WRONG_BOARD, INVALID_VERSION, NOT_A_HEADER, BAD_CHUNK_*); the download and storage codes the seed
agent lumps under GET_DATA / STORAGE are split so a report says which check failed.
"""

from __future__ import annotations

from enum import StrEnum

from mcuota.errors import McuotaError


class AgentCode(StrEnum):
    # job document (seed names)
    MALFORMED_JOB_DOC = "MALFORMED_JOB_DOC"
    NOT_A_JOB_DOC = "NOT_A_JOB_DOC"
    WRONG_BOARD = "WRONG_BOARD"
    INVALID_VERSION = "INVALID_VERSION"
    NO_UPDATE = "NO_UPDATE"
    # what the device can take
    TOO_LARGE = "TOO_LARGE"                    # image larger than the staging slot
    WRONG_FORMAT = "WRONG_FORMAT"              # not the image format the layout's bootloader reads
    # transport (retried, then reported)
    CONNECTION_LOST = "CONNECTION_LOST"        # the connection dropped before a complete answer
    NOT_PARTIAL = "NOT_PARTIAL"                # a range request answered 200 (whole file) instead of 206
    BAD_CONTENT_RANGE = "BAD_CONTENT_RANGE"    # 206 without a Content-Range for the bytes asked for
    HTTP_STATUS = "HTTP_STATUS"                # any other status
    TRUNCATED = "TRUNCATED"                    # fewer body bytes than the range / chunk announced
    SIZE_CHANGED = "SIZE_CHANGED"              # the file's total size changed during the download
    NOT_A_HEADER = "NOT_A_HEADER"              # chunk: bad magic / offset_to_data / image type
    BAD_CHUNK_SIZE = "BAD_CHUNK_SIZE"
    BAD_CHUNK_OFFSET = "BAD_CHUNK_OFFSET"
    BAD_CHUNK_INDEX = "BAD_CHUNK_INDEX"
    CHUNK_MISMATCH = "CHUNK_MISMATCH"
    # after the download
    VERIFY = "VERIFY"                          # hash, signature or version of the staged image
    STORAGE = "STORAGE"                        # the staging slot could not take the image
    APP_RETURNED_STOP = "APP_RETURNED_STOP"    # the application's callback stopped the update


RETRIABLE = frozenset({
    AgentCode.CONNECTION_LOST, AgentCode.NOT_PARTIAL, AgentCode.BAD_CONTENT_RANGE, AgentCode.HTTP_STATUS,
    AgentCode.TRUNCATED, AgentCode.NOT_A_HEADER, AgentCode.BAD_CHUNK_SIZE, AgentCode.BAD_CHUNK_OFFSET,
    AgentCode.BAD_CHUNK_INDEX, AgentCode.CHUNK_MISMATCH,
})
"""Failures a new attempt may cure (a flaky link or a confused proxy); the others are the offer's."""


class AgentError(McuotaError):
    """An update refused or abandoned for the reason in :attr:`code`."""

    def __init__(self, code: AgentCode, detail: str) -> None:
        super().__init__(f"{code.value}: {detail}")
        self.code = code
        self.detail = detail

    @property
    def retriable(self) -> bool:
        return self.code in RETRIABLE
