"""Strongly convex quadratics with a chosen spectrum and condition number."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from optlab.problems import _random, _validation
from optlab.problems.base import Problem

SPECTRA = ("linear", "geometric")


@dataclasses.dataclass(frozen=True, eq=False, kw_only=True)
class Quadratic(Problem):
  """f(x) = ½ (x − x*)ᵀ A (x − x*) + f*, with A symmetric positive definite.

  ∇f(x) = A (x − x*) is computed in that form, not as A x − b, so it vanishes
  exactly at x* and never loses digits to cancellation near it. f is μ-strongly
  convex and L-smooth with μ = λ_min(A), L = λ_max(A); gradient descent with step
  1/L contracts ‖x − x*‖ by at least 1 − 1/κ per step, κ = L/μ (Nesterov 2004,
  Sec. 2.1).

  `value` is built from `hessian`, `minimizer` and `optimal_value` when the
  problem is constructed (a `value` passed in is replaced), so
  `dataclasses.replace` gives a consistent problem.

  Attributes:
    hessian: A, shape (dim, dim), symmetric positive definite.
    eigenvalues: the eigenvalues of A in ascending order.
    mu: the smallest eigenvalue μ (strong-convexity constant).
    L: the largest eigenvalue L (smoothness constant).

  Build one with `quadratic` or `quadratic_from_eigenvalues`.
  """

  hessian: jax.Array
  eigenvalues: jax.Array
  mu: float
  L: float

  def __post_init__(self) -> None:
    super().__post_init__()
    hessian, x_star, f_star = self.hessian, self.minimizer, self.optimal_value

    def value(x: jax.Array) -> jax.Array:
      d = x - x_star
      return 0.5 * jnp.dot(d, hessian @ d) + f_star

    object.__setattr__(self, "value", value)

  @property
  def condition_number(self) -> float:
    """κ = L / μ."""
    return self.L / self.mu

  def grad(self, x: jax.Array) -> jax.Array:
    """∇f(x) = A (x − x*)."""
    return self.hessian @ (x - self.minimizer)

  def value_and_grad(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(f(x), ∇f(x)), sharing the product A (x − x*)."""
    d = x - self.minimizer
    g = self.hessian @ d
    return 0.5 * jnp.dot(d, g) + self.optimal_value, g


def _random_orthogonal(rng: np.random.Generator, dim: int) -> np.ndarray:
  """A Haar-distributed orthogonal matrix: QR of a Gaussian matrix, signs fixed by diag(R).

  Reference: Mezzadri, "How to generate random matrices from the classical compact
  groups", Notices of the AMS 54(5), 2007.
  """
  q, r = np.linalg.qr(rng.standard_normal((dim, dim)))
  return q * np.where(np.diag(r) >= 0.0, 1.0, -1.0)


def _build(
  where: str,
  eigenvalues: np.ndarray,
  *,
  rotate: bool,
  minimizer: Any,
  optimal_value: float,
  key: jax.Array | None,
  dtype: Any,
) -> Quadratic:
  """Builds the quadratic with ascending float64 `eigenvalues` (already checked)."""
  dtype = _validation.check_dtype(where, dtype)
  optimal_value = _validation.check_real(where, "optimal_value", optimal_value)
  dim = eigenvalues.shape[0]
  # The same three streams whatever `rotate` is, so a key fixes x* and init either way.
  rng_basis, rng_minimizer, rng_init = _random.generators(where, key, 3)

  if rotate:
    basis = _random_orthogonal(rng_basis, dim)
    hessian = (basis * eigenvalues) @ basis.T
    hessian = 0.5 * (hessian + hessian.T)
  else:
    hessian = np.diag(eigenvalues)

  if minimizer is None:
    x_star = rng_minimizer.standard_normal(dim)
  else:
    x_star = _validation.check_vector(where, "minimizer", minimizer, dim)
  direction = rng_init.standard_normal(dim)
  init = x_star + math.sqrt(dim) * direction / np.linalg.norm(direction)

  return Quadratic(
    name="quadratic",
    value=None,  # built from hessian, minimizer and optimal_value
    init=jnp.asarray(init, dtype=dtype),
    minimizer=jnp.asarray(x_star, dtype=dtype),
    optimal_value=optimal_value,
    hessian=jnp.asarray(hessian, dtype=dtype),
    eigenvalues=jnp.asarray(eigenvalues, dtype=dtype),
    mu=float(eigenvalues[0]),
    L=float(eigenvalues[-1]),
  )


