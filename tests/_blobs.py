"""Three Gaussian blobs in four dimensions: a tiny classification set shared by the fit tests."""

import numpy as np


def blobs(n=240, seed=0, noise=0.6):
  """`n` points (x float32 (n, 4), y int32 in {0, 1, 2}) around three unit-axis centres."""
  rng = np.random.default_rng(seed)
  centers = np.array([[2, 0, 0, 0], [0, 2, 0, 0], [0, 0, 2, 0]], np.float32)
  y = rng.integers(0, 3, size=n).astype(np.int32)
  x = (centers[y] + noise * rng.normal(size=(n, 4))).astype(np.float32)
  return x, y
