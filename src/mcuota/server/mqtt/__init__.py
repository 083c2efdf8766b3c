"""The update service's MQTT side: the seed-002 (Infineon anycloud-ota) publisher and an embedded broker.

How ``mcuota serve`` starts it — the server's service hook, which :mod:`mcuota.server.serve` looks up
here as ``start_publisher``::

    settings.services.append(mcuota.server.mqtt.start_publisher)
    # the app enters start_publisher(ServiceContext) once the catalog is ready, leaves it at shutdown

It reads ``settings.mqtt_enabled`` (``--no-mqtt``) and ``settings.mqtt_url`` (``--mqtt-url``; None runs
the embedded amqtt broker on 127.0.0.1, port 1883 or a free one if 1883 is taken), plus, if the
server's Settings grows them, ``mqtt_port``, ``mqtt_ca_file``/``mqtt_cert_file``/``mqtt_key_file``
(for ``mqtts://``), ``mqtt_company`` and ``mqtt_boards`` (see :func:`settings_from_server`).

Without the server, one blocking call and one to undo it::

    from mcuota.server.mqtt import MqttSettings, start_mqtt_services

    mqtt = start_mqtt_services(catalog, MqttSettings(
        enabled=True,                   # False: nothing is started, mqtt.stop() is a no-op
        url=None,                       # mqtt://host[:1883] | mqtts://host[:8883]; None: embedded
        embedded_port=0,                # embedded amqtt on 127.0.0.1 (loopback only); 0 = a free port
        ca_file=None, cert_file=None, key_file=None,   # for mqtts://
    ))
    print("MQTT broker:", mqtt.broker_url)    # None when disabled
    ...
    mqtt.stop()                              # publisher first, then the embedded broker

``catalog`` is the service's :class:`~mcuota.server.catalog.UpdateCatalog`: the publisher calls only
``offer_for`` (version gating and rollouts stay there), ``artifact`` and ``record_report`` (states
"downloading", "success", "failure"), from one worker thread. Starting returns when the publisher is
subscribed, or raises ``MqttError`` (a ``McuotaError``: one line naming the broker); settings that
cannot work raise ``UsageError``. After start, a lost broker is reconnected to in the background (1 s
backoff doubling to 30 s) and resubscribed.

What devices see: the publisher listens on ``<company>/+/publish_notify`` (company "anycloud" by
default, ``MqttSettings.company``; ``boards`` narrows it) and answers on each device's unique topic —
see :mod:`mcuota.transport.seed002` for the protocol and :mod:`.handler` for the decisions. The job
document points devices back at the same broker ("Broker": "", "Port": "") unless
``MqttSettings.location`` names another, or an HTTP(S) server and path for the HTTP flow.

For the seed-002 HTTP flow, ``job_document_for(offer, JobLocation(Connection.HTTP, host, port,
"/path/{file_name}"))`` + ``mcuota.transport.seed002.build_job_document`` is the ``/ota_update.json``
body, and ``parse_http_result`` reads the device's result POST.
"""

from mcuota.server.mqtt.broker import EmbeddedBroker
from mcuota.server.mqtt.connection import BrokerEndpoint, parse_broker_url
from mcuota.server.mqtt.handler import JobLocation, Outgoing, Seed002Handler, job_document_for
from mcuota.server.mqtt.publisher import MqttError, Seed002Publisher
from mcuota.server.mqtt.services import (
    DEFAULT_EMBEDDED_PORT,
    MqttServices,
    MqttSettings,
    settings_from_server,
    start_mqtt_services,
    start_publisher,
)

__all__ = [
    "DEFAULT_EMBEDDED_PORT",
    "BrokerEndpoint",
    "EmbeddedBroker",
    "JobLocation",
    "MqttError",
    "MqttServices",
    "MqttSettings",
    "Outgoing",
    "Seed002Handler",
    "Seed002Publisher",
    "job_document_for",
    "parse_broker_url",
    "settings_from_server",
    "start_mqtt_services",
    "start_publisher",
]
