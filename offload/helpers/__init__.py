"""Helper functions: the calls (``call N``) a program makes into the device.

The contract only: helper ids and prototypes (``prototypes.py``), shared by the verifier, the
engines and the profiles. What the helpers do when a program runs is :mod:`offload.runtime`.
"""
