"""Why a seed-002 message or chunk was refused, named as Infineon's OTA agent names it.

The agent (``cy_ota_agent.c``, ``cy_ota_mqtt.c``) reports ``CY_RSLT_OTA_ERROR_MALFORMED_JOB_DOC``,
``..._NOT_A_JOB_DOC``, ``..._WRONG_BOARD``, ``..._INVALID_VERSION`` and ``..._NOT_A_HEADER``; mcuota's
agent reports the same codes so a log line reads like the device's. The chunk checks the C agent
lumps under NOT_A_HEADER are split (offset, size, index, mismatch) because a reassembler that says
*which* field was wrong is one that can be debugged; the gap codes (INCOMPLETE, TOO_LARGE) are mcuota's.
"""

from __future__ import annotations

from enum import Enum

from mcuota.errors import FormatError


class OtaError(Enum):
    """The reason a seed-002 message or chunk was refused."""

    MALFORMED_JOB_DOC = "MALFORMED_JOB_DOC"      # not JSON, not an object, a field missing or invalid
    NOT_A_JOB_DOC = "NOT_A_JOB_DOC"              # well-formed, but its "Message" is not one expected here
    WRONG_BOARD = "WRONG_BOARD"                  # job document for another board
    INVALID_VERSION = "INVALID_VERSION"          # offered version not newer than the running one
    NOT_A_HEADER = "NOT_A_HEADER"                # chunk: short, bad magic, bad offset_to_data or image type
    BAD_CHUNK_SIZE = "BAD_CHUNK_SIZE"            # chunk: data_size disagrees with the payload or the limits
    BAD_CHUNK_OFFSET = "BAD_CHUNK_OFFSET"        # chunk: data runs past total_size
    BAD_CHUNK_INDEX = "BAD_CHUNK_INDEX"          # chunk: index/total_num_payloads disagree with offset/size
    CHUNK_MISMATCH = "CHUNK_MISMATCH"            # chunk: disagrees with chunks already received
    TOO_LARGE = "TOO_LARGE"                      # image larger than the device accepts
    INCOMPLETE = "INCOMPLETE"                    # image asked for while bytes are still missing


class Seed002Error(FormatError):
    """A seed-002 message or chunk refused for the reason in :attr:`code`; ``str()`` names the field."""

    def __init__(self, code: OtaError, detail: str) -> None:
        super().__init__(f"{code.value}: {detail}")
        self.code = code
        self.detail = detail
