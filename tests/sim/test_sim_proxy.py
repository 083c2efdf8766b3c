"""The fault proxy in front of a real HTTP server (and a raw MQTT-like stream), seen as a client sees it."""

from __future__ import annotations

import gc
import random
import socket
import threading
import time
import warnings
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from mcuota.errors import UsageError
from mcuota.sim.faults import FaultPlan, NetFaultKind
from mcuota.sim.proxy import FaultProxy, ProxyError

BLOB = random.Random(1).randbytes(48 * 1024)
SEED = 7


class Upstream(ThreadingHTTPServer):
    """A tiny update server: Range downloads, a chunked answer, an echo, and a close-delimited body."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.lock = threading.Lock()
        self.seen: list[tuple[str, int]] = []

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def paths(self) -> list[str]:
        with self.lock:
            return [path for path, _ in self.seen]

    def client_ports(self) -> set[int]:
        with self.lock:
            return {port for _, port in self.seen}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out as two writes
    server: Upstream

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _record(self) -> None:
        with self.server.lock:
            self.server.seen.append((self.path, self.client_address[1]))

    def _send(self, status: int, body: bytes, extra: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("ETag", '"blob-1"')
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        self._record()
        if self.path == "/blob":
            wanted = self.headers.get("Range")
            if wanted:
                first, last = (int(x) for x in wanted.removeprefix("bytes=").split("-"))
                last = min(last, len(BLOB) - 1)
                self._send(206, BLOB[first:last + 1],
                           {"Content-Range": f"bytes {first}-{last}/{len(BLOB)}"})
            else:
                self._send(200, BLOB)
        elif self.path == "/chunked":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for start in range(0, 10_000, 3_000):
                piece = BLOB[start:min(start + 3_000, 10_000)]
                self.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
            self.wfile.write(b"0\r\n\r\n")
        elif self.path == "/close":
            self.send_response(200)
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(BLOB[:5000])
            self.close_connection = True
        elif self.path == "/empty":
            self._send(200, b"")
        else:
            self._send(404, b"no such thing")

    def do_POST(self) -> None:
        self._record()
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self._send(200, body[::-1])


@pytest.fixture(scope="module")
def upstream() -> Iterator[Upstream]:
    server = Upstream()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join()


def agent(proxy: FaultProxy, serial: str = "DEV-1") -> httpx.Client:
    return httpx.Client(base_url=proxy.url, headers={"User-Agent": f"mcuota-agent/{serial}"}, timeout=10)


def proxy_for(upstream: Upstream, spec: str) -> FaultProxy:
    return FaultProxy(upstream=("127.0.0.1", upstream.port), plan=FaultPlan.parse(spec), seed=SEED)


def test_pass_through_is_byte_identical_on_one_kept_alive_connection(upstream: Upstream) -> None:
    before = len(upstream.client_ports())
    with proxy_for(upstream, "none") as proxy, agent(proxy) as client:
        whole = client.get("/blob")
        ranges = [client.get("/blob", headers={"Range": f"bytes={i}-{i + 4095}"})
                  for i in range(0, 20480, 4096)]
        chunked = client.get("/chunked")
        head = client.head("/blob")
        echo = client.post("/echo", content=b"firmware report")
        missing = client.get("/nope")
        stats = proxy.stats
    assert whole.content == BLOB
    assert whole.headers["etag"] == '"blob-1"'
    assert [r.status_code for r in ranges] == [206] * 5
    assert b"".join(r.content for r in ranges) == BLOB[:20480]
    assert chunked.content == BLOB[:10_000]
    assert head.headers["content-length"] == str(len(BLOB))
    assert head.content == b""
    assert echo.content == b"troper erawmrif"
    assert missing.status_code == 404
    assert len(upstream.client_ports()) == before + 1  # keep-alive held on both sides
    assert stats.requests == 10
    assert stats.connections == 1
    assert stats.faults == {}
    assert stats.bytes_up > len(b"firmware report")
    assert stats.bytes_down > len(BLOB) + 20480 + 10_000


def test_requests_without_the_agent_header_are_never_faulted(upstream: Upstream) -> None:
    with proxy_for(upstream, "drop=1") as proxy, httpx.Client(base_url=proxy.url, timeout=10) as client:
        bodies = [client.get("/blob").content for _ in range(5)]
        stats = proxy.stats
    assert bodies == [BLOB] * 5
    assert stats.requests == 5
    assert stats.faults == {}


def test_drop_closes_the_client_connection_after_the_server_answered(upstream: Upstream) -> None:
    serial = "DEV-DROP"
    with proxy_for(upstream, "drop=1") as proxy, agent(proxy, serial) as client:
        count = len(upstream.paths())
        with pytest.raises(httpx.RemoteProtocolError, match="without sending"):
            client.post("/report", content=b"result=ok")
        stats = proxy.stats
    assert upstream.paths()[count:] == ["/report"]  # the exchange upstream completed
    assert stats.faults == {"drop": 1}
    assert stats.requests == 1
    assert stats.bytes_down == 0


def test_truncate_delivers_the_head_and_half_the_body_then_closes(upstream: Upstream) -> None:
    received = bytearray()

    def read_body(response: httpx.Response) -> None:
        for piece in response.iter_raw():
            received.extend(piece)

    with proxy_for(upstream, "truncate=1") as proxy, agent(proxy) as client:
        with client.stream("GET", "/blob") as response:
            assert response.status_code == 200
            assert response.headers["content-length"] == str(len(BLOB))
            with pytest.raises(httpx.RemoteProtocolError, match="without sending complete message body"):
                read_body(response)
        stats = proxy.stats
    assert bytes(received) == BLOB[:len(BLOB) // 2]
    assert stats.faults == {"truncate": 1}


def test_corrupt_changes_exactly_one_body_byte_at_the_seeded_position(upstream: Upstream) -> None:
    serial = "DEV-CORRUPT"
    with proxy_for(upstream, "corrupt=1") as proxy, agent(proxy, serial) as client:
        ranged = client.get("/blob", headers={"Range": "bytes=4096-8191"})
        chunked = client.get("/chunked")
        empty = client.get("/empty")
        stats = proxy.stats
    device = FaultPlan.parse("corrupt=1").for_device(SEED, serial)
    for index, (response, original) in enumerate(((ranged, BLOB[4096:8192]), (chunked, BLOB[:10_000])), 1):
        fault = device.network(index)
        assert fault is not None
        assert fault.kind is NetFaultKind.CORRUPT
        differ = [i for i in range(len(original)) if response.content[i] != original[i]]
        assert len(response.content) == len(original)
        assert differ == [fault.corrupt_offset(len(original))]
        assert response.content[differ[0]] == original[differ[0]] ^ fault.mask
    assert ranged.headers["content-range"] == "bytes 4096-8191/49152"  # headers untouched
    assert empty.content == b""
    assert stats.faults == {"corrupt": 2}  # an empty body has nothing to corrupt


def test_stall_holds_the_answer_then_delivers_it_whole(upstream: Upstream) -> None:
    with proxy_for(upstream, "stall=1,stall-s=0.4") as proxy, agent(proxy) as client:
        started = time.monotonic()
        response = client.get("/blob", headers={"Range": "bytes=0-4095"})
        waited = time.monotonic() - started
        with pytest.raises(httpx.ReadTimeout):
            client.get("/blob", timeout=0.1)  # an agent with a short timeout gives up
        stats = proxy.stats
    assert waited >= 0.4
    assert response.content == BLOB[:4096]
    assert stats.faults == {"stall": 2}


def test_a_mixed_plan_hits_exactly_the_scheduled_requests(upstream: Upstream) -> None:
    """Each request's outcome, as the client sees it, is what the schedule says for that request number,
    across the reconnections the faults force."""
    spec = "drop=0.2,truncate=0.2,corrupt=0.2"
    serial = "DEV-MIX"
    seen: list[str] = []
    with proxy_for(upstream, spec) as proxy, agent(proxy, serial) as client:
        for _ in range(40):
            try:
                body = client.get("/blob", headers={"Range": "bytes=0-2047"}).content
            except httpx.RemoteProtocolError as exc:
                seen.append("truncate" if "complete message body" in str(exc) else "drop")
            else:
                seen.append("ok" if body == BLOB[:2048] else "corrupt")
        stats = proxy.stats
    device = FaultPlan.parse(spec).for_device(SEED, serial)
    expected = [(fault.kind.value if fault else "ok") for fault in (device.network(n) for n in range(1, 41))]
    assert seen == expected
    assert len(set(expected)) == 4  # the schedule exercised every kind
    assert stats.requests == 40
    assert stats.faults == {kind: expected.count(kind) for kind in ("drop", "truncate", "corrupt")}


def test_a_connection_close_answer_without_length_passes_through(upstream: Upstream) -> None:
    with proxy_for(upstream, "none") as proxy, agent(proxy) as client:
        first = client.get("/close")
        second = client.get("/blob")
    assert first.content == BLOB[:5000]
    assert second.content == BLOB


class ImpatientHandler(Handler):
    timeout = 0.2  # closes kept-alive connections idle for longer, as uvicorn does after 5 s


def test_a_server_closing_an_idle_kept_alive_connection_is_retried_once() -> None:
    server = Upstream()
    server.RequestHandlerClass = ImpatientHandler
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        with proxy_for(server, "none") as proxy, agent(proxy) as client:
            first = client.get("/blob")
            time.sleep(0.5)  # the server drops its side; the client's connection to the proxy lives on
            second = client.get("/blob")
            stats = proxy.stats
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
    assert first.content == second.content == BLOB
    assert stats.connections == 1
    assert len(server.client_ports()) == 2  # a fresh upstream connection carried the second request


def test_an_unreachable_server_is_a_bad_gateway() -> None:
    with socket.socket() as placeholder:
        placeholder.bind(("127.0.0.1", 0))
        port = placeholder.getsockname()[1]  # bound, never listening: connections are refused
        with FaultProxy(upstream=("127.0.0.1", port), plan=FaultPlan(), seed=SEED) as proxy, \
                agent(proxy) as client:
            response = client.get("/blob")
            assert response.status_code == 502


def test_shutdown_is_clean_with_connections_open_and_an_answer_held(upstream: Upstream) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        proxy = proxy_for(upstream, "stall=1,stall-s=30").start()
        idle = socket.create_connection(proxy.address, timeout=5)
        stalled = socket.create_connection(proxy.address, timeout=5)
        stalled.sendall(b"GET /blob HTTP/1.1\r\nHost: x\r\nUser-Agent: mcuota-agent/DEV-STALL\r\n\r\n")
        deadline = time.monotonic() + 5
        while proxy.stats.faults_of("stall") == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        started = time.monotonic()
        proxy.close()
        closing_took = time.monotonic() - started
        assert stalled.recv(100) == b""  # the held answer is never sent: the link is gone
        assert idle.recv(100) == b""
        idle.close()
        stalled.close()
        proxy.close()  # idempotent
        gc.collect()
    assert proxy.stats.faults_of("stall") == 1
    assert closing_took < 5
    assert not [t for t in threading.enumerate() if t.name == "mcuota-fault-proxy"]
    leaks = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
    assert not leaks


def test_misuse_is_refused(upstream: Upstream) -> None:
    proxy = proxy_for(upstream, "none")
    with pytest.raises(UsageError, match="not running"):
        _ = proxy.address
    with proxy, pytest.raises(UsageError, match="already started"):
        proxy.start()
    with pytest.raises(UsageError, match="raw_window"):
        FaultProxy(upstream=("127.0.0.1", upstream.port), plan=FaultPlan(), seed=1, http=False, raw_window=0)
    assert issubclass(ProxyError, Exception)


# -- raw mode (MQTT) -------------------------------------------------------------------------------------

STREAM = random.Random(2).randbytes(40_000)


def mqtt_connect(client_id: str) -> bytes:
    """An MQTT 3.1.1 CONNECT packet, as paho sends it."""
    ident = client_id.encode()
    variable = b"\x00\x04MQTT\x04\x02\x00\x3c" + len(ident).to_bytes(2, "big") + ident
    return bytes([0x10, len(variable)]) + variable


class Broker:
    """Answers a CONNECT with a CONNACK, then pushes a fixed stream: a publisher of OTA chunks."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.connects: list[bytes] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def port(self) -> int:
        return int(self.sock.getsockname()[1])

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                packet = conn.recv(1024)
                self.connects.append(packet)
                try:
                    conn.sendall(b"\x20\x02\x00\x00" + STREAM)
                    conn.shutdown(socket.SHUT_WR)
                    while conn.recv(1024):
                        pass
                except OSError:
                    pass

    def close(self) -> None:
        self.sock.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
        self.sock.close()
        self.thread.join(timeout=5)


