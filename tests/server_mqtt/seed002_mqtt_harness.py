"""Test scaffolding for the seed-002 publisher: brokers (a private Mosquitto and the embedded amqtt,
each on a free loopback port, never the system's :1883), TLS material, a catalog, and a device.

The fixtures live here rather than in a conftest.py (a second ``conftest`` module would shadow the
root one that other test folders import from); test modules import the ones they use.

The device is written from the seed's facts, not from ``mcuota.transport.seed002``: its requests are
the agent's templates filled in with ``%``, its chunk parser is ``struct.unpack('<8s5H2I3H')``, so a
mistake in the codec cannot hide behind the same mistake on the other side. (``use_reassembler``
switches to the agent-side :class:`Reassembler` to exercise that too.)
"""

from __future__ import annotations

import datetime
import ipaddress
import itertools
import json
import os
import queue
import shutil
import ssl
import struct
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from paho.mqtt.enums import CallbackAPIVersion

from conftest import require_tool
from mcuota.image.version import ImageVersion
from mcuota.netutil import free_port, wait_for_port
from mcuota.samples import sample_path
from mcuota.server.catalog import InMemoryCatalog
from mcuota.server.mqtt import EmbeddedBroker
from mcuota.transport.seed002 import Reassembler

BOARD = "CY8CPROTO_062_4343W"

HEADER = "<8s5H2I3H"
AVAILABILITY = ('{"Message":"%s", "Manufacturer": "Express Widgits Corporation", "ManufacturerID": "EWCO", '
                '"ProductID": "Easy Widgit", "SerialNumber": "%s", "BoardName": "%s", "Version": "%s", '
                '"UniqueTopicName": "%s"}')
CHUNK_REQUEST = AVAILABILITY[:-1] + ', "Filename": "%s", "Offset": "%d", "Size": "%d"}'
RESULT = '{"Message":"%s", "UniqueTopicName": "%s"}'
_unique = itertools.count(1)




class Mosquitto:
    """A private ``mosquitto`` on a free loopback port with a temporary config (restartable)."""

    def __init__(self, directory: Path, *, tls: TlsFiles | None = None) -> None:
        self.directory = directory
        self.port = free_port()
        self.tls = tls
        self.process: subprocess.Popen[bytes] | None = None
        lines = [f"listener {self.port} 127.0.0.1", "allow_anonymous true", "persistence false",
                 "max_queued_messages 10000", "log_dest stderr", "log_type error"]
        if tls is not None:
            lines += [f"cafile {tls.ca}", f"certfile {tls.server_cert}", f"keyfile {tls.server_key}"]
        if os.geteuid() == 0:
            lines.append("user root")         # else it drops to "mosquitto" and cannot read the temp files
        self.config = directory / f"mosquitto-{self.port}.conf"
        self.config.write_text("\n".join(lines) + "\n")

    def start(self) -> Mosquitto:
        exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        self.process = subprocess.Popen([exe, "-c", str(self.config)], stdout=subprocess.DEVNULL,
                                        stderr=subprocess.PIPE)
        try:
            wait_for_port(self.port)
        except TimeoutError:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    @property
    def url(self) -> str:
        return f"{'mqtts' if self.tls else 'mqtt'}://127.0.0.1:{self.port}"


@dataclass(frozen=True)
class TlsFiles:
    ca: Path
    server_cert: Path
    server_key: Path


