"""Seed-002 over MQTT: one image to many concurrent simulated devices through mcuota's publisher, with a
peer figure from Infineon's own publisher measured by its pacing.

The bench starts its own broker (a private Mosquitto on a free loopback port with a temporary config, or
mcuota's embedded amqtt broker), then mcuota's seed-002 publisher (``start_mqtt_services``) fed by an
``InMemoryCatalog`` holding one release (random bytes, board "KIT", version 2.0.0). Each device is a
paho-mqtt client written here from the protocol with the ``mcuota.transport.seed002`` codecs: it
subscribes to its unique topic, sends "Update Availability", checks the job document, sends "Request
Update", reassembles every chunk, compares the bytes with the image, sends "Success" and waits for
"Result Received".

Peer: Infineon's ``publisher.py`` paces each 4 KiB chunk by about 0.2 s (its loop's 0.1 s wait plus a
0.1 s sleep), so one device needs at least ``chunks * 0.2`` s (12.8 s for 256 KiB, ~20 KiB/s); the
ratio printed is that floor over our per-device median. Bounded: everything stops after 120 s.
Run: ``.venv/bin/python bench/mqtt_bench.py [--devices 100] [--size-kib 256] [--broker mosquitto|embedded]``.
"""

from __future__ import annotations

import argparse
import os
import queue
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from mcuota.image.version import ImageVersion
from mcuota.netutil import free_port, wait_for_port
from mcuota.server.catalog import InMemoryCatalog
from mcuota.server.mqtt import MqttSettings, start_mqtt_services
from mcuota.transport.seed002 import (
    CHUNK_SIZE,
    DEFAULT_COMPANY,
    QOS,
    DeviceInfo,
    DeviceRequest,
    DeviceResult,
    Message,
    Reassembler,
    build_device_request,
    build_device_result,
    check_job,
    is_chunk,
    notify_topic,
    parse_job_document,
    payload_count,
    unique_topic,
)

BOARD = "KIT"
RUNNING = ImageVersion(1, 0, 0)
RELEASE = ImageVersion(2, 0, 0)
OVERALL_TIMEOUT = 120.0
PEER_SECONDS_PER_CHUNK = 0.2      # publisher.py: 0.1 s loop wait + 0.1 s sleep per 4 KiB chunk
MOSQUITTO = "/usr/sbin/mosquitto"




@contextmanager
def private_mosquitto() -> Iterator[str]:
    """A Mosquitto on a free loopback port with a temporary config; yields its URL."""
    exe = MOSQUITTO if os.path.exists(MOSQUITTO) else shutil.which("mosquitto")
    if exe is None:
        sys.exit("mqtt_bench: mosquitto is not installed (scripts/setup.sh installs it)")
    with tempfile.TemporaryDirectory(prefix="mqtt-bench-") as tmp:
        port = free_port()
        lines = [f"listener {port} 127.0.0.1", "allow_anonymous true", "max_queued_messages 10000",
                 "persistence false", "log_dest stderr", "log_type error"]
        if os.geteuid() == 0:
            lines.append("user root")      # else it drops to "mosquitto" and cannot read the temp config
        config = Path(tmp) / "mosquitto.conf"
        config.write_text("\n".join(lines) + "\n")
        process = subprocess.Popen([exe, "-c", str(config)], stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        try:
            wait_for_port(port)
            yield f"mqtt://127.0.0.1:{port}"
        finally:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@dataclass
class Result:
    seconds: float = 0.0
    identical: bool = False
    error: str = ""


class Device:
    """One seed-002 device on MQTT, connected and subscribed before the clock starts."""

    def __init__(self, n: int, host: str, port: int, deadline: float) -> None:
        self.n = n
        self.serial = f"SN{n:05d}"
        self.unique = unique_topic(DEFAULT_COMPANY, BOARD, n)
        self.notify = notify_topic(DEFAULT_COMPANY, BOARD)
        self.info = DeviceInfo(serial_number=self.serial, board=BOARD, version=RUNNING)
        self.inbox: queue.Queue[bytes] = queue.Queue()
        self.client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2,
                                  client_id=f"bench-{self.serial}", protocol=mqtt.MQTTv311)
        self.client.on_message = lambda _c, _u, msg: self.inbox.put(bytes(msg.payload))
        subscribed: queue.Queue[int] = queue.Queue()
        self.client.on_subscribe = lambda _c, _u, mid, _r, _p: subscribed.put(mid)
        self.client.connect(host, port, keepalive=60)
        self.client.loop_start()
        _, mid = self.client.subscribe(self.unique, qos=QOS)
        if subscribed.get(timeout=max(0.1, min(10.0, deadline - time.monotonic()))) != mid:
            raise RuntimeError(f"{self.serial}: unexpected SUBACK")

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def _send(self, payload: bytes, deadline: float) -> None:
        info = self.client.publish(self.notify, payload, qos=QOS)
        info.wait_for_publish(max(0.1, deadline - time.monotonic()))

    def _receive(self, deadline: float) -> bytes:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("overall timeout")
        try:
            return self.inbox.get(timeout=remaining)
        except queue.Empty:
            raise TimeoutError("overall timeout") from None

    def _request(self, message: Message, deadline: float) -> None:
        self._send(build_device_request(DeviceRequest(message=message, device=self.info,
                                                      unique_topic=self.unique)), deadline)

    def update(self, image: bytes, deadline: float) -> Result:
        started = time.monotonic()
        self._request(Message.UPDATE_AVAILABILITY, deadline)
        job = parse_job_document(self._receive(deadline))
        check_job(job, board=BOARD, running_version=RUNNING)
        self._request(Message.REQUEST_UPDATE, deadline)
        reassembler = Reassembler(running_version=RUNNING, expected_version=job.version)
        while not reassembler.complete:
            payload = self._receive(deadline)
            if not is_chunk(payload):
                raise RuntimeError(f"expected a chunk, got {payload[:60]!r}")
            reassembler.feed(payload)
        identical = reassembler.image() == image
        self._send(build_device_result(DeviceResult(success=identical, unique_topic=self.unique)), deadline)
        while True:            # a retransmitted chunk may still be queued ahead of the acknowledgement
            payload = self._receive(deadline)
            if not is_chunk(payload):
                break
        ack = parse_job_document(payload)
        if ack.message is not Message.RESULT_RECEIVED:
            raise RuntimeError(f'expected "Result Received", got "{ack.message}"')
        return Result(seconds=time.monotonic() - started, identical=identical,
                      error="" if identical else "image differs")


