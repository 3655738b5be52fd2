"""Synthetic classification problems with known structure, generated from a seed."""

from __future__ import annotations

import numpy as np

from optlab.data.base import Dataset

KINDS = ("blobs", "teacher")


def _check_positive(**values: int) -> None:
  for name, value in values.items():
    if int(value) != value or value < 1:
      raise ValueError(f"{name} must be a positive int, got {value!r}")


def synthetic_classification(
  n: int = 1000,
  dim: int = 20,
  num_classes: int = 2,
  seed: int = 0,
  separation: float = 2.0,
  kind: str = "blobs",
) -> Dataset:
  """Gaussian blobs, or labels from a random linear (softmax) teacher.

  "blobs": class c has mean μ_c = (separation/√2)·u_c with u_c a random unit
  vector, and x = μ_c + N(0, I); random unit vectors in high dimension are
  near-orthogonal, so class means lie about `separation` noise-stds apart.
  Classes are balanced (n // num_classes each, the remainder spread over the
  first classes).

  "teacher": x ~ N(0, I), W ~ N(0, I) of shape (dim, num_classes), and
  y ~ softmax(separation · xᵀW / √dim): `separation` is the teacher's inverse
  temperature, large values give nearly deterministic labels (argmax).

  Args:
    n: number of examples.
    dim: input dimension.
    num_classes: number of classes, >= 2.
    seed: seed of the numpy generator.
    separation: distance between blob means, or the teacher's inverse temperature (>= 0).
    kind: "blobs" or "teacher".

  Returns:
    A classification `Dataset`: x float32 (n, dim), y int32.

  Example:
    >>> ds = synthetic_classification(n=6, dim=3, num_classes=3)
    >>> ds.x.shape, sorted(ds.y.tolist())
    ((6, 3), [0, 0, 1, 1, 2, 2])
  """
  _check_positive(n=n, dim=dim)
  if num_classes < 2:
    raise ValueError(f"num_classes must be >= 2, got {num_classes}")
  if separation < 0:
    raise ValueError(f"separation must be >= 0, got {separation}")
  if kind not in KINDS:
    raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
  rng = np.random.default_rng(seed)
  if kind == "blobs":
    directions = rng.standard_normal((num_classes, dim))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    means = separation / np.sqrt(2.0) * directions
    y = rng.permutation(np.arange(n) % num_classes)
    x = means[y] + rng.standard_normal((n, dim))
  else:
    x = rng.standard_normal((n, dim))
    w = rng.standard_normal((dim, num_classes))
    logits = separation * (x @ w) / np.sqrt(dim)
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    y = (rng.random((n, 1)) > np.cumsum(p, axis=1)).sum(axis=1)
    y = np.minimum(y, num_classes - 1)  # guards the last cumsum's rounding below 1
  return Dataset(
    name="synthetic_classification",
    x=x.astype(np.float32),
    y=y.astype(np.int32),
    num_classes=num_classes,
    task="classification",
    description=f"{kind}: n={n}, dim={dim}, {num_classes} classes, separation={separation}, "
    f"seed={seed}",
    source="generated",
  )


def _zipf_probabilities(dim: int, exponent: float, density: float) -> np.ndarray:
  """p_j = min(1, c·(j+1)^-exponent), with c found by bisection so that mean(p) = density."""
  base = np.arange(1, dim + 1, dtype=np.float64) ** -exponent
  lo, hi = 0.0, 1.0 / base[-1]  # at hi every p_j is 1, the mean is 1 >= density
  for _ in range(200):
    mid = 0.5 * (lo + hi)
    if np.minimum(1.0, mid * base).mean() < density:
      lo = mid
    else:
      hi = mid
  return np.minimum(1.0, hi * base)


def sparse_logistic(
  n: int = 2000,
  dim: int = 1000,
  seed: int = 0,
  zipf_exponent: float = 1.0,
  density: float = 0.02,
  teacher_density: float = 0.1,
  logit_scale: float = 4.0,
) -> Dataset:
  """Bag-of-words-like binary features with a sparse logistic teacher.

  A stand-in for the IMDB bag-of-words task of Kingma & Ba (2015, Sec. 6.1):
  feature j ("the j-th most common word") is present in an example with
  probability p_j ∝ (j+1)^-zipf_exponent (capped at 1), scaled so that on
  average a fraction `density` of the features is on. The teacher w has a
  fraction `teacher_density` of non-zero N(0, 1) weights; its logits
  z = x·w are centered and scaled to standard deviation `logit_scale`, and
  y ~ Bernoulli(sigmoid(z)). Rare features are informative but seldom seen:
  the regime where adaptive methods help.

  Args:
    n: number of examples.
    dim: number of features (vocabulary size).
    seed: seed of the numpy generator.
    zipf_exponent: Zipf exponent s >= 0 of feature frequencies (0: all equally common).
    density: mean fraction of non-zero features per example, in (0, 1].
    teacher_density: fraction of non-zero teacher weights, in (0, 1].
    logit_scale: standard deviation of the teacher's logits (> 0); larger means
      less label noise.

  Returns:
    A 2-class `Dataset`: x float32 (n, dim) in {0, 1}, y int32.

  Example:
    >>> ds = sparse_logistic(n=100, dim=50, density=0.1)
    >>> ds.x.shape, set(np.unique(ds.x).tolist()) <= {0.0, 1.0}
    ((100, 50), True)
  """
  _check_positive(n=n, dim=dim)
  if zipf_exponent < 0:
    raise ValueError(f"zipf_exponent must be >= 0, got {zipf_exponent}")
  if not 0.0 < density <= 1.0:
    raise ValueError(f"density must be in (0, 1], got {density}")
  if not 0.0 < teacher_density <= 1.0:
    raise ValueError(f"teacher_density must be in (0, 1], got {teacher_density}")
  if logit_scale <= 0:
    raise ValueError(f"logit_scale must be > 0, got {logit_scale}")
  rng = np.random.default_rng(seed)
  p = _zipf_probabilities(dim, zipf_exponent, density)
  x = (rng.random((n, dim)) < p).astype(np.float32)
  w = np.zeros(dim)
  support = rng.choice(dim, size=max(1, round(teacher_density * dim)), replace=False)
  w[support] = rng.standard_normal(len(support))
  z = x.astype(np.float64) @ w
  z = (z - z.mean()) / max(z.std(), 1e-12) * logit_scale
  y = (rng.random(n) < 1.0 / (1.0 + np.exp(-z))).astype(np.int32)
  return Dataset(
    name="sparse_logistic",
    x=x,
    y=y,
    num_classes=2,
    task="classification",
    description=f"Zipf(s={zipf_exponent}) binary features, density {density}, sparse "
    f"logistic teacher ({teacher_density} of {dim} weights), n={n}, seed={seed}",
    source="generated",
  )