def make_tls_files(directory: Path) -> TlsFiles:
    """A self-signed CA and a server certificate for 127.0.0.1 / localhost, with ``cryptography``."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mcuota test CA")])
    ca_cert = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
               .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(now + datetime.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
               .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                            content_commitment=False, key_encipherment=False,
                                            data_encipherment=False, key_agreement=False,
                                            encipher_only=False, decipher_only=False), critical=True)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
               .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    files = TlsFiles(directory / "ca.pem", directory / "server.pem", directory / "server.key")
    files.ca.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    files.server_cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    files.server_key.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                   serialization.PrivateFormat.PKCS8,
                                                   serialization.NoEncryption()))
    return files


@dataclass
class Outcome:
    job: dict[str, Any]
    image: bytes = b""
    ack: dict[str, Any] = field(default_factory=dict)
    chunks: int = 0
    duplicates: int = 0


class SeedDevice:
    """A seed-002 device on MQTT: subscribes to its unique topic, sends the agent's JSON to
    ``<company>/<board>/publish_notify``, and checks the chunks as ``cy_ota_mqtt.c`` does."""

    def __init__(self, port: int, *, board: str, serial: str, version: str = "1.0.0",
                 company: str = "anycloud", ca: Path | None = None, topic_board: str | None = None) -> None:
        self.board, self.serial, self.version, self.company = board, serial, version, company
        self.topic_board = topic_board or board
        self.unique = f"{company}/{self.topic_board}/OTAImage/{next(_unique)}"
        self.notify = f"{company}/{self.topic_board}/publish_notify"
        self.inbox: queue.Queue[bytes] = queue.Queue()
        self.client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2,
                                  client_id=f"dev-{serial}-{next(_unique)}", protocol=mqtt.MQTTv311)
        if ca is not None:
            self.client.tls_set(ca_certs=str(ca), cert_reqs=ssl.CERT_REQUIRED)
        self.client.on_message = lambda _c, _u, msg: self.inbox.put(bytes(msg.payload))
        subscribed = queue.Queue[int]()
        self.client.on_subscribe = lambda _c, _u, mid, _r, _p: subscribed.put(mid)
        self.client.connect("127.0.0.1", port, keepalive=60)
        self.client.loop_start()
        _, mid = self.client.subscribe(self.unique, qos=1)
        assert subscribed.get(timeout=10) == mid

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def __enter__(self) -> SeedDevice:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --------------------------------------------------------------------------------------- messages

    def send(self, text: str | bytes) -> None:
        self.client.publish(self.notify, text, qos=1).wait_for_publish(10)

    def request(self, message: str) -> None:
        self.send(AVAILABILITY % (message, self.serial, self.board, self.version, self.unique))

    def receive(self, timeout: float = 10.0) -> bytes:
        return self.inbox.get(timeout=timeout)

    def receive_json(self, timeout: float = 10.0) -> dict[str, Any]:
        payload = self.receive(timeout)
        assert not payload.startswith(b"OTAImage"), "expected a JSON document, got a chunk"
        doc: dict[str, Any] = json.loads(payload)
        return doc

    def expect_silence(self, seconds: float) -> None:
        try:
            payload = self.inbox.get(timeout=seconds)
        except queue.Empty:
            return
        raise AssertionError(f"expected no answer, got {payload[:80]!r}")

    def ask(self) -> dict[str, Any]:
        self.request("Update Availability")
        return self.receive_json()

    # --------------------------------------------------------------------------------------- download

    def accept_job(self, job: dict[str, Any]) -> None:
        """The agent's checks: "Update Available", a newer version (else INVALID_VERSION), the same
        board (else WRONG_BOARD)."""
        fields = {key.lower(): value for key, value in job.items()}
        assert fields["message"] == "Update Available", job
        offered = tuple(int(part) for part in fields["version"].split("."))
        if offered <= tuple(int(part) for part in self.version.split(".")):
            raise ValueError("INVALID_VERSION")
        if fields["board"] != self.board:
            raise ValueError("WRONG_BOARD")

    def download_whole(self, timeout: float = 20.0, *, use_reassembler: bool = False) -> tuple[bytes, int]:
        self.request("Request Update")
        if use_reassembler:
            return self._reassemble(timeout)
        pieces: dict[int, bytes] = {}
        total = None
        duplicates = 0
        deadline = time.monotonic() + timeout
        while total is None or len(pieces) < total:
            payload = self.receive(max(0.1, deadline - time.monotonic()))
            index, count, data = self._check_chunk(payload)
            total = count
            duplicates += index in pieces
            pieces[index] = data
        return b"".join(pieces[i] for i in range(total)), duplicates

    def download_in_chunks(self, size: int = 4096, timeout: float = 20.0) -> tuple[bytes, int]:
        """The agent's other mode: one "Request Data Chunk" at a time, each answered before the next."""
        image = bytearray()
        total_size = None
        count = 0
        while total_size is None or len(image) < total_size:
            self.send(CHUNK_REQUEST % ("Request Data Chunk", self.serial, self.board, self.version,
                                       self.unique, "/ota-update.bin", len(image), size))
            payload = self.receive(timeout)
            magic, _, _, _, _, _, total_size, offset, data_size, _, _ = struct.unpack(HEADER, payload[:32])
            assert magic == b"OTAImage"
            assert offset == len(image)
            self._check_chunk(payload)
            image += payload[32:32 + data_size]
            count += 1
        return bytes(image), count

    def report(self, success: bool = True) -> dict[str, Any]:
        self.send(RESULT % ("Success" if success else "Failure", self.unique))
        return self.receive_json()

    def update(self, mode: str = "whole", *, use_reassembler: bool = False) -> Outcome:
        job = self.ask()
        self.accept_job(job)
        if mode == "whole":
            image, duplicates = self.download_whole(use_reassembler=use_reassembler)
            outcome = Outcome(job, image, duplicates=duplicates)
        else:
            image, count = self.download_in_chunks()
            outcome = Outcome(job, image, chunks=count)
        outcome.ack = self.report(True)
        return outcome

    def _check_chunk(self, payload: bytes) -> tuple[int, int, bytes]:
        (magic, data_offset, image_type, major, minor, build, total_size, offset, data_size, count,
         index) = struct.unpack(HEADER, payload[:32])
        assert magic == b"OTAImage"
        assert (data_offset, image_type) == (32, 0)
        assert len(payload) == 32 + data_size <= 32 + 4096
        assert index < count
        assert offset + data_size <= total_size
        assert (major, minor, build) > tuple(int(part) for part in self.version.split("."))
        return index, count, payload[32:]

    def _reassemble(self, timeout: float) -> tuple[bytes, int]:
        reassembler = Reassembler(running_version=ImageVersion.parse(self.version))
        deadline = time.monotonic() + timeout
        while not reassembler.complete:
            reassembler.feed(self.receive(max(0.1, deadline - time.monotonic())))
        return reassembler.image(), reassembler.chunks_duplicate


