"""Timing helpers: best-of-repeats wall time of a function that blocks until done."""

from __future__ import annotations

import time
from collections.abc import Callable


def best_time(fn: Callable[[], object], *, repeats: int = 5, warmup: int = 1) -> float:
  """The fastest of `repeats` calls of `fn` (after `warmup` calls), in seconds."""
  for _ in range(warmup):
    fn()
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    fn()
    times.append(time.perf_counter() - start)
  return min(times)
