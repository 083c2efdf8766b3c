"""mcuota: over-the-air firmware updates for microcontrollers.

The package is layered (see DEVELOPERS.md): the pure core (``image``, ``flash``, ``emu``, ``boot``)
knows nothing of networks, files beyond paths, clocks or databases; adapters live at the edges.
"""

__version__ = "0.1.0"
