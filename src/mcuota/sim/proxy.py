"""A user-space fault proxy between simulated devices and the update server.

The machines mcuota runs on have no netem, and a fault injected inside the agent would only test the
agent's idea of a fault. This proxy sits on the wire instead: devices talk real HTTP/1.1 (or MQTT)
through it to the real server, and it breaks exactly one exchange the way a failing link does — the
client sees a connection reset, a short body, a changed byte or a long wait, and the server sees
whatever a server would see.

HTTP mode understands just enough HTTP/1.1 to find exchange boundaries (request line, headers,
Content-Length or chunked bodies, keep-alive). A device names itself with ``User-Agent:
mcuota-agent/<serial>``; its n-th request gets ``plan.for_device(seed, serial).network(n)``. Requests
without that header pass through untouched, so operators' tools can share the proxy. Responses are
buffered whole before they go on: that is what lets a fault land at an exact body position, and
firmware images are small.

Raw mode (``http=False``) is for MQTT: a connection is named by the client id of its CONNECT packet
(or ``tcp-<n>`` in accept order when it does not open with one) and dies after a seeded number of bytes
towards the device.

The proxy runs its own event loop in a daemon thread so that synchronous simulator code can use it as
a context manager.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import threading
from collections import Counter
from dataclasses import dataclass, field
from types import TracebackType

from mcuota.errors import McuotaError, UsageError
from mcuota.sim.faults import DeviceFaults, FaultPlan, NetFault, NetFaultKind

AGENT_PRODUCT = re.compile(rb"^\s*mcuota-agent/(\S+)", re.IGNORECASE)
HEAD_LIMIT = 64 * 1024
"""Longest request or response head accepted: far above what agents and the server send."""
RAW_WINDOW = 64 * 1024
"""Bytes towards the device within which a raw stream's cut lands."""
START_TIMEOUT_S = 10.0

_NO_BODY_STATUS = frozenset({204, 304})
BAD_GATEWAY = b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
_MQTT_CONNECT = 0x10


class ProxyError(McuotaError):
    """The proxy could not start or stop."""


@dataclass(frozen=True)
class ProxyStats:
    """A consistent snapshot of the counters. ``bytes_up`` counts what reached the server,
    ``bytes_down`` what reached the devices (after faults)."""

    connections: int = 0
    requests: int = 0
    faults: dict[str, int] = field(default_factory=dict)
    bytes_up: int = 0
    bytes_down: int = 0

    def faults_of(self, kind: NetFaultKind | str) -> int:
        return self.faults.get(str(kind), 0)


