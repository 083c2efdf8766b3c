"""Scaffolding of the agent-over-a-real-network tests: a simulated STM32F407 with MCUboot swap-move and an
"agent" journal partition, a real update server (uvicorn in a thread, SQLite) with a signed 2.0.0
release rolled out to one device, and a TCP proxy that can refuse connections or cut one short.

The server helpers live in tests/server and tests/server_mqtt, which pytest puts on ``sys.path`` only
for their own modules; this folder's tests reach them by the same path entries.
"""

from __future__ import annotations

import contextlib
import dataclasses
import socket
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

for _folder in ("server", "server_mqtt"):
    _path = str(Path(__file__).resolve().parents[1] / _folder)
    if _path not in sys.path:
        sys.path.insert(0, _path)

from server_helpers import LiveServer, Ops  # noqa: E402

from mcuota.agent.config import AgentConfig  # noqa: E402
from mcuota.agent.core import Agent  # noqa: E402
from mcuota.agent.memory import RecordingClock  # noqa: E402
from mcuota.agent.selftest import BannerSelfTest  # noqa: E402
from mcuota.agent.states import Answer, Event  # noqa: E402
from mcuota.agent.storage import McubootStorage  # noqa: E402
from mcuota.agent.transport import Transport  # noqa: E402
from mcuota.boot.board import Board  # noqa: E402
from mcuota.boot.layout import Partition  # noqa: E402
from mcuota.boot.mcuboot import McubootStrategy  # noqa: E402
from mcuota.boot.mcuboot.keys import development_key  # noqa: E402
from mcuota.boot.presets import get_layout  # noqa: E402
from mcuota.boot.registry import strategy_for  # noqa: E402
from mcuota.boot.strategy import BootAction, BootResult  # noqa: E402
from mcuota.image.version import ImageVersion  # noqa: E402
from mcuota.samples import sample_path  # noqa: E402

BOARD = "f407"                   # the board the server helpers register releases and devices for
V1, V2 = ImageVersion.parse("1.0.0"), ImageVersion.parse("2.0.0")


def payload(release: str) -> bytes:
    return sample_path("mcuboot-f407", release, "bin").read_bytes()


@dataclass
class Rig:
    """One device: flash, bootloader, emulated core; an agent is made fresh for each life (as after a
    reset, only flash carries over)."""

    board: Board
    strategy: McubootStrategy
    clock: RecordingClock = field(default_factory=RecordingClock)
    events: list[Event] = field(default_factory=list)
    on_event: Callable[[Event], None] | None = None

    def storage(self) -> McubootStorage:
        return McubootStorage(self.board, self.strategy)

    def running_version(self) -> ImageVersion:
        return self.storage().running_version() or ImageVersion()

    def agent(self, transport: Transport, **config: Any) -> Agent:
        def callback(event: Event) -> Answer:
            self.events.append(event)
            if self.on_event is not None:
                self.on_event(event)
            return Answer.CONTINUE
        settings = AgentConfig(**{"board": BOARD, **config})
        return Agent(settings, transport, self.storage(), clock=self.clock,
                     self_test=BannerSelfTest(self.board), callback=callback)

    def release_image(self) -> bytes:
        """2.0.0 signed with the development key the simulated MCUboot trusts."""
        return self.strategy.make_release(payload("2.0.0"), V2).data

    def reboot(self) -> BootResult:
        self.board.warm_reset()
        result = self.strategy.boot(self.board)
        assert result.action is BootAction.JUMP, result.reason
        return result

    def running(self) -> str | None:
        """What the emulated core announces after a further reset."""
        test = BannerSelfTest(self.board)
        test(self.reboot(), V1)
        return test.last


def make_rig() -> Rig:
    base = get_layout("mcuboot-swap-move-f407")
    layout = dataclasses.replace(base, partitions=(
        *base.partitions, Partition("agent", "internal", 0x080E0000, 128 * 1024)))
    board = Board(layout)
    strategy = strategy_for(layout)
    assert isinstance(strategy, McubootStrategy)
    strategy.factory_install(board, strategy.make_release(payload("1.0.0"), V1))
    return Rig(board, strategy)


@pytest.fixture
def rig() -> Rig:
    return make_rig()


# --------------------------------------------------------------------------------------------- server


@dataclass
class Rollout:
    ops: Ops
    serial: str
    token: str
    release: dict[str, Any]
    image: bytes

    def device(self) -> dict[str, Any]:
        found: dict[str, Any] = self.ops.ok("GET", f"/api/v1/devices/{self.serial}")
        return found

    def states(self) -> list[str]:
        attempts = self.device()["attempts"]
        return [h["state"] for h in attempts[0]["history"]] if attempts else []


def roll_out_2_0_0(server: LiveServer, rig: Rig, serial: str = "AGENT0001", *, rollout: bool = True,
                   others: tuple[str, ...] = ()) -> Rollout:
    """The operator's steps: trust the signing key, upload the signed 2.0.0, register the device (and
    ``others``) as 1.0.0, roll the release out to every device at once (unless ``rollout`` is False)."""
    ops = Ops(server)
    signature = rig.strategy.options.signature
    ops.trust(development_key(signature))
    image = rig.release_image()
    release = ops.upload(image)
    token = ops.device(serial, version="1.0.0")
    for other in others:
        ops.device(other, version="1.0.0")
    if rollout:
        ops.rollout(release["id"], stages=[100])
    return Rollout(ops, serial, token, release, image)


# ---------------------------------------------------------------------------------------------- proxy


class FaultyProxy:
    """A TCP proxy on a free loopback port in front of ``target_port``: ``refuse(n)`` closes the open
    connections and the next ``n`` accepted ones without a byte (a server that went away), ``cut_after(n)``
    lets the server's next ``n`` bytes through and then closes that connection (a reset mid-answer)."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._lock = threading.Lock()
        self._refuse = 0
        self._cut_after: int | None = None
        self._open: list[socket.socket] = []
        self.refused = 0
        self.cuts = 0
        self._stop = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def refuse(self, count: int) -> None:
        with self._lock:
            self._refuse = count
            sockets, self._open = self._open, []
        for sock in sockets:
            _close(sock)

    def cut_after(self, count: int) -> None:
        with self._lock:
            self._cut_after = count

    def close(self) -> None:
        self._stop = True
        _close(self._listener)
        self.refuse(0)

    def _accept(self) -> None:
        while not self._stop:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                if self._refuse > 0:
                    self._refuse -= 1
                    self.refused += 1
                    _close(client)
                    continue
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            with self._lock:
                self._open += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, True), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, downstream: bool) -> None:
        try:
            while data := source.recv(65536):
                if downstream:
                    with self._lock:
                        budget = self._cut_after
                        if budget is not None:
                            self._cut_after = budget - len(data) if len(data) < budget else None
                    if budget is not None and len(data) >= budget:
                        sink.sendall(data[:budget])
                        self.cuts += 1
                        break
                sink.sendall(data)
        except OSError:
            pass
        _close(source)
        _close(sink)


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()