def quadratic(
  dim: int = 50,
  condition_number: float = 100.0,
  *,
  mu: float = 1.0,
  spectrum: str = "linear",
  rotate: bool = True,
  minimizer: jax.Array | None = None,
  optimal_value: float = 0.0,
  key: jax.Array | None = None,
  dtype: Any = jnp.float32,
) -> Quadratic:
  """A strongly convex quadratic with condition number κ: f(x) = ½ (x − x*)ᵀ A (x − x*) + f*.

  A = Q diag(λ₁, …, λ_d) Qᵀ with λ₁ = μ and λ_d = L = κ μ. With
  ``spectrum="linear"`` the λᵢ are evenly spaced in [μ, L] (both ends included);
  with ``spectrum="geometric"`` they are evenly spaced in log scale. Q is a random
  (Haar) orthogonal matrix drawn from `key` when `rotate`, else the identity (so A
  is diagonal and the problem is axis-aligned, which favours diagonal
  preconditioners such as Adam's). The starting point is x* plus a random
  direction of norm √d, so every eigen-direction starts excited (almost surely).

  Args:
    dim: the number of variables d, at least 1.
    condition_number: κ = L/μ, finite and at least 1 (exactly 1 when dim is 1).
    mu: the smallest eigenvalue μ > 0.
    spectrum: ``"linear"`` or ``"geometric"`` spacing of the eigenvalues.
    rotate: rotate the eigenbasis randomly (True) or keep A diagonal (False).
    minimizer: x*, shape (dim,); by default drawn from N(0, I) with `key`.
    optimal_value: f* = f(x*).
    key: the JAX PRNG key for the basis, the minimizer and the start; default
      ``jax.random.key(0)``. Its bits seed the NumPy generators that build the
      problem in float64, so equal keys give equal problems.
    dtype: the floating dtype of every array in the problem.

  Returns:
    A `Quadratic` with `hessian`, `eigenvalues`, `mu`, `L` and `condition_number`.

  Example:
    >>> q = quadratic(dim=10, condition_number=1e3, spectrum="geometric")
    >>> q.mu, q.L, q.condition_number
    (1.0, 1000.0, 1000.0)
    >>> float(q.value(q.minimizer))
    0.0

  Reference: Nesterov, "Introductory Lectures on Convex Optimization", 2004, Sec. 2.1
  (the worst-case function class); the rotation follows Mezzadri, Notices of the AMS, 2007.
  """
  where = "quadratic"
  dim = _validation.check_int(where, "dim", dim, 1)
  condition_number = _validation.check_real(where, "condition_number", condition_number, 1.0)
  mu = _validation.check_real(where, "mu", mu, 0.0, low_inclusive=False)
  spectrum = _validation.check_choice(where, "spectrum", spectrum, SPECTRA)
  if dim == 1 and condition_number != 1.0:
    raise ValueError(
      f"{where}: condition_number must be 1 when dim=1 (one eigenvalue), got {condition_number!r}"
    )
  largest = mu * condition_number
  if not math.isfinite(largest):
    raise ValueError(
      f"{where}: mu * condition_number must be finite, got mu={mu!r}, "
      f"condition_number={condition_number!r}"
    )
  if spectrum == "linear":
    eigenvalues = np.linspace(mu, largest, dim)
  else:
    eigenvalues = np.geomspace(mu, largest, dim)
  eigenvalues[0], eigenvalues[-1] = mu, largest  # exact ends, whatever the spacing rounds to
  return _build(
    where,
    eigenvalues,
    rotate=rotate,
    minimizer=minimizer,
    optimal_value=optimal_value,
    key=key,
    dtype=dtype,
  )


def quadratic_from_eigenvalues(
  eigenvalues: Any,
  *,
  rotate: bool = True,
  minimizer: jax.Array | None = None,
  optimal_value: float = 0.0,
  key: jax.Array | None = None,
  dtype: Any = jnp.float32,
) -> Quadratic:
  """A quadratic with a given spectrum: f(x) = ½ (x − x*)ᵀ Q diag(λ) Qᵀ (x − x*) + f*.

  The eigenvalues are sorted ascending; μ and L are the smallest and largest. The
  basis Q, x* and the start are drawn from `key` exactly as in `quadratic`.

  Args:
    eigenvalues: a non-empty 1-D array of finite, positive eigenvalues (any order).
    rotate: rotate the eigenbasis randomly (True) or keep the Hessian diagonal (False).
    minimizer: x*, shape (len(eigenvalues),); by default drawn from N(0, I) with `key`.
    optimal_value: f* = f(x*).
    key: the PRNG key; default ``jax.random.key(0)``.
    dtype: the floating dtype of every array in the problem.

  Returns:
    A `Quadratic`.

  Example:
    >>> q = quadratic_from_eigenvalues([10.0, 1.0, 1.0], rotate=False)
    >>> q.eigenvalues.tolist(), q.condition_number
    ([1.0, 1.0, 10.0], 10.0)

  Reference: Nesterov, "Introductory Lectures on Convex Optimization", 2004, Sec. 2.1.
  """
  where = "quadratic_from_eigenvalues"
  try:
    values = np.asarray(eigenvalues, dtype=np.float64)
  except (TypeError, ValueError):
    raise ValueError(
      f"{where}: eigenvalues must be a 1-D array of numbers, got {eigenvalues!r}"
    ) from None
  if values.ndim != 1 or values.size == 0:
    raise ValueError(
      f"{where}: eigenvalues must be a non-empty 1-D array, got shape {values.shape}"
    )
  if not np.all(np.isfinite(values)) or not np.all(values > 0.0):
    raise ValueError(f"{where}: eigenvalues must all be finite and > 0, got {values.tolist()!r}")
  return _build(
    where,
    np.sort(values),
    rotate=rotate,
    minimizer=minimizer,
    optimal_value=optimal_value,
    key=key,
    dtype=dtype,
  )