class _Counters:
    """Written from the proxy's loop, read from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._connections = 0
        self._requests = 0
        self._faults: Counter[str] = Counter()
        self._up = 0
        self._down = 0

    def add(self, *, connections: int = 0, requests: int = 0, fault: str | None = None, up: int = 0,
            down: int = 0) -> None:
        with self._lock:
            self._connections += connections
            self._requests += requests
            self._up += up
            self._down += down
            if fault is not None:
                self._faults[fault] += 1

    def snapshot(self) -> ProxyStats:
        with self._lock:
            return ProxyStats(self._connections, self._requests, dict(self._faults), self._up, self._down)


class _Closed(Exception):
    """The peer closed (or broke) the connection mid-message: the exchange cannot go on."""


@dataclass
class _Message:
    """One HTTP message as raw bytes, plus where the payload lies inside a chunked body."""

    head: bytes
    body: bytearray
    payload: list[tuple[int, int]]
    """(start, end) spans of ``body`` that are payload rather than chunk framing."""
    close_delimited: bool = False
    interim: bytes = b""
    """1xx responses that came before this one, forwarded as they are."""
    switching: bool = False
    """A 101: the connection turns into a byte tunnel after this head."""
    closing: bool = False
    """The server ends the connection after this response."""

    @property
    def payload_length(self) -> int:
        return sum(end - start for start, end in self.payload)

    def payload_offset(self, index: int) -> int:
        for start, end in self.payload:
            if index < end - start:
                return start + index
            index -= end - start
        raise IndexError(index)


def _headers(head: bytes) -> tuple[bytes, dict[bytes, bytes]]:
    """The start line and the headers (lower-case names; repeated ones joined by commas)."""
    lines = head.split(b"\r\n")
    headers: dict[bytes, bytes] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(b":")
        if not sep:
            raise _Closed(f"malformed header line {line[:40]!r}")
        key = name.strip().lower()
        headers[key] = headers[key] + b", " + value.strip() if key in headers else value.strip()
    return lines[0], headers


def _tokens(value: bytes) -> set[bytes]:
    return {token.strip().lower() for token in value.split(b",")}


async def _read_head(reader: asyncio.StreamReader) -> bytes | None:
    """A message head up to and including the blank line; ``None`` on a clean EOF between messages."""
    try:
        return await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if not exc.partial.strip():
            return None
        raise _Closed("connection closed inside a message head") from None
    except asyncio.LimitOverrunError:
        raise _Closed("message head too long") from None


async def _read_exactly(reader: asyncio.StreamReader, count: int) -> bytes:
    try:
        return await reader.readexactly(count)
    except asyncio.IncompleteReadError:
        raise _Closed("connection closed inside a message body") from None


async def _read_chunked(reader: asyncio.StreamReader, body: bytearray,
                        payload: list[tuple[int, int]]) -> None:
    while True:
        try:
            line = await reader.readuntil(b"\r\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            raise _Closed("connection closed inside a chunked body") from None
        body += line
        try:
            size = int(line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise _Closed(f"bad chunk size line {line[:40]!r}") from None
        if size == 0:
            break
        start = len(body)
        body += await _read_exactly(reader, size + 2)
        payload.append((start, start + size))
    while True:  # trailers, ended by an empty line
        try:
            line = await reader.readuntil(b"\r\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            raise _Closed("connection closed inside chunked trailers") from None
        body += line
        if line == b"\r\n":
            return


async def _read_body(reader: asyncio.StreamReader, head: bytes, headers: dict[bytes, bytes], *,
                     response: bool, no_body: bool = False) -> _Message:
    body = bytearray()
    payload: list[tuple[int, int]] = []
    if no_body:
        return _Message(head, body, payload)
    if b"chunked" in _tokens(headers.get(b"transfer-encoding", b"")):
        await _read_chunked(reader, body, payload)
        return _Message(head, body, payload)
    if b"content-length" in headers:
        try:
            length = int(headers[b"content-length"].split(b",")[0])
        except ValueError:
            raise _Closed("bad Content-Length") from None
        body += await _read_exactly(reader, length)
        return _Message(head, body, [(0, length)])
    if not response:
        return _Message(head, body, payload)
    body += await reader.read()  # no length: the body runs to the end of the connection
    return _Message(head, body, [(0, len(body))], close_delimited=True)


def _mqtt_client_id(packet: bytes) -> str | None:
    """The client id of an MQTT 3.1/3.1.1/5 CONNECT packet's variable part, or ``None`` if malformed."""
    try:
        pos = 2 + int.from_bytes(packet[0:2], "big")  # protocol name
        level = packet[pos]
        pos += 4  # level, flags, keep-alive
        if level >= 5:
            pos += _varint(packet, pos)[1] + _varint(packet, pos)[0]  # properties
        size = int.from_bytes(packet[pos:pos + 2], "big")
        if pos + 2 + size > len(packet):
            return None
        return packet[pos + 2:pos + 2 + size].decode("utf-8")
    except (IndexError, UnicodeDecodeError):
        return None


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    """(value, bytes used) of an MQTT variable byte integer at ``pos``."""
    value = 0
    for used in range(4):
        byte = data[pos + used]
        value |= (byte & 0x7F) << (7 * used)
        if not byte & 0x80:
            return value, used + 1
    raise IndexError("variable byte integer longer than 4 bytes")


