"""Which broker to talk to and how: ``mqtt://`` or ``mqtts://`` URLs and a configured paho client.

One URL names the broker everywhere (``--mqtt-url``, the embedded broker's own address, the logs);
TLS material travels beside it because a URL is the wrong place for file paths. ``mqtts://`` without
a CA file trusts the system store, as any TLS client does.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from mcuota.errors import UsageError

DEFAULT_PORTS = {"mqtt": 1883, "mqtts": 8883}


@dataclass(frozen=True)
class BrokerEndpoint:
    host: str
    port: int
    tls: bool = False
    username: str | None = None
    password: str | None = None
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    tls_insecure: bool = False      # skip the host-name check (a self-signed test broker)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'mqtts' if self.tls else 'mqtt'}://{host}:{self.port}"


def parse_broker_url(url: str, *, ca_file: str | None = None, cert_file: str | None = None,
                     key_file: str | None = None, tls_insecure: bool = False) -> BrokerEndpoint:
    """``mqtt://[user[:password]@]host[:port]`` (1883) or ``mqtts://…`` (8883)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UsageError(f"invalid MQTT broker URL {url!r}: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise UsageError(f"invalid MQTT broker URL {url!r}: the scheme must be mqtt:// or mqtts://")
    if not parts.hostname:
        raise UsageError(f"invalid MQTT broker URL {url!r}: no host")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise UsageError(f"invalid MQTT broker URL {url!r}: "
                         "only scheme, credentials, host and port are allowed")
    tls = scheme == "mqtts"
    if not tls and (ca_file or cert_file or key_file):
        raise UsageError(f"TLS files were given for the plain-text broker URL {url!r}; use mqtts://")
    if (cert_file is None) != (key_file is None):
        raise UsageError("a client certificate needs its key, and a key its certificate")
    return BrokerEndpoint(
        host=parts.hostname, port=port or DEFAULT_PORTS[scheme], tls=tls,
        username=unquote(parts.username) if parts.username is not None else None,
        password=unquote(parts.password) if parts.password is not None else None,
        ca_file=ca_file, cert_file=cert_file, key_file=key_file, tls_insecure=tls_insecure)


def make_client(endpoint: BrokerEndpoint, *, client_id: str | None = None,
                max_inflight: int = 1000) -> mqtt.Client:
    """A paho client (MQTT 3.1.1, clean session, up to ``max_inflight`` unacknowledged QoS 1 messages so
    chunks stream instead of waiting for each PUBACK) set up for ``endpoint``; not yet connected."""
    client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2,
                         client_id=client_id or f"mcuota-pub-{secrets.token_hex(4)}",
                         clean_session=True, protocol=mqtt.MQTTv311)
    client.max_inflight_messages_set(max_inflight)
    client.reconnect_delay_set(min_delay=1, max_delay=30)
    if endpoint.username is not None:
        client.username_pw_set(endpoint.username, endpoint.password)
    if endpoint.tls:
        client.tls_set(ca_certs=endpoint.ca_file, certfile=endpoint.cert_file, keyfile=endpoint.key_file)
        if endpoint.tls_insecure:
            client.tls_insecure_set(True)
    return client

