"""The `Problem` type: an objective with a known global minimizer and optimal value."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax
import jax.numpy as jnp

Bounds = tuple[tuple[float, float], tuple[float, float]]


@dataclasses.dataclass(frozen=True, eq=False)
class Problem:
  """An objective f: Rᵈ → R with a known global minimizer x* and value f* = f(x*).

  The suboptimality of an iterate is f(x) − f*, and its distance to the answer is
  ‖x − x*‖₂; both are what convergence studies plot. `value` takes one 1-D point
  and returns a scalar; it is pure, so `jax.jit`, `jax.grad` and `jax.vmap` (over a
  batch of points) apply to it directly.

  Problems compare and hash by identity (`eq=False`), so a problem can be closed
  over or passed as a static argument to `jax.jit`.

  Attributes:
    name: the registry name, e.g. ``"rosenbrock"``.
    value: f, mapping a point of shape (dim,) to a scalar.
    init: the standard starting point, shape (dim,).
    minimizer: a global minimizer x*, shape (dim,).
    optimal_value: f* = f(x*).
    bounds: ((xmin, xmax), (ymin, ymax)) framing x* and `init` in a contour plot of a
      2-D problem, or None.

  Example:
    >>> import jax.numpy as jnp
    >>> p = Problem("sphere", lambda x: jnp.sum(x**2), jnp.ones(3), jnp.zeros(3), 0.0)
    >>> p.grad(p.init).tolist(), p.dim
    ([2.0, 2.0, 2.0], 3)
  """

  name: str
  value: Callable[[jax.Array], jax.Array]
  init: jax.Array
  minimizer: jax.Array
  optimal_value: float
  bounds: Bounds | None = None

  def __post_init__(self) -> None:
    init = jnp.asarray(self.init)
    minimizer = jnp.asarray(self.minimizer)
    if init.ndim != 1 or minimizer.ndim != 1:
      raise ValueError(
        f"{type(self).__name__}: init and minimizer must be 1-D, got shapes "
        f"{init.shape} and {minimizer.shape}"
      )
    if init.shape != minimizer.shape:
      raise ValueError(
        f"{type(self).__name__}: init and minimizer must have the same shape, got "
        f"{init.shape} and {minimizer.shape}"
      )
    object.__setattr__(self, "init", init)
    object.__setattr__(self, "minimizer", minimizer)

  @property
  def dim(self) -> int:
    """The number of variables d."""
    return int(self.minimizer.shape[0])

  def grad(self, x: jax.Array) -> jax.Array:
    """∇f(x), by `jax.grad` unless a subclass gives it in closed form."""
    return jax.grad(self.value)(x)

  def value_and_grad(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(f(x), ∇f(x))."""
    return jax.value_and_grad(self.value)(x)

  def distance_to_minimizer(self, x: jax.Array) -> jax.Array:
    """‖x − x*‖₂."""
    return jnp.linalg.norm(x - self.minimizer)
