"""The least-squares construction of Wilson et al. (2017) on which adaptive methods overfit."""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from optlab.problems import _random, _validation
from optlab.problems.base import Problem

# Each training point owns a block of this many coordinates after the first three.
_BLOCK = 5


@dataclasses.dataclass(frozen=True, eq=False, kw_only=True)
class LeastSquares(Problem):
  """f(w) = ½ ‖X w − y‖², with the minimum-norm interpolating solution as x*.

  The objective is the paper's ½‖Xw − y‖²₂, a sum over points (not a mean). With
  more features than points and X of full row rank, f* = 0 and the minimizers
  form an affine subspace; `minimizer` is the one of least norm, w* = X⁺ y =
  Xᵀ (X Xᵀ)⁻¹ y, which is where gradient descent and SGD started from w = 0 converge
  (their iterates stay in the row space of X). Adaptive methods (AdaGrad, RMSProp,
  Adam) converge to other interpolating solutions that generalize worse.

  `value` is built from `features` and `labels` when the problem is constructed (a
  `value` passed in is replaced), so `dataclasses.replace` gives a consistent problem.

  Attributes:
    features: X, shape (n, d).
    labels: y ∈ {−1, +1}ⁿ, in the dtype of X.
    p: the probability of the positive class, used to draw test points.

  Build one with `wilson_least_squares`.

  Reference: Wilson, Roelofs, Stern, Srebro & Recht, "The Marginal Value of Adaptive
  Gradient Methods in Machine Learning", NeurIPS 2017, Sec. 3.3.
  """

  features: jax.Array
  labels: jax.Array
  p: float

  def __post_init__(self) -> None:
    super().__post_init__()
    features, labels = self.features, self.labels

    def value(w: jax.Array) -> jax.Array:
      residual = features @ w - labels
      return 0.5 * jnp.dot(residual, residual)

    object.__setattr__(self, "value", value)

  def grad(self, w: jax.Array) -> jax.Array:
    """∇f(w) = Xᵀ (X w − y)."""
    return self.features.T @ (self.features @ w - self.labels)

  def value_and_grad(self, w: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(f(w), ∇f(w)), sharing the residual X w − y."""
    residual = self.features @ w - self.labels
    return 0.5 * jnp.dot(residual, residual), self.features.T @ residual

  def test_set(self, n_test: int, key: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Fresh points (X_test, y_test) from the training distribution, written in Rᵈ.

    A new point has a label y ~ ±1 (P(+1) = p), the features (y, 1, 1), and one
    (y = +1) or five (y = −1) "unique" features of its own. Those unique
    coordinates are new: no training point has them, so they lie outside the d
    coordinates of the model and any w ∈ Rᵈ gives them weight 0. Each test row is
    therefore (y, 1, 1, 0, …, 0), and a linear model predicts
    sign(w₁ y + w₂ + w₃) from the first three weights alone.

    Args:
      n_test: the number of points, at least 1.
      key: the PRNG key for the labels.

    Returns:
      features of shape (n_test, d) and labels of shape (n_test,), both in the
      dtype of the training features.
    """
    n_test = _validation.check_int("LeastSquares.test_set", "n_test", n_test, 1)
    positive = jax.random.bernoulli(key, self.p, (n_test,))
    labels = jnp.where(positive, 1.0, -1.0).astype(self.features.dtype)
    ones = jnp.ones((n_test, 2), self.features.dtype)
    zeros = jnp.zeros((n_test, self.dim - 3), self.features.dtype)
    features = jnp.concatenate([labels[:, None], ones, zeros], axis=1)
    return features, labels

  def accuracy(self, w: jax.Array, features: jax.Array, labels: jax.Array) -> jax.Array:
    """mean(sign(X w) = y); a score of exactly 0 (sign 0) counts as an error."""
    return jnp.mean(jnp.sign(features @ w) == labels)


def wilson_least_squares(
  n: int = 50,
  p: float = 0.7,
  *,
  key: jax.Array | None = None,
  dtype: Any = jnp.float32,
) -> LeastSquares:
  """The Wilson et al. (2017) least-squares problem: f(w) = ½ ‖X w − y‖², w ∈ R³⁺⁵ⁿ.

  Point i has label yᵢ = +1 with probability p, else −1, and features (0-based)
  xᵢ[0] = yᵢ, xᵢ[1] = xᵢ[2] = 1, xᵢ[3 + 5i + k] = 1 for k = 0 when yᵢ = +1 and for
  k = 0, …, 4 when yᵢ = −1 (one unique feature for a positive point, five for a
  negative one), and 0 elsewhere; so d = 3 + 5n. The start is w = 0.

  Gradient descent from 0 converges to the minimum-norm solution w* (the problem's
  `minimizer`), which classifies every new point correctly whenever both classes
  occur in the training set, while adaptive methods converge to a solution that
  labels every new point positive when the training set has more positive than
  negative points, for test accuracy ≈ p (the paper's Sec. 3.3).
  `LeastSquares.test_set` draws new points and `LeastSquares.accuracy` scores a w
  on them.

  Args:
    n: the number of training points, at least 1.
    p: the probability of the positive class, in (0, 1); the paper takes p > ½.
    key: the JAX PRNG key for the labels; default ``jax.random.key(0)``. Its bits
      seed the NumPy generator that draws them, so equal keys give equal problems.
    dtype: the floating dtype of X, y, w* and the start.

  Returns:
    A `LeastSquares` problem named ``"wilson_least_squares"``.

  Example:
    >>> import jax
    >>> ls = wilson_least_squares(n=20)
    >>> ls.features.shape
    (20, 103)
    >>> x_test, y_test = ls.test_set(1000, jax.random.key(1))
    >>> float(ls.accuracy(ls.minimizer, x_test, y_test))
    1.0

  Reference: Wilson, Roelofs, Stern, Srebro & Recht, "The Marginal Value of Adaptive
  Gradient Methods in Machine Learning", NeurIPS 2017, Sec. 3.3.
  """
  where = "wilson_least_squares"
  n = _validation.check_int(where, "n", n, 1)
  p = _validation.check_real(where, "p", p, 0.0, 1.0, low_inclusive=False, high_inclusive=False)
  dtype = _validation.check_dtype(where, dtype)
  (rng,) = _random.generators(where, key, 1)

  labels = np.where(rng.random(n) < p, 1.0, -1.0)
  dim = 3 + _BLOCK * n
  features = np.zeros((n, dim))
  features[:, 0] = labels
  features[:, 1:3] = 1.0
  rows = np.arange(n)
  offsets = np.arange(_BLOCK)
  unique = offsets[None, :] < np.where(labels > 0, 1, _BLOCK)[:, None]  # (n, 5)
  columns = 3 + _BLOCK * rows[:, None] + offsets[None, :]
  features[np.broadcast_to(rows[:, None], columns.shape)[unique], columns[unique]] = 1.0

  # X has full row rank (each row owns its unique coordinates), so X⁺ y = Xᵀ (X Xᵀ)⁻¹ y.
  minimum_norm = features.T @ np.linalg.solve(features @ features.T, labels)

  return LeastSquares(
    name="wilson_least_squares",
    value=None,  # built from features and labels
    init=jnp.zeros(dim, dtype=dtype),
    minimizer=jnp.asarray(minimum_norm, dtype=dtype),
    optimal_value=0.0,
    features=jnp.asarray(features, dtype=dtype),
    labels=jnp.asarray(labels, dtype=dtype),
    p=p,
  )
