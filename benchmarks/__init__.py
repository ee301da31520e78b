"""Benchmarks for wagtail_client_billing: ``python -m benchmarks`` (or ``make bench``).

Each figure is a ratio against a baseline measured in the same run on the same data, so
the numbers travel between machines better than absolute times. ``docs/performance.md``
explains every figure and how to rerun them.
"""
