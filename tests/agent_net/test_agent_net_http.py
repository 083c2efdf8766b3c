"""The agent over real HTTP: :class:`HttpxPort` against a small server of our own for what a port must
do on the wire, then the seed-002 flow of a real update server end to end, with the server unreachable,
a wrong token, and connections that go away during the download."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import agent_net_helpers as helpers
import pytest
from agent_net_helpers import FaultyProxy, Rig, roll_out_2_0_0
from server_helpers import LiveServer

from mcuota.agent.core import Status
from mcuota.agent.errors import AgentCode, AgentError
from mcuota.agent.http_port import HttpxPort, seed002_http_transport
from mcuota.agent.states import Event, State
from mcuota.errors import UsageError
from mcuota.netutil import free_port

pytest_plugins = ["server_fixtures"]
rig = helpers.rig


# ----------------------------------------------------------------------------------- the port on the wire


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        if self.path.startswith("/short"):            # announces 1000 bytes, sends 10, hangs up
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            self.wfile.write(b"0123456789")
            self.wfile.flush()
            self.close_connection = True
            return
        if self.path.startswith("/slow"):
            time.sleep(0.6)
        body = json.dumps({"path": self.path, "headers": dict(self.headers)}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(scope="module")
def echo_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_port_sends_user_agent_and_bearer_token(echo_url: str) -> None:
    with HttpxPort(echo_url, serial="SN-7", token="mcd_secret") as port:
        reply = port.request("GET", "/a/b?x=1", {"Range": "bytes=0-9"})
    seen = json.loads(reply.body)
    assert reply.status == 200
    assert seen["path"] == "/a/b?x=1"
    assert seen["headers"]["User-Agent"] == "mcuota-agent/SN-7"
    assert seen["headers"]["Authorization"] == "Bearer mcd_secret"
    assert seen["headers"]["Range"] == "bytes=0-9"


def test_port_can_put_the_token_in_the_query(echo_url: str) -> None:
    with HttpxPort(echo_url + "/", serial="SN-8", token="mcd_q", token_in_query=True) as port:
        seen = json.loads(port.request("GET", "seed002/SN-8/ota_update.json", {}).body)
    assert seen["path"] == "/seed002/SN-8/ota_update.json?token=mcd_q"
    assert "Authorization" not in seen["headers"]
    assert seen["headers"]["User-Agent"] == "mcuota-agent/SN-8"


def test_body_shorter_than_content_length_is_a_lost_connection(echo_url: str) -> None:
    with HttpxPort(echo_url, serial="SN-9") as port, pytest.raises(AgentError) as caught:
        port.request("GET", "/short", {})
    assert caught.value.code is AgentCode.CONNECTION_LOST
    assert "GET /short" in str(caught.value)
    assert "\n" not in str(caught.value)


def test_timeout_and_refused_connection_are_lost_connections(echo_url: str) -> None:
    with HttpxPort(echo_url, serial="SN-10", timeout_ms=200) as port, pytest.raises(AgentError) as slow:
        port.request("GET", "/slow", {})
    assert slow.value.code is AgentCode.CONNECTION_LOST
    assert "in time" in slow.value.detail
    with HttpxPort(f"http://127.0.0.1:{free_port()}", serial="SN-10") as port, \
            pytest.raises(AgentError) as refused:
        port.request("GET", "/x", {})
    assert refused.value.code is AgentCode.CONNECTION_LOST
    assert "cannot connect" in refused.value.detail


def test_failed_tls_handshake_is_a_lost_connection(echo_url: str) -> None:
    with HttpxPort(echo_url.replace("http:", "https:"), serial="SN-11") as port, \
            pytest.raises(AgentError) as caught:
        port.request("GET", "/x", {})
    assert caught.value.code is AgentCode.CONNECTION_LOST


@pytest.mark.parametrize("url", ["ftp://host/", "not a url", "http://"])
def test_bad_server_url_is_a_usage_error(url: str) -> None:
    with pytest.raises(UsageError):
        HttpxPort(url, serial="SN")


def test_missing_ca_file_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="CA file"):
        HttpxPort("https://127.0.0.1:8443", serial="SN", verify=tmp_path / "absent.pem")


# ------------------------------------------------------------------------------- against a real server


@pytest.fixture
def server(live_server_factory: Callable[..., LiveServer]) -> LiveServer:
    return live_server_factory()


@pytest.mark.parametrize("token_in_query", [False, True], ids=["bearer", "query-token"])
def test_seed002_http_update_runs_2_0_0_after_the_reboot(server: LiveServer, rig: Rig,
                                                         token_in_query: bool) -> None:
    world = roll_out_2_0_0(server, rig)
    transport = seed002_http_transport(server.url, world.serial, world.token, token_in_query=token_in_query)
    agent = rig.agent(transport)
    assert agent.on_boot(rig.reboot()).status is Status.RUNNING
    outcome = agent.check_for_update()
    assert outcome.status is Status.STAGED, outcome.reason
    assert outcome.bytes_fetched == len(world.image) > 2 * 4096
    assert world.states() == ["offered", "downloading", "success"]

    fresh = seed002_http_transport(server.url, world.serial, world.token)   # a new life: only flash remains
    after = rig.agent(fresh).on_boot(rig.reboot())
    assert after.status is Status.UPDATED, after.reason
    assert rig.running() == "2.0.0"
    assert world.device()["version"] == "2.0.0"
    assert world.states()[-1] == "success"
    assert rig.agent(fresh).check_for_update().status is Status.NO_UPDATE


def test_server_unreachable_is_retried_then_fails_with_firmware_untouched(rig: Rig) -> None:
    transport = seed002_http_transport(f"http://127.0.0.1:{free_port()}", "AGENT0001", "mcd_x")
    outcome = rig.agent(transport, retries=3).check_for_update()
    assert outcome.status is Status.FAILED
    assert outcome.code is AgentCode.CONNECTION_LOST, outcome.reason
    assert len(rig.clock.sleeps) == 2 + 2        # the job document's retries, then the report's
    assert rig.running() == "1.0.0"


def test_wrong_token_is_refused_and_nothing_is_written(server: LiveServer, rig: Rig) -> None:
    world = roll_out_2_0_0(server, rig)
    transport = seed002_http_transport(server.url, world.serial, "mcd_not-the-token")
    outcome = rig.agent(transport, retries=2).check_for_update()
    assert outcome.status is Status.FAILED
    assert outcome.code is AgentCode.HTTP_STATUS
    assert "401" in outcome.reason
    assert not any(e.state is State.STORAGE_WRITE for e in rig.events)
    assert world.states() == []                    # the server never offered anything to a stranger
    assert rig.running() == "1.0.0"


def _once_at(percent: int, action: Callable[[], None]) -> Callable[[Event], None]:
    done: list[bool] = []

    def hook(event: Event) -> None:
        if event.state is State.STORAGE_WRITE and event.percent >= percent and not done:
            done.append(True)
            action()
    return hook


def test_connection_cut_mid_range_is_resumed(server: LiveServer, rig: Rig) -> None:
    world = roll_out_2_0_0(server, rig)
    proxy = FaultyProxy(int(server.url.rsplit(":", 1)[1]))
    rig.on_event = _once_at(30, lambda: proxy.cut_after(1500))    # the next range dies half-way
    try:
        transport = seed002_http_transport(proxy.url, world.serial, world.token)
        outcome = rig.agent(transport).check_for_update()
    finally:
        proxy.close()
    assert outcome.status is Status.STAGED, outcome.reason
    assert proxy.cuts == 1
    assert len(rig.clock.sleeps) == 1                   # one retry of the cut range
    assert outcome.bytes_fetched == len(world.image)    # the cut range was not counted, nothing refetched
    fresh = seed002_http_transport(server.url, world.serial, world.token)
    assert rig.agent(fresh).on_boot(rig.reboot()).status is Status.UPDATED
    assert rig.running() == "2.0.0"


def test_server_gone_mid_download_fails_reports_then_a_later_check_resumes(server: LiveServer,
                                                                            rig: Rig) -> None:
    world = roll_out_2_0_0(server, rig)
    proxy = FaultyProxy(int(server.url.rsplit(":", 1)[1]))
    rig.on_event = _once_at(30, lambda: proxy.refuse(3))
    try:
        transport = seed002_http_transport(proxy.url, world.serial, world.token)
        outcome = rig.agent(transport, retries=3, max_download_tries=1, step=1024).check_for_update()
        assert outcome.status is Status.FAILED
        assert outcome.code is AgentCode.CONNECTION_LOST, outcome.reason
        assert proxy.refused == 3
        assert len(rig.clock.sleeps) >= 2               # the range was retried before giving up
        assert world.states()[-1] == "failure"          # reported once the server answered again
        assert rig.running() == "1.0.0"

        rig.on_event = None
        again = rig.agent(transport, step=1024).check_for_update()
    finally:
        proxy.close()
    assert again.status is Status.STAGED, again.reason
    assert again.resumed_from > 0                       # the journal kept what was already in flash
    assert again.bytes_fetched < len(world.image)
