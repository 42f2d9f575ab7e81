"""Benchmarks (not tests): ``python bench/run_all.py`` measures everything in one run."""
