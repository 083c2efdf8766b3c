"""The thin command-line layer: parses arguments, calls the library, prints. No logic lives only here."""
