"""NumPy random generators determined by a JAX PRNG key.

Problems are built once, in float64 NumPy (a QR factorization, a linear solve), so
their random draws come from NumPy generators seeded by the key's bits. The same key
always gives the same problem, different keys give independent ones, and building a
problem of a new size compiles no JAX sampler for that shape.
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np


def generators(where: str, key: Any, count: int) -> list[np.random.Generator]:
  """`count` independent NumPy generators seeded by `key` (default ``jax.random.key(0)``)."""
  if key is None:
    key = jax.random.key(0)
  try:
    data = np.asarray(jax.random.key_data(key))
  except (TypeError, ValueError):
    raise ValueError(
      f"{where}: key must be a JAX PRNG key such as jax.random.key(0), got {key!r}"
    ) from None
  if data.ndim != 1:
    raise ValueError(f"{where}: key must be a single PRNG key, got a batch of shape {data.shape}")
  seed = np.random.SeedSequence([int(word) for word in data.astype(np.uint32)])
  return [np.random.default_rng(child) for child in seed.spawn(count)]
