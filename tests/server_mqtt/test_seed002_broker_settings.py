"""Broker URLs, TLS options and the embedded broker's limits: refused with one line, before any I/O."""

from __future__ import annotations

import pytest

from mcuota.errors import McuotaError, UsageError
from mcuota.server.catalog import InMemoryCatalog
from mcuota.server.mqtt import (
    BrokerEndpoint,
    EmbeddedBroker,
    MqttError,
    MqttSettings,
    Seed002Publisher,
    parse_broker_url,
    start_mqtt_services,
)


@pytest.mark.parametrize(("url", "expected"), [
    ("mqtt://broker.example", BrokerEndpoint("broker.example", 1883)),
    ("mqtt://127.0.0.1:2883", BrokerEndpoint("127.0.0.1", 2883)),
    ("mqtts://broker.example", BrokerEndpoint("broker.example", 8883, tls=True)),
    ("MQTTS://b:8884/", BrokerEndpoint("b", 8884, tls=True)),
    ("mqtt://ota%40fleet:s3cr%2Ft@b", BrokerEndpoint("b", 1883, username="ota@fleet", password="s3cr/t")),
    ("mqtt://[::1]:1884", BrokerEndpoint("::1", 1884)),
])
def test_broker_urls(url: str, expected: BrokerEndpoint) -> None:
    assert parse_broker_url(url) == expected


def test_endpoint_url_round_trip() -> None:
    for url in ("mqtt://b:1883", "mqtts://b:8883", "mqtt://[::1]:1884"):
        assert parse_broker_url(url).url == url


@pytest.mark.parametrize("url", ["http://b", "b:1883", "mqtt://", "mqtt://b:99999", "mqtt://b/topic",
                                 "mqtt://b?tls=1", "tcp://b:1883"])
def test_bad_broker_urls(url: str) -> None:
    with pytest.raises(UsageError, match="invalid MQTT broker URL"):
        parse_broker_url(url)


def test_tls_options_need_mqtts_and_pairs() -> None:
    with pytest.raises(UsageError, match="mqtts://"):
        parse_broker_url("mqtt://b", ca_file="ca.pem")
    with pytest.raises(UsageError, match="key"):
        parse_broker_url("mqtts://b", cert_file="client.pem")
    endpoint = parse_broker_url("mqtts://b", ca_file="ca.pem", cert_file="c.pem", key_file="c.key",
                                tls_insecure=True)
    assert (endpoint.ca_file, endpoint.cert_file, endpoint.key_file, endpoint.tls_insecure) == (
        "ca.pem", "c.pem", "c.key", True)


def test_missing_tls_files_are_a_usage_error() -> None:
    endpoint = parse_broker_url("mqtts://127.0.0.1", ca_file="/nonexistent/ca.pem")
    with pytest.raises(UsageError, match="TLS"):
        Seed002Publisher(InMemoryCatalog(), endpoint)


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.10", "example.com", "::"])  # noqa: S104
def test_embedded_broker_is_loopback_only(host: str) -> None:
    with pytest.raises(UsageError, match="loopback only"):
        EmbeddedBroker(host, 0)
    with pytest.raises(UsageError, match="loopback only"):
        start_mqtt_services(InMemoryCatalog(), MqttSettings(embedded_host=host, embedded_port=0))


def test_errors_are_mcuota_errors() -> None:
    assert issubclass(MqttError, McuotaError)
    with pytest.raises(UsageError):
        EmbeddedBroker("127.0.0.1", 70000)
