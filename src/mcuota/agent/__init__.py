"""The device's OTA agent (see DEVELOPERS.md for what this layer owns): pure decisions over ports.

* :mod:`.core` — :class:`~.core.Agent`: ``check_for_update`` (job or direct flow: download in steps,
  verify, request the update, report) and ``on_boot`` (self-test, then confirm; or detect a revert).
* :mod:`.transport` — the :class:`~.transport.Transport` port and its seed-002 HTTP and MQTT adapters.
* :mod:`.storage` — staging into the MCUboot secondary slot with a progress journal in flash.
* :mod:`.config`, :mod:`.states`, :mod:`.errors` — settings, seed-002 states/callbacks, refusal codes.
* :mod:`.memory` — an in-memory network (HTTP server, MQTT publisher) and a clock, for tests and sims.
* :mod:`.selftest` — the default self-test: the emulated core announces the expected version.

Nothing is imported here, so importing a sibling does not load the boot strategies or unicorn.
"""
