"""An in-memory null-modem cable between a YMODEM sender and receiver, with hooks to damage it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from mcuota.transport.ymodem import Aborted, Data, Done, Event, FileInfo, YmodemReceiver, YmodemSender

# (index of the write on this direction, its bytes) -> what actually arrives
Tamper = Callable[[int, bytes], bytes]


@dataclass
class Outcome:
    sender_events: list[Event] = field(default_factory=list)
    receiver_events: list[Event] = field(default_factory=list)
    to_receiver: list[bytes] = field(default_factory=list)   # writes as the receiver got them
    to_sender: list[bytes] = field(default_factory=list)

    def file(self) -> bytes:
        out = bytearray()
        for event in self.receiver_events:
            if isinstance(event, Data):
                assert event.offset == len(out), "data must arrive in order, without gaps"
                out += event.data
        return bytes(out)

    def info(self) -> FileInfo | None:
        return next((e for e in self.receiver_events if isinstance(e, FileInfo)), None)

    def last(self, side: str) -> Event:
        events = self.sender_events if side == "sender" else self.receiver_events
        return events[-1]


def connect(sender: YmodemSender, receiver: YmodemReceiver, *, forward: Tamper | None = None,
            backward: Tamper | None = None, max_rounds: int = 100_000) -> Outcome:
    """Run both machines until both finish; a quiet line fires the timers, the sender's first."""
    out = Outcome()
    counts = [0, 0]
    s2r = b""
    r2s = receiver.start().outgoing
    for _ in range(max_rounds):
        if sender.finished and receiver.finished:
            return out
        if r2s:
            data = backward(counts[1], r2s) if backward else r2s
            counts[1] += 1
            out.to_sender.append(data)
            r2s = b""
            step = sender.feed(data)
            s2r += step.outgoing
            out.sender_events += step.events
        elif s2r:
            data = forward(counts[0], s2r) if forward else s2r
            counts[0] += 1
            out.to_receiver.append(data)
            s2r = b""
            step = receiver.feed(data)
            r2s += step.outgoing
            out.receiver_events += step.events
        else:
            # The sender's retry timer is the shorter one, as in the field; the receiver's only
            # matters when the sender has nothing to repeat.
            sstep = sender.timeout()
            s2r += sstep.outgoing
            out.sender_events += sstep.events
            if not sstep.outgoing and not sstep.events:
                rstep = receiver.timeout()
                r2s += rstep.outgoing
                out.receiver_events += rstep.events
    raise AssertionError("the machines did not finish")


def ended_cleanly(outcome: Outcome) -> bool:
    return isinstance(outcome.last("sender"), Done) and isinstance(outcome.last("receiver"), Done)


def aborted(events: list[Event]) -> Aborted:
    last = events[-1]
    assert isinstance(last, Aborted), f"expected an abort, got {last!r}"
    return last
