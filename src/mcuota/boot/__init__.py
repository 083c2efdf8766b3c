"""Flash layouts and bootloader strategies, run only through the NOR-flash model.

Each strategy is a reference implementation of one seed system's bootloader (Gizwits copy-with-flag,
the seed-001 header bootloader, MCUboot's overwrite / swap modes, the Interrupt boot chain, dapboot)
together with the application-side calls that request and confirm an update. Strategies touch flash
only through :class:`mcuota.flash.NorFlash`, so a power-cut sweep can interrupt any operation of them.
"""
