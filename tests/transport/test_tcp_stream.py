"""The framed TCP image stream (seed 001's W5500 path): the receiver machine on its own, then a simulated
seed-001 device listening on 127.0.0.1 taking images from ``send_image_tcp`` and from raw sockets."""

from __future__ import annotations

import socket
import struct
import threading
import zlib
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from mcuota.device.config import DeviceConfig
from mcuota.device.device import SimDevice
from mcuota.device.tcp_listener import Served, TcpListener
from mcuota.errors import CapacityError, IntegrityError, McuotaError
from mcuota.image.version import ImageVersion
from mcuota.netutil import free_port
from mcuota.samples import sample_path
from mcuota.transport.tcp_frame import Chunk, Complete, Header, Rejected, verdict_error
from mcuota.transport.tcp_stream import (
    StreamReceiver,
    StreamRefused,
    Verdict,
    frame_header,
    send_image_tcp,
)


def _device(layout: str = "stm32-header-f103") -> tuple[SimDevice, bytes, bytes]:
    device = SimDevice(DeviceConfig("ETH1", layout, "B"))
    old = device.make_release(sample_path("stm32-header-f103", "1.0.0", "bin").read_bytes(),
                              ImageVersion(1, 0, 0))
    new = device.make_release(sample_path("stm32-header-f103", "2.0.0", "bin").read_bytes(),
                              ImageVersion(2, 0, 0))
    assert device.factory_install(old).running == "1.0.0"
    return device, new.data, old.data


@contextmanager
def _listening(device: SimDevice) -> Iterator[tuple[int, list[Served]]]:
    """The device serving one connection on a free port in a thread; its result lands in the list."""
    port = free_port()
    served: list[Served] = []
    with TcpListener(device, port=port) as listener:
        thread = threading.Thread(target=lambda: served.append(listener.serve_one(timeout=10)))
        thread.start()
        try:
            yield port, served
        finally:
            thread.join(timeout=20)
    assert served, "the listener did not finish"


def _raw(port: int, payload: bytes, *, close_early: bool = False) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(payload)
        if close_early:
            return b""
        return sock.recv(1)


# --- the receiver machine --------------------------------------------------------------------------

def test_header_layout_and_byte_by_byte_feeding() -> None:
    image = bytes(range(200))
    assert frame_header(image) == b"MOTA" + struct.pack("<II", 200, zlib.crc32(image))
    receiver = StreamReceiver(room=1000)
    events = [e for byte in frame_header(image) + image for e in receiver.feed(bytes((byte,)))]
    assert events[0] == Header(200, zlib.crc32(image))
    assert b"".join(e.data for e in events if isinstance(e, Chunk)) == image
    assert events[-1] == Complete(200, zlib.crc32(image))
    assert receiver.eof() is None


@pytest.mark.parametrize(("stream", "verdict"), [
    (b"XOTA" + struct.pack("<II", 4, 0) + b"abcd", Verdict.BAD_HEADER),
    (b"MOTA" + struct.pack("<II", 0, 0), Verdict.BAD_HEADER),
    (frame_header(b"x" * 1001) + b"x" * 1001, Verdict.TOO_LARGE),
    (b"MOTA" + struct.pack("<II", 4, zlib.crc32(b"abcd") ^ 1) + b"abcd", Verdict.CRC_MISMATCH),
    (frame_header(b"abcd") + b"abcdE", Verdict.OVERRUN),
])
def test_receiver_rejections(stream: bytes, verdict: Verdict) -> None:
    events = StreamReceiver(room=1000).feed(stream)
    assert isinstance(events[-1], Rejected)
    assert events[-1].verdict is verdict


def test_a_stream_that_stops_early_is_truncated() -> None:
    receiver = StreamReceiver(room=1000)
    receiver.feed(frame_header(b"abcdef") + b"abc")
    assert receiver.eof() == "the stream closed after 3 of 6 image bytes"