def run_fleet(url: str, devices: int, image: bytes, deadline: float) -> tuple[list[Result], float]:
    host, port_text = url.removeprefix("mqtt://").rsplit(":", 1)
    port = int(port_text)
    fleet: list[Device] = []
    results = [Result(error="not started") for _ in range(devices)]
    try:
        for n in range(devices):
            fleet.append(Device(n + 1, host, port, deadline))
        start = threading.Barrier(devices + 1)

        def work(index: int) -> None:
            start.wait()
            try:
                results[index] = fleet[index].update(image, deadline)
            except Exception as exc:      # every failure becomes one line of the report
                results[index] = Result(error=f"{type(exc).__name__}: {exc}")

        threads = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(devices)]
        for thread in threads:
            thread.start()
        start.wait()
        began = time.monotonic()
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()) + 1.0)
        wall = time.monotonic() - began
        for index, thread in enumerate(threads):
            if thread.is_alive():
                results[index] = Result(error="TimeoutError: overall timeout")
    finally:
        for device in fleet:
            device.close()
    return results, wall


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=100)
    parser.add_argument("--size-kib", type=int, default=256)
    parser.add_argument("--broker", choices=("mosquitto", "embedded"), default="mosquitto")
    args = parser.parse_args(argv)
    if args.devices < 1 or args.size_kib < 1:
        parser.error("--devices and --size-kib must be >= 1")
    deadline = time.monotonic() + OVERALL_TIMEOUT
    image = secrets.token_bytes(args.size_kib * 1024)
    catalog = InMemoryCatalog()
    catalog.add_release(BOARD, RELEASE, image, file_name=f"{BOARD}-{RELEASE}.bin")

    with broker_url_for(args.broker) as url:
        settings = (MqttSettings(url=url) if url is not None else MqttSettings(url=None, embedded_port=0))
        with start_mqtt_services(catalog, settings) as services:
            broker_url = services.broker_url
            assert broker_url is not None
            results, wall = run_fleet(broker_url, args.devices, image, deadline)

    done = [r for r in results if not r.error]
    identical = sum(r.identical for r in results)
    errors = [r.error for r in results if r.error]
    total_bytes = identical * len(image)
    print(f"broker:               {args.broker} ({broker_url})")
    print(f"devices:              {args.devices}")
    print(f"image size:           {len(image)} bytes ({args.size_kib} KiB, "
          f"{payload_count(len(image))} chunks of {CHUNK_SIZE})")
    print(f"wall time:            {wall:.3f} s (all devices connected and subscribed before the clock)")
    print(f"aggregate:            {total_bytes / wall / 1e6:.2f} MB/s (10^6 bytes) "
          f"({identical} x {len(image)} bytes delivered intact)")
    if done:
        times = [r.seconds for r in done]
        median, worst = statistics.median(times), max(times)
        print(f"per device:           median {median:.3f} s, max {worst:.3f} s")
    else:
        median = 0.0
        print("per device:           no device finished")
    print(f"byte-identical:       {identical}/{args.devices}")
    print(f"errors:               {len(errors)}")
    for message in sorted(set(errors)):
        print(f"  {errors.count(message)} x {message}")
    peer = payload_count(len(image)) * PEER_SECONDS_PER_CHUNK
    ratio = f"{peer / median:.1f}x faster" if median > 0 else "n/a"
    print(f"peer (Infineon publisher.py, ~0.2 s per 4 KiB chunk): >= {peer:.1f} s per device "
          f"(~{len(image) / 1024 / peer:.0f} KiB/s); our median {median:.3f} s -> {ratio}")
    return 0 if identical == args.devices and not errors else 1


@contextmanager
def broker_url_for(broker: str) -> Iterator[str | None]:
    """The private Mosquitto's URL, or None for the embedded broker (started with the publisher)."""
    if broker == "mosquitto":
        with private_mosquitto() as url:
            yield url
    else:
        yield None


if __name__ == "__main__":
    sys.exit(main())
