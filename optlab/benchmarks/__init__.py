"""Benchmarks: speed ratios measured against a baseline in the same run (never timed tests).

Run them with ``optlab bench [NAME ...]`` or ``python -m optlab.benchmarks``. Each
prints its measurements and, last, the ratio against its baseline.
"""

from optlab.benchmarks.runner import BENCHMARKS, main

__all__ = ["BENCHMARKS", "main"]
