"""Classic non-convex test functions: Rosenbrock and Beale."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from optlab.problems import _validation
from optlab.problems.base import Problem


def rosenbrock(
  a: float = 1.0, b: float = 100.0, dim: int = 2, *, dtype: Any = jnp.float32
) -> Problem:
  """The (chained) Rosenbrock function: f(x) = Σᵢ₌₁ᵈ⁻¹ b (xᵢ₊₁ − xᵢ²)² + (a − xᵢ)².

  A narrow curved valley along xᵢ₊₁ = xᵢ² that first-order methods follow slowly.
  For dim = 2 the global minimizer is x* = (a, a²) for any a, with f* = 0. For
  dim > 2 the terms are chained (the form of `scipy.optimize.rosen`), so f* = 0 is
  reached only when a = a², i.e. a ∈ {0, 1}, where x* = (a, …, a); other values of
  `a` are rejected because the minimizer would not be known. The start is the
  classic (−1.2, 1.0), repeated as (−1.2, 1.0, −1.2, …) in higher dimensions
  (Moré, Garbow & Hillstrom 1981). `bounds` frames x* and the start for a 2-D
  contour plot: ((−2, 2), (−1, 3)) when a = 1, widened to contain x* otherwise;
  None when dim > 2.

  Args:
    a: the valley's target; any finite value when dim = 2, else 0 or 1.
    b: the valley's steepness, finite and > 0.
    dim: the number of variables, at least 2.
    dtype: the floating dtype of `init` and `minimizer` (float64 needs
      ``jax.enable_x64``).

  Returns:
    A `Problem` named ``"rosenbrock"``.

  Example:
    >>> p = rosenbrock()
    >>> p.minimizer.tolist(), float(p.value(p.init))
    ([1.0, 1.0], 24.2...)

  Reference: Rosenbrock, "An automatic method for finding the greatest or least value
  of a function", The Computer Journal 3(3), 1960; the chained n-D form and its
  minimizers: Shang & Qiu, "A note on the extended Rosenbrock function", Evolutionary
  Computation 14(1), 2006.
  """
  where = "rosenbrock"
  a = _validation.check_real(where, "a", a)
  b = _validation.check_real(where, "b", b, 0.0, low_inclusive=False)
  dim = _validation.check_int(where, "dim", dim, 2)
  if dim > 2 and a not in (0.0, 1.0):
    raise ValueError(
      f"{where}: a must be 0 or 1 when dim > 2 (the chained form reaches f* = 0 at "
      f"(a, ..., a) only if a = a²), got a={a!r} with dim={dim}"
    )

  def value(x: jax.Array) -> jax.Array:
    head, tail = x[:-1], x[1:]
    return jnp.sum(b * (tail - head**2) ** 2 + (a - head) ** 2)

  minimizer = np.full(dim, a)
  minimizer[-1] = a**2
  init = np.where(np.arange(dim) % 2 == 0, -1.2, 1.0)
  bounds = None
  if dim == 2:
    bounds = (
      (min(-2.0, a - 1.0), max(2.0, a + 1.0)),
      (min(-1.0, a**2 - 1.0), max(3.0, a**2 + 1.0)),
    )
  return Problem(
    name="rosenbrock",
    value=value,
    init=jnp.asarray(init, dtype=_validation.check_dtype("rosenbrock", dtype)),
    minimizer=jnp.asarray(minimizer, dtype=_validation.check_dtype("rosenbrock", dtype)),
    optimal_value=0.0,
    bounds=bounds,
  )


def beale(*, dtype: Any = jnp.float32) -> Problem:
  """The Beale function: f(x, y) = (1.5 − x + xy)² + (2.25 − x + xy²)² + (2.625 − x + xy³)².

  Flat plateaus and steep ridges around a single global minimizer x* = (3, 0.5)
  with f* = 0. The start is (1, 1), the standard one of Moré, Garbow & Hillstrom
  (1981, problem 5). `bounds` = ((−4.5, 4.5), (−4.5, 4.5)), the usual plotting
  and search domain.

  Args:
    dtype: the floating dtype of `init` and `minimizer` (float64 needs
      ``jax.enable_x64``).

  Returns:
    A 2-D `Problem` named ``"beale"``.

  Example:
    >>> p = beale()
    >>> float(p.value(p.minimizer)), float(p.value(p.init))
    (0.0, 14.203125)

  Reference: Beale, "On an iterative method for finding a local minimum of a function
  of more than one variable", Tech. Rep. 25, Statistical Techniques Research Group,
  Princeton University, 1958; Moré, Garbow & Hillstrom, "Testing unconstrained
  optimization software", ACM TOMS 7(1), 1981.
  """

  def value(z: jax.Array) -> jax.Array:
    x, y = z[0], z[1]
    return (1.5 - x + x * y) ** 2 + (2.25 - x + x * y**2) ** 2 + (2.625 - x + x * y**3) ** 2

  return Problem(
    name="beale",
    value=value,
    init=jnp.asarray([1.0, 1.0], dtype=_validation.check_dtype("beale", dtype)),
    minimizer=jnp.asarray([3.0, 0.5], dtype=_validation.check_dtype("beale", dtype)),
    optimal_value=0.0,
    bounds=((-4.5, 4.5), (-4.5, 4.5)),
  )
