"""Helper functions: the calls (``call N``) a program makes into the device.

Each helper set is its own module: prototypes shared by verifier and engine, the XDP helpers a
device implements, and the helper table of the conformance test convention.
"""
