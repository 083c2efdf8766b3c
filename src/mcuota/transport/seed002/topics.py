"""Seed-002 MQTT topic names.

The publisher listens on ``<company>/<board>/publish_notify`` (company "anycloud" in the seed's release,
"OTAUpdate" in later ones); a device invents a unique topic ``<company>/<board>/OTAImage/<n>`` and is
answered there; the direct flow (no job document) uses ``<company>/<board>/OTAImage``. The board in
the topic is the device's build-time ``CY_TARGET_BOARD_STRING``, which is more trustworthy than the
request's "BoardName" (the agent's default template hard-codes one board for every kit).
"""

from __future__ import annotations

from mcuota.transport.seed002.results import OtaError, Seed002Error

DEFAULT_COMPANY = "anycloud"
PUBLISH_NOTIFY = "publish_notify"
OTA_IMAGE = "OTAImage"
QOS = 1
KEEPALIVE_SECONDS = 60
MAX_TOPIC_BYTES = 65535


def check_topic_segment(value: str, what: str) -> str:
    """A company or board name: one topic level, no wildcards."""
    if not value or any(ch in value for ch in "/+#\x00"):
        raise Seed002Error(OtaError.MALFORMED_JOB_DOC, f"{what} {value!r} is not a single MQTT topic level")
    return value


def check_topic_name(topic: str) -> str:
    """A topic a message may be published to (MQTT 3.1.1 §4.7): non-empty, no wildcards, no NUL."""
    if not topic:
        raise Seed002Error(OtaError.MALFORMED_JOB_DOC, "unique topic name is empty")
    if any(ch in topic for ch in "+#\x00"):
        raise Seed002Error(OtaError.MALFORMED_JOB_DOC,
                           f"unique topic name {topic!r} contains a wildcard or NUL")
    if len(topic.encode("utf-8")) > MAX_TOPIC_BYTES:
        raise Seed002Error(OtaError.MALFORMED_JOB_DOC, "unique topic name is longer than 65535 bytes")
    return topic


def notify_topic(company: str, board: str) -> str:
    """Where devices of ``board`` send every request and result."""
    return f"{check_topic_segment(company, 'company')}/{check_topic_segment(board, 'board')}/{PUBLISH_NOTIFY}"


def notify_filter(company: str) -> str:
    """One subscription for every board's notify topic."""
    return f"{check_topic_segment(company, 'company')}/+/{PUBLISH_NOTIFY}"


def unique_topic(company: str, board: str, n: int) -> str:
    """The agent's unique topic; it uses the low 16 bits of its tick counter for ``n``."""
    return f"{check_topic_segment(company, 'company')}/{check_topic_segment(board, 'board')}/{OTA_IMAGE}/{n}"


def direct_topic(company: str, board: str) -> str:
    """Where the direct flow (no job document) delivers the image."""
    return f"{check_topic_segment(company, 'company')}/{check_topic_segment(board, 'board')}/{OTA_IMAGE}"


def board_of_notify_topic(topic: str, company: str) -> str | None:
    """The board level of ``<company>/<board>/publish_notify``, or None for any other topic."""
    parts = topic.split("/")
    if len(parts) != 3 or parts[0] != company or parts[2] != PUBLISH_NOTIFY or not parts[1]:
        return None
    return parts[1]