# --- a device on a port ----------------------------------------------------------------------------

@pytest.mark.parametrize("layout", ["stm32-header-f103", "stm32-header-w25q"])
def test_send_image_tcp_installs_and_the_core_prints_2_0_0(layout: str) -> None:
    device, image, _ = _device(layout)
    seen: list[tuple[int, int | None]] = []
    with _listening(device) as (port, served):
        send_image_tcp("127.0.0.1", port, image, lambda done, total: seen.append((done, total)))
    assert served[0].received.verdict is Verdict.OK
    assert served[0].boot is not None
    assert served[0].boot.running == "2.0.0"
    assert device.running == "2.0.0"
    assert seen[0] == (0, len(image))
    assert seen[-1] == (len(image), len(image))


def test_too_large_is_refused_before_any_flash_operation() -> None:
    device, _, _ = _device()
    ops = device.board.domain.op_count
    with _listening(device) as (port, served), pytest.raises(CapacityError, match="cannot hold"):
        send_image_tcp("127.0.0.1", port, b"\xab" * (device.storage.room + 1))
    assert served[0].received.verdict is Verdict.TOO_LARGE
    assert device.board.domain.op_count == ops
    assert device.reset().running == "1.0.0"


def test_crc_mismatch_answers_its_verdict_and_the_old_firmware_stays() -> None:
    device, image, _ = _device()
    with _listening(device) as (port, served):
        answer = _raw(port, b"MOTA" + struct.pack("<II", len(image), zlib.crc32(image) ^ 1) + image)
    assert answer == bytes((Verdict.CRC_MISMATCH,))
    assert served[0].boot is None
    assert device.storage.read_journal().done, "the staged bytes are forgotten"
    assert device.reset().running == "1.0.0"
    assert isinstance(verdict_error(Verdict.CRC_MISMATCH, len(image)), IntegrityError)


@pytest.mark.parametrize("which", ["older", "not an image"])
def test_the_devices_own_checks_refuse_the_image(which: str) -> None:
    device, _, old = _device()
    image = old if which == "older" else b"\x00" * 6000
    with _listening(device) as (port, served), pytest.raises(StreamRefused) as caught:
        send_image_tcp("127.0.0.1", port, image)
    assert caught.value.verdict is Verdict.REFUSED
    assert ("INVALID_VERSION" if which == "older" else "WRONG_FORMAT") in served[0].received.reason
    assert device.reset().running == "1.0.0"


def test_a_bad_header_from_a_raw_client() -> None:
    device, _, _ = _device()
    with _listening(device) as (port, served):
        answer = _raw(port, b"GET / HTTP/1.1\r\n\r\n")
    assert answer == bytes((Verdict.BAD_HEADER,))
    assert "not b'MOTA'" in served[0].received.reason


def test_a_disconnect_mid_stream_keeps_1_0_0_and_the_next_stream_resumes() -> None:
    device, image, _ = _device()
    start = device.board.snapshot()
    before = device.board.domain.op_count
    with _listening(device) as (port, _served):
        send_image_tcp("127.0.0.1", port, image)
    clean_ops = device.board.domain.op_count - before
    device.board.restore(start)
    device.power_on()

    with _listening(device) as (port, served):
        _raw(port, frame_header(image) + image[:9000], close_early=True)
    assert served[0].received.verdict is None
    assert "closed after 9000 of" in served[0].received.reason
    assert device.reset().running == "1.0.0"
    before = device.board.domain.op_count
    with _listening(device) as (port, served):
        send_image_tcp("127.0.0.1", port, image)
    assert device.running == "2.0.0"
    assert device.board.domain.op_count - before < clean_ops, "the intact steps are not programmed again"


def test_nothing_listening_is_one_clear_error() -> None:
    with pytest.raises(McuotaError, match=r"cannot connect to 127\.0\.0\.1"):
        send_image_tcp("127.0.0.1", free_port(), b"image", timeout=2)
