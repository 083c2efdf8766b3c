"""The update service: releases, devices, rollouts, and delivery over HTTP and MQTT.

Built as ``create_app(settings)`` (no module-level app or engine); storage, the database and the MQTT
publisher are adapters behind small interfaces, each with an in-memory implementation for tests.

Where things are:

* :func:`mcuota.server.app.create_app` and :class:`mcuota.server.settings.Settings` — the ASGI app;
  :func:`mcuota.server.serve.run` is ``mcuota serve``.
* :class:`mcuota.server.fleet.Fleet` — all state and decisions over the database; it is the
  database-backed :class:`~mcuota.server.catalog.UpdateCatalog` every delivery path shares.
* ``Settings.services`` — long-lived services (the MQTT publisher) as factories of async context
  managers taking a :class:`~mcuota.server.settings.ServiceContext` (settings, catalog, fleet, log).
* :mod:`.rollout_policy` (stages and halting), :mod:`.ranges` (HTTP byte ranges) and
  :mod:`.release_check` (what may become a release) are pure.
* Routes: :mod:`.api_admin` (``/api/v1``, operator keys with scopes), :mod:`.api_device`
  (``/api/v1/device``, device tokens), :mod:`.api_seed002` (``/seed002/{serial}/``, the Infineon
  agent's HTTP job flow). Schema migrations ship in :mod:`.migrations` and run at start-up.
"""