@pytest.fixture
def broker() -> Iterator[Broker]:
    server = Broker()
    yield server
    server.close()


def receive_all(address: tuple[str, int], client_id: str) -> bytes:
    with socket.create_connection(address, timeout=5) as sock:
        sock.sendall(mqtt_connect(client_id))
        received = bytearray()
        while data := sock.recv(65536):
            received += data
        return bytes(received)


def test_raw_mode_cuts_a_stream_after_the_seeded_byte_count(broker: Broker) -> None:
    spec = "drop=0.5"
    window = 30_000
    plan = FaultPlan.parse(spec)
    with FaultProxy(upstream=("127.0.0.1", broker.port), plan=plan, seed=SEED, http=False,
                    raw_window=window) as proxy:
        outcomes = {f"DEV-{i}": receive_all(proxy.address, f"DEV-{i}") for i in range(12)}
        stats = proxy.stats
    whole = b"\x20\x02\x00\x00" + STREAM
    cut_count = 0
    for client_id, received in outcomes.items():
        cut = plan.for_device(SEED, client_id).stream_cut(1, window)
        if cut is None:
            assert received == whole
        else:
            cut_count += 1
            assert received == whole[:cut]
    assert 0 < cut_count < 12  # both outcomes were exercised
    assert stats.faults == {"drop": cut_count}
    assert stats.connections == 12
    assert broker.connects == [mqtt_connect(f"DEV-{i}") for i in range(12)]  # CONNECT forwarded intact