# ------------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    require_tool("mosquitto")
    broker = Mosquitto(tmp_path_factory.mktemp("mosquitto")).start()
    yield broker
    broker.stop()


@pytest.fixture(scope="module")
def amqtt_broker() -> Iterator[EmbeddedBroker]:
    with EmbeddedBroker("127.0.0.1", 0) as broker:
        yield broker


@pytest.fixture(params=["mosquitto", "amqtt"])
def broker_port(request: pytest.FixtureRequest) -> int:
    """The port of each broker in turn."""
    if request.param == "mosquitto":
        return int(request.getfixturevalue("mosquitto").port)
    return int(request.getfixturevalue("amqtt_broker").port)


@pytest.fixture
def firmware() -> bytes:
    return Path(sample_path("mcuboot-f407", "2.0.0", "bin")).read_bytes()


@pytest.fixture
def catalog(firmware: bytes) -> InMemoryCatalog:
    """Board CY8CPROTO_062_4343W: 1.0.0 (filler) and 2.0.0 (the sample firmware)."""
    catalog = InMemoryCatalog(manufacturer="Express Widgits Corporation", manufacturer_id="EWCO",
                              product="Easy Widgit")
    catalog.add_release(BOARD, ImageVersion(1, 0, 0), b"\x01" * 5000)
    catalog.add_release(BOARD, ImageVersion(2, 0, 0), firmware, file_name="sample-app-2.0.0.bin")
    return catalog
