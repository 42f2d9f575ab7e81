"""The external judges: the bpf_conformance and uBPF suites' case format (``suite.py``) and the
test helpers their programs call by fixed ids (``helpers.py``).

Import the module you need: the conformance plugin runs one case per process and takes only
the helpers, not the assembler the suite reader needs.
"""
