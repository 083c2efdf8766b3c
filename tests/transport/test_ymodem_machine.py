"""The YMODEM sender and receiver against each other in memory, and each against hand-made bytes for
the faults a real line and real peers produce."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ymodem_wire import aborted, connect, ended_cleanly

from mcuota.errors import FormatError, UsageError
from mcuota.transport.ymodem import (
    ABORT,
    AbortedBy,
    Data,
    Done,
    EotPolicy,
    FileHeader,
    FileInfo,
    Progress,
    YmodemReceiver,
    YmodemSender,
    build_packet,
    crc16,
    end_of_batch_packet,
    parse_header_payload,
)
from mcuota.transport.ymodem.packets import ACK, CAN, CRC_REQUEST, EOT, NAK, SOH, STX

C, ACK_B, NAK_B, EOT_B = bytes((CRC_REQUEST,)), bytes((ACK,)), bytes((NAK,)), bytes((EOT,))
EDGE_SIZES = [0, 1, 127, 128, 129, 1023, 1024, 1025]


def payload(size: int, seed: int = 1) -> bytes:
    return random.Random(seed).randbytes(size)


def header_packet(name: str = "fw.bin", size: int | None = 3000) -> bytes:
    body = name.encode() + b"\0" + (b"" if size is None else str(size).encode())
    return build_packet(0, body, pad=0)


def receiver_after_header(size: int | None = 3000, **kwargs: object) -> YmodemReceiver:
    receiver = YmodemReceiver(**kwargs)  # type: ignore[arg-type]
    receiver.start()
    step = receiver.feed(header_packet(size=size))
    assert step.outgoing == ACK_B + C
    return receiver


# -- round trips ------------------------------------------------------------------------------------

@settings(max_examples=40, deadline=None)
@given(size=st.sampled_from(EDGE_SIZES) | st.integers(0, 6000),
       block=st.sampled_from([128, 1024]), policy=st.sampled_from(list(EotPolicy)))
def test_round_trip_is_byte_identical(size: int, block: int, policy: EotPolicy) -> None:
    data = payload(size, seed=size)
    outcome = connect(YmodemSender("app.bin", data, block_size=block),
                      YmodemReceiver(max_size=8192, eot_policy=policy))
    assert ended_cleanly(outcome)
    assert outcome.info() == FileInfo("app.bin", size)
    assert outcome.file() == data
    progress = [e for e in outcome.sender_events if isinstance(e, Progress)]
    assert [p.done for p in progress] == sorted(p.done for p in progress)
    assert (progress[-1].done if progress else 0) == size


@pytest.mark.parametrize("size", EDGE_SIZES)
def test_last_block_padding_is_cut_by_the_declared_size(size: int) -> None:
    data = payload(size)
    outcome = connect(YmodemSender("a.bin", data), YmodemReceiver())
    assert outcome.file() == data
    blocks = [w for w in outcome.to_receiver if w[:1] in (bytes((SOH,)), bytes((STX,))) and w[1] != 0]
    sent = b"".join(block[3:-2] for block in blocks)
    assert sent[:size] == data
    assert set(sent[size:]) <= {0x1A}
    assert len(sent) - size < (128 if size % 1024 <= 128 else 1024)


def test_sequence_numbers_wrap_after_255_blocks() -> None:
    data = payload(300 * 128 + 5)
    outcome = connect(YmodemSender("big.bin", data, block_size=128), YmodemReceiver())
    assert ended_cleanly(outcome)
    assert outcome.file() == data


def test_sender_uses_small_blocks_only_for_a_short_tail() -> None:
    sender = YmodemSender("a.bin", payload(1024 + 100))
    sender.feed(C)
    sender.feed(ACK_B)
    assert sender.feed(C).outgoing[0] == STX
    assert sender.feed(ACK_B).outgoing[0] == SOH


# -- line faults ------------------------------------------------------------------------------------

def test_crc_error_is_nakked_and_the_block_resent() -> None:
    data = payload(5000)

    def flip(index: int, chunk: bytes) -> bytes:
        return chunk[:500] + bytes((chunk[500] ^ 0x10,)) + chunk[501:] if index == 2 else chunk

    sender = YmodemSender("a.bin", data)
    outcome = connect(sender, YmodemReceiver(eot_policy=EotPolicy.ACK_FIRST), forward=flip)
    assert ended_cleanly(outcome)
    assert outcome.file() == data
    assert sender.retransmissions == 1
    assert NAK_B in outcome.to_sender


def test_lost_ack_makes_a_repeat_that_is_acked_and_dropped() -> None:
    data = payload(4000)
    acks = [0]

    def lose_second_ack(index: int, chunk: bytes) -> bytes:
        if chunk == ACK_B:
            acks[0] += 1
            if acks[0] == 3:
                return b""
        return chunk

    sender = YmodemSender("a.bin", data)
    outcome = connect(sender, YmodemReceiver(eot_policy=EotPolicy.ACK_FIRST), backward=lose_second_ack)
    assert ended_cleanly(outcome)
    assert outcome.file() == data
    assert sender.retransmissions == 1
    assert sum(isinstance(e, Data) for e in outcome.receiver_events) == 4


def test_lost_ack_of_block_zero_gets_ack_and_c_again() -> None:
    receiver = receiver_after_header()
    assert receiver.feed(header_packet()).outgoing == ACK_B + C
    assert receiver.file == FileInfo("fw.bin", 3000)


@pytest.mark.parametrize("noise", [b"\xff\x00\x55", b"\x01\x07\x07", b"\x18\x43", b"\x02"])
def test_line_noise_between_packets_is_skipped(noise: bytes) -> None:
    data = payload(3000)

    def noisy(index: int, chunk: bytes) -> bytes:
        return noise + chunk if index in (1, 3) else chunk

    sender = YmodemSender("a.bin", data)
    outcome = connect(sender, YmodemReceiver(), forward=noisy)
    assert ended_cleanly(outcome)
    assert outcome.file() == data


def test_packet_cut_short_is_nakked_after_the_timeout() -> None:
    receiver = receiver_after_header()
    packet = build_packet(1, payload(1024))
    assert receiver.feed(packet[:600]) .outgoing == b""
    assert receiver.timeout().outgoing == NAK_B
    step = receiver.feed(packet)
    assert step.outgoing == ACK_B
    assert step.events == [Data(0, packet[3:-2])]


def test_wrong_block_number_aborts() -> None:
    receiver = receiver_after_header()
    receiver.feed(build_packet(1, payload(1024)))
    step = receiver.feed(build_packet(3, payload(1024)))
    assert step.outgoing == ABORT
    assert "expected block 2, got block 3" in aborted(step.events).reason
    assert receiver.finished
    assert receiver.feed(build_packet(2, payload(1024))).events == []


def test_data_block_before_the_header_aborts() -> None:
    receiver = YmodemReceiver()
    receiver.start()
    step = receiver.feed(build_packet(1, b"x"))
    assert step.outgoing == ABORT
    assert "before the file header" in aborted(step.events).reason


def test_more_blocks_than_the_declared_size_abort() -> None:
    receiver = receiver_after_header(size=100)
    assert receiver.feed(build_packet(1, payload(100))).events == [Data(0, payload(100))]
    step = receiver.feed(build_packet(2, payload(100)))
    assert step.outgoing == ABORT
    assert "more than the 100 bytes" in aborted(step.events).reason


def test_too_many_bad_blocks_abort_both_ends() -> None:
    def ruin(index: int, chunk: bytes) -> bytes:
        return chunk[:-1] + bytes((chunk[-1] ^ 1,)) if len(chunk) > 1000 else chunk

    sender = YmodemSender("a.bin", payload(3000), max_retries=4)
    outcome = connect(sender, YmodemReceiver(max_errors=20), forward=ruin)
    reason = aborted(outcome.sender_events).reason
    assert "block 1 was not accepted after 4 retries" in reason
    assert aborted(outcome.receiver_events).by is AbortedBy.PEER
    assert not any(isinstance(e, Data) for e in outcome.receiver_events)


def test_receiver_gives_up_after_its_own_error_limit() -> None:
    receiver = receiver_after_header(max_errors=3)
    bad = bytearray(build_packet(1, payload(1024)))
    bad[100] ^= 0xFF
    assert receiver.feed(bytes(bad)).outgoing == NAK_B
    assert receiver.timeout().outgoing == NAK_B
    step = receiver.feed(bytes(bad))
    assert step.outgoing == ABORT
    assert "CRC error" in aborted(step.events).reason


# -- starting and timeouts --------------------------------------------------------------------------

def test_receiver_asks_with_c_until_a_sender_starts_then_gives_up() -> None:
    receiver = YmodemReceiver(start_attempts=3)
    assert receiver.start().outgoing == C
    assert receiver.timeout().outgoing == C
    assert receiver.timeout().outgoing == C
    step = receiver.timeout()
    assert step.outgoing == ABORT
    assert aborted(step.events).reason == "no sender answered"


def test_sender_waits_for_c_and_gives_up() -> None:
    sender = YmodemSender("a.bin", b"x", start_attempts=2)
    assert sender.feed(b"\x06\x15zz").outgoing == b""  # nothing but 'C' starts a YMODEM transfer
    assert sender.timeout().outgoing == b""
    step = sender.timeout()
    assert step.outgoing == ABORT
    assert "never asked" in aborted(step.events).reason


def test_sender_resends_on_timeout() -> None:
    sender = YmodemSender("a.bin", payload(10))
    header = sender.feed(C).outgoing
    assert sender.timeout().outgoing == header
    assert sender.retransmissions == 1


def test_receiver_empty_batch_ends_without_a_file() -> None:
    receiver = YmodemReceiver()
    receiver.start()
    step = receiver.feed(end_of_batch_packet())
    assert step.outgoing == ACK_B
    assert step.events == [Done()]
    assert receiver.file is None


# -- the end of the file ----------------------------------------------------------------------------

def test_st_receiver_acks_the_first_eot() -> None:
    receiver = receiver_after_header(size=10, eot_policy=EotPolicy.ACK_FIRST)
    receiver.feed(build_packet(1, payload(10)))
    assert receiver.feed(EOT_B).outgoing == ACK_B + C
    step = receiver.feed(end_of_batch_packet())
    assert (step.outgoing, step.events) == (ACK_B, [Done()])


def test_reference_receiver_naks_the_first_eot_and_acks_the_second() -> None:
    receiver = receiver_after_header(size=10, eot_policy=EotPolicy.NAK_FIRST)
    receiver.feed(build_packet(1, payload(10)))
    assert receiver.feed(EOT_B).outgoing == NAK_B
    assert receiver.feed(EOT_B).outgoing == ACK_B + C
    assert receiver.feed(EOT_B).outgoing == ACK_B + C  # our ACK was lost: say it again


@pytest.mark.parametrize("policy", list(EotPolicy))
def test_sender_handles_both_eot_habits(policy: EotPolicy) -> None:
    sender = YmodemSender("a.bin", payload(10))
    outcome = connect(sender, YmodemReceiver(eot_policy=policy))
    assert ended_cleanly(outcome)
    eots = sum(w == EOT_B for w in outcome.to_receiver)
    assert eots == (2 if policy is EotPolicy.NAK_FIRST else 1)
    assert sender.retransmissions == (1 if policy is EotPolicy.NAK_FIRST else 0)


def test_eot_before_the_declared_size_aborts() -> None:
    receiver = receiver_after_header(size=2000, eot_policy=EotPolicy.ACK_FIRST)
    receiver.feed(build_packet(1, payload(1024)))
    step = receiver.feed(EOT_B)
    assert step.outgoing == ABORT
    assert "after 1024 of 2000 bytes" in aborted(step.events).reason


def test_receiver_finishes_when_the_sender_never_closes_the_batch() -> None:
    receiver = receiver_after_header(size=10, eot_policy=EotPolicy.ACK_FIRST, max_errors=3)
    receiver.feed(build_packet(1, payload(10)))
    receiver.feed(EOT_B)
    assert receiver.timeout().outgoing == C
    assert receiver.timeout().outgoing == C
    assert receiver.timeout().events == [Done()]


def test_sender_finishes_when_the_end_of_batch_is_not_acked() -> None:
    sender = YmodemSender("a.bin", b"")
    for answer in (C, ACK_B, C, ACK_B):
        sender.feed(answer)
    assert sender.feed(C).outgoing == end_of_batch_packet()
    assert sender.timeout().events == [Done()]


def test_second_file_in_the_batch_is_refused() -> None:
    receiver = receiver_after_header(size=1, eot_policy=EotPolicy.ACK_FIRST)
    receiver.feed(build_packet(1, b"x"))
    receiver.feed(EOT_B)
    step = receiver.feed(header_packet("other.bin", 5))
    assert step.outgoing == ABORT
    assert "second file (other.bin)" in aborted(step.events).reason


# -- cancelling and size limits ---------------------------------------------------------------------

def test_sender_abort_reaches_the_receiver() -> None:
    receiver = receiver_after_header()
    receiver.feed(build_packet(1, payload(1024)))
    sender = YmodemSender("a.bin", payload(10))
    step = sender.abort("user pressed Ctrl-C")
    assert step.outgoing == ABORT
    assert aborted(step.events).by is AbortedBy.LOCAL
    got = receiver.feed(step.outgoing)
    assert aborted(got.events).by is AbortedBy.PEER
    assert got.outgoing == b""


def test_receiver_abort_reaches_the_sender() -> None:
    sender = YmodemSender("a.bin", payload(3000))
    sender.feed(C)
    sender.feed(ACK_B + C)
    step = sender.feed(YmodemReceiver().abort("flash write failed").outgoing)
    assert aborted(step.events).reason == "the receiver cancelled the transfer"
    assert sender.finished


def test_single_can_is_noise_for_the_sender() -> None:
    sender = YmodemSender("a.bin", payload(10))
    assert sender.feed(bytes((CAN,)) + C).outgoing[:1] == bytes((SOH,))
    assert not sender.finished


def test_file_too_large_is_refused_before_any_data() -> None:
    data = payload(5000)
    outcome = connect(YmodemSender("big.bin", data), YmodemReceiver(max_size=4096))
    reason = aborted(outcome.receiver_events).reason
    assert reason == "big.bin is 5000 bytes, more than the 4096 bytes there is room for"
    assert not any(isinstance(e, Data | FileInfo) for e in outcome.receiver_events)
    assert aborted(outcome.sender_events).by is AbortedBy.PEER
    assert outcome.to_sender[-1] == ABORT


def test_file_exactly_max_size_is_accepted() -> None:
    data = payload(4096)
    outcome = connect(YmodemSender("fit.bin", data), YmodemReceiver(max_size=4096))
    assert ended_cleanly(outcome)
    assert outcome.file() == data


def test_unannounced_size_is_bounded_while_it_arrives() -> None:
    receiver = receiver_after_header(size=None, max_size=1500)
    assert receiver.feed(build_packet(1, payload(1024))).outgoing == ACK_B
    step = receiver.feed(build_packet(2, payload(1024)))
    assert step.outgoing == ABORT
    assert "more than the 1500 bytes" in aborted(step.events).reason


# -- framing and block 0 ----------------------------------------------------------------------------

def test_crc_is_crc16_xmodem() -> None:
    assert crc16(b"123456789") == 0x31C3  # the catalogue check value of CRC-16/XMODEM


def test_block_zero_as_lrzsz_writes_it() -> None:
    assert parse_header_payload(b"fw.bin\x0012345 14567123456 100644 0 1 12345\x00\x00") == \
        FileHeader("fw.bin", 12345)
    assert parse_header_payload(b"fw.bin\x00\x00") == FileHeader("fw.bin", None)
    assert parse_header_payload(b"\x00" * 128) is None


@pytest.mark.parametrize(("body", "problem"), [
    (b"fw.bin\x00-12", "not a decimal number"),
    (b"fw.bin", "not NUL-terminated"),
])
def test_bad_block_zero_is_a_format_error_and_aborts(body: bytes, problem: str) -> None:
    with pytest.raises(FormatError, match=problem):
        parse_header_payload(body)
    receiver = YmodemReceiver()
    receiver.start()
    step = receiver.feed(build_packet(0, body, pad=0 if b"\0" in body else 0x41))
    assert step.outgoing == ABORT
    assert problem in aborted(step.events).reason


def test_sender_refuses_impossible_parameters() -> None:
    with pytest.raises(UsageError):
        YmodemSender("a.bin", b"", block_size=512)
    with pytest.raises(FormatError):
        YmodemSender("", b"")