def test_raw_mode_passes_a_stream_through_untouched_without_faults(broker: Broker) -> None:
    with FaultProxy(upstream=("127.0.0.1", broker.port), plan=FaultPlan(), seed=SEED, http=False) as proxy:
        received = receive_all(proxy.address, "DEV-CLEAN")
        stats = proxy.stats
    assert received == b"\x20\x02\x00\x00" + STREAM
    assert stats.bytes_down == len(received)
    assert stats.bytes_up == len(mqtt_connect("DEV-CLEAN"))
    assert stats.faults == {}


def test_raw_mode_names_a_stream_without_connect_by_its_accept_order(broker: Broker) -> None:
    plan = FaultPlan.parse("drop=1")
    window = 20_000
    with FaultProxy(upstream=("127.0.0.1", broker.port), plan=plan, seed=SEED, http=False,
                    raw_window=window) as proxy:
        received = []
        for _ in range(2):
            with socket.create_connection(proxy.address, timeout=5) as sock:
                sock.sendall(b"not mqtt")
                chunks = bytearray()
                while data := sock.recv(65536):
                    chunks += data
                received.append(bytes(chunks))
    whole = b"\x20\x02\x00\x00" + STREAM
    for number, stream in enumerate(received, 1):
        cut = plan.for_device(SEED, f"tcp-{number}").stream_cut(1, window)
        assert cut is not None
        assert stream == whole[:cut]
    assert len(broker.connects) == 2
