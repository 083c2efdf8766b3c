"""The update service: releases, devices, rollouts, and delivery over HTTP and MQTT.

Built as ``create_app(settings)`` (no module-level app or engine); storage, the database and the MQTT
publisher are adapters behind small interfaces, each with an in-memory implementation for tests.
"""
