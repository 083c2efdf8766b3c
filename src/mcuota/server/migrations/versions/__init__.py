"""One module per schema revision, applied in order by :func:`mcuota.server.db.migrate`."""
