"""What a program's helper calls do when it runs: the engines' execution environment.

The XDP helpers a device implements (``xdp.py``) over the packet, maps and redirect state of
one run (``xdp_env.py``); the conformance suites' test helpers are
:mod:`offload.conformance`. The helpers' contract - ids and prototypes the verifier checks against -
is :mod:`offload.helpers`, below the engines; this package sits above them and the maps.
"""
