"""Firmware image formats and crypto: build, sign, verify, inspect, convert.

Pure: every function here takes and returns bytes (file wrappers are thin and named ``*_file``), so
the bootloaders, the server and the agent share exactly one implementation of each format.
"""
