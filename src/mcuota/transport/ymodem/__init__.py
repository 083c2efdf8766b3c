"""YMODEM as ST's AN4657 IAP bootloaders and Debian's lrzsz speak it: sans-I/O sender and receiver.

Both machines take the line's bytes (``feed``) and the caller's notice that the line stayed quiet
(``timeout``), and return a :class:`Step`: bytes to write, then events. No clock, no port, no file:
``mcuota.transport.ymodem_serial`` drives them over a serial port, the tests drive them in memory.
"""

from mcuota.transport.ymodem.events import (
    Aborted,
    AbortedBy,
    Data,
    Done,
    Event,
    FileInfo,
    Progress,
    Step,
)
from mcuota.transport.ymodem.packets import (
    ABORT,
    LARGE_BLOCK,
    SMALL_BLOCK,
    FileHeader,
    build_header_payload,
    build_packet,
    crc16,
    end_of_batch_packet,
    parse_header_payload,
)
from mcuota.transport.ymodem.receiver import EotPolicy, YmodemReceiver
from mcuota.transport.ymodem.sender import YmodemSender

__all__ = [
    "ABORT",
    "LARGE_BLOCK",
    "SMALL_BLOCK",
    "Aborted",
    "AbortedBy",
    "Data",
    "Done",
    "EotPolicy",
    "Event",
    "FileHeader",
    "FileInfo",
    "Progress",
    "Step",
    "YmodemReceiver",
    "YmodemSender",
    "build_header_payload",
    "build_packet",
    "crc16",
    "end_of_batch_packet",
    "parse_header_payload",
]
