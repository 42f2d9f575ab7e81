"""Shared support for the test suite (data-file parsers, locations of external suites)."""
