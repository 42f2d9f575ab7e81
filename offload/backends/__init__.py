"""Where offloaded programs really run.

A device hands verified programs and map operations to a backend: the built-in one (the
project's verifier and engine) or :mod:`offload.backends.kernel`, which passes them to the host
Linux kernel through the ``bpf(2)`` system call, as the 2019 virtio XDP offload design did.
"""