class FaultProxy:
    """``with FaultProxy(upstream=("127.0.0.1", port), plan=plan, seed=7) as proxy: proxy.address``.

    Per-device request and connection numbers count from 1 in arrival order: replayable as long as
    each device makes its requests one after another, as a device does.
    """

    def __init__(self, upstream: tuple[str, int], plan: FaultPlan, seed: int, *, http: bool = True,
                 raw_window: int = RAW_WINDOW) -> None:
        if raw_window < 1:
            raise UsageError(f"raw_window = {raw_window}: a stream cut needs at least one byte")
        self.upstream = upstream
        self.plan = plan
        self.seed = seed
        self.http = http
        self.raw_window = raw_window
        self._counters = _Counters()
        self._devices: dict[str, DeviceFaults] = {}
        self._request_counts: Counter[str] = Counter()
        self._accepted = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._start_error: BaseException | None = None
        self._address: tuple[str, int] | None = None

    # -- life cycle -----------------------------------------------------------------------------------
    def start(self) -> FaultProxy:
        if self._thread is not None:
            raise UsageError("this fault proxy was already started")
        self._thread = threading.Thread(target=self._run, name="mcuota-fault-proxy", daemon=True)
        self._thread.start()
        if not self._ready.wait(START_TIMEOUT_S):
            raise ProxyError(f"fault proxy did not start within {START_TIMEOUT_S:g} s")
        if self._start_error is not None:
            self._thread.join()
            raise ProxyError(f"fault proxy could not start: {self._start_error}")
        return self

    def close(self) -> None:
        """Stop accepting, cut every open connection and join the loop thread; idempotent."""
        thread, loop, stop = self._thread, self._loop, self._stop
        if thread is None or not thread.is_alive():
            return
        if loop is not None and stop is not None:
            with contextlib.suppress(RuntimeError):  # the loop already finished on its own
                loop.call_soon_threadsafe(stop.set)
        thread.join()

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    @property
    def address(self) -> tuple[str, int]:
        if self._address is None:
            raise UsageError("the fault proxy is not running")
        return self._address

    @property
    def url(self) -> str:
        host, port = self.address
        return f"http://{host}:{port}"

    @property
    def stats(self) -> ProxyStats:
        return self._counters.snapshot()

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # reported to start(); a daemon thread has nobody else to tell
            self._start_error = self._start_error or exc
            self._ready.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        try:
            server = await asyncio.start_server(self._accept, "127.0.0.1", 0, limit=HEAD_LIMIT)
        except OSError as exc:
            self._start_error = exc
            self._ready.set()
            return
        host, port = server.sockets[0].getsockname()[:2]
        self._address = (str(host), int(port))
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            server.close()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await server.wait_closed()

    # -- connections ----------------------------------------------------------------------------------
    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._accepted += 1
        self._counters.add(connections=1)
        try:
            if self.http:
                await self._serve_http(reader, writer)
            else:
                await self._serve_raw(reader, writer, self._accepted)
        except (_Closed, ConnectionError, TimeoutError):
            pass  # one broken link; the proxy serves on
        except asyncio.CancelledError:
            pass  # the proxy is closing: ending quietly keeps asyncio from logging the cancellation
        finally:
            with contextlib.suppress(asyncio.CancelledError):
                await _close(writer)
            self._tasks.discard(task)

    def _faults(self, serial: str) -> DeviceFaults:
        faults = self._devices.get(serial)
        if faults is None:
            faults = self._devices[serial] = self.plan.for_device(self.seed, serial)
        return faults

    async def _serve_http(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        upstream: _Upstream | None = None
        try:
            while True:
                head = await _read_head(client_r)
                if head is None:
                    return
                start, headers = _headers(head)
                request = await _read_body(client_r, head, headers, response=False)
                self._counters.add(requests=1)
                method = start.split(b" ", 1)[0].upper()
                agent = AGENT_PRODUCT.match(headers.get(b"user-agent", b""))
                fault = None
                if agent is not None:
                    serial = agent.group(1).decode("utf-8", "replace")
                    self._request_counts[serial] += 1
                    fault = self._faults(serial).network(self._request_counts[serial])
                if upstream is None:
                    try:
                        upstream = await _Upstream.open(self.upstream)
                    except OSError:
                        client_w.write(BAD_GATEWAY)
                        await client_w.drain()
                        return
                response, upstream = await self._exchange(upstream, request, method)
                self._counters.add(up=len(request.head) + len(request.body))
                if response.switching:
                    await self._tunnel(client_r, client_w, response, upstream)
                    return
                keep = await self._answer(client_w, response, fault)
                if not keep or b"close" in _tokens(headers.get(b"connection", b"")):
                    return
                if upstream.closing:
                    await upstream.close()
                    upstream = None
        finally:
            if upstream is not None:
                await upstream.close()

    async def _exchange(self, upstream: _Upstream, request: _Message,
                        method: bytes) -> tuple[_Message, _Upstream]:
        """Send the request and read its final response; one retry on a fresh connection when a reused
        keep-alive connection turns out closed before answering (the server's idle timeout)."""
        for attempt in (1, 2):
            upstream.writer.write(request.head + request.body)
            try:
                await upstream.writer.drain()
                response = await upstream.read_response(method)
            except (_Closed, ConnectionError):
                if attempt == 2 or upstream.answered == 0 or upstream.got_bytes:
                    await upstream.close()  # the caller only knows the first connection
                    raise
                await upstream.close()
                upstream = await _Upstream.open(self.upstream)
                continue
            return response, upstream
        raise AssertionError("unreachable")

    async def _answer(self, client_w: asyncio.StreamWriter, response: _Message,
                      fault: NetFault | None) -> bool:
        """Deliver ``response`` with ``fault`` applied; False when the client connection must close.

        A CORRUPT or TRUNCATE that meets an empty body changes nothing and is not counted."""
        head = response.interim + response.head
        body = response.body
        keep = not response.closing
        if fault is None:
            pass
        elif fault.kind is NetFaultKind.DROP:
            self._counters.add(fault=fault.kind.value)
            return False
        elif fault.kind is NetFaultKind.CORRUPT and response.payload_length:
            body = bytearray(body)
            body[response.payload_offset(fault.corrupt_offset(response.payload_length))] ^= fault.mask
            self._counters.add(fault=fault.kind.value)
        elif fault.kind is NetFaultKind.STALL:
            self._counters.add(fault=fault.kind.value)
            await asyncio.sleep(fault.stall_s)
        elif fault.kind is NetFaultKind.TRUNCATE and body:
            self._counters.add(fault=fault.kind.value)
            body = body[:len(body) // 2]
            keep = False
        client_w.write(head + body)
        await client_w.drain()
        self._counters.add(down=len(head) + len(body))
        return keep

    async def _tunnel(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter,
                      response: _Message, upstream: _Upstream) -> None:
        """After a 101 the connection is no longer HTTP: copy bytes both ways until either side ends."""
        client_w.write(response.interim + response.head + response.body)
        await client_w.drain()
        await _pipe_both(client_r, client_w, upstream.reader, upstream.writer,
                         counters=self._counters, cut_down_at=None)

    async def _serve_raw(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter,
                         accepted: int) -> None:
        first = await _read_mqtt_connect(client_r)
        if first is None:
            return
        name = _mqtt_client_id(first[1]) if first[1] else None
        serial = name or f"tcp-{accepted}"
        self._request_counts[serial] += 1
        cut = self._faults(serial).stream_cut(self._request_counts[serial], self.raw_window)
        upstream = await _Upstream.open(self.upstream)
        try:
            upstream.writer.write(first[0] + first[1])
            await upstream.writer.drain()
            self._counters.add(up=len(first[0]) + len(first[1]))
            if await _pipe_both(client_r, client_w, upstream.reader, upstream.writer,
                                  counters=self._counters, cut_down_at=cut):
                self._counters.add(fault=NetFaultKind.DROP.value)
        finally:
            await upstream.close()


async def _read_mqtt_connect(reader: asyncio.StreamReader) -> tuple[bytes, bytes] | None:
    """(fixed header, rest) of the stream's first packet when it is an MQTT CONNECT; else the bytes
    read so far as the header with an empty rest, or ``None`` on an immediate EOF."""
    first = await reader.read(1)
    if not first:
        return None
    if first[0] != _MQTT_CONNECT:
        return first, b""
    fixed = bytearray(first)
    length = 0
    for used in range(4):
        byte = await reader.read(1)
        if not byte:
            return bytes(fixed), b""
        fixed += byte
        length |= (byte[0] & 0x7F) << (7 * used)
        if not byte[0] & 0x80:
            break
    try:
        rest = await reader.readexactly(length)
    except asyncio.IncompleteReadError as exc:
        return bytes(fixed) + exc.partial, b""
    return bytes(fixed), rest


async def _pipe_both(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter,
                     up_r: asyncio.StreamReader, up_w: asyncio.StreamWriter, *, counters: _Counters,
                     cut_down_at: int | None) -> bool:
    """Copy both ways until either side ends; True when the stream was cut at ``cut_down_at`` bytes
    towards the client."""
    cut = asyncio.Event()

    async def upward() -> None:
        while data := await client_r.read(65536):
            up_w.write(data)
            await up_w.drain()
            counters.add(up=len(data))

    async def downward() -> None:
        sent = 0
        while data := await up_r.read(65536):
            if cut_down_at is not None and sent + len(data) >= cut_down_at:
                data = data[:cut_down_at - sent]
                client_w.write(data)
                await client_w.drain()
                counters.add(down=len(data))
                cut.set()
                return
            client_w.write(data)
            await client_w.drain()
            sent += len(data)
            counters.add(down=len(data))

    tasks = [asyncio.create_task(upward()), asyncio.create_task(downward())]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
    for result in results:
        if isinstance(result, Exception) and not isinstance(result, ConnectionError | _Closed):
            raise result
    return cut.is_set()


class _Upstream:
    """One connection to the server, paired with one client connection as keep-alive requires."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.answered = 0
        self.got_bytes = False
        self.closing = False

    @classmethod
    async def open(cls, address: tuple[str, int]) -> _Upstream:
        reader, writer = await asyncio.open_connection(*address, limit=HEAD_LIMIT)
        return cls(reader, writer)

    async def read_response(self, method: bytes) -> _Message:
        self.got_bytes = False
        interim = bytearray()
        while True:
            head = await _read_head(self.reader)
            if head is None:
                raise _Closed("server closed the connection before answering")
            self.got_bytes = True
            start, headers = _headers(head)
            try:
                status = int(start.split(b" ", 2)[1])
            except (IndexError, ValueError):
                raise _Closed(f"bad status line {start[:40]!r}") from None
            if 100 <= status < 200 and status != 101:
                interim += head
                continue
            no_body = method == b"HEAD" or status in _NO_BODY_STATUS or status == 101
            message = await _read_body(self.reader, head, headers, response=True, no_body=no_body)
            self.answered += 1
            message.interim = bytes(interim)
            message.switching = status == 101
            message.closing = message.close_delimited or b"close" in _tokens(headers.get(b"connection", b""))
            self.closing = message.closing
            return message

    async def close(self) -> None:
        await _close(self.writer)


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
