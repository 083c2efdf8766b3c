"""The emulated Cortex-M core: does the installed firmware really run? See DEVELOPERS.md for the layer.

``vectors`` checks a vector table without running anything (pure, microseconds); ``machine`` boots
firmware on unicorn with ``peripherals`` behind the bus and ``parts`` describing the chip; ``banner``
reads the version the firmware announces. Nothing is imported here, so importing a sibling module
does not load unicorn.
"""
