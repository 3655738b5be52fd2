"""Stochastic gradients of a problem, for studying stochastic methods."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from optlab.problems import _validation
from optlab.problems.base import Bounds, Problem

NOISES = ("additive", "multiplicative")


@dataclasses.dataclass(frozen=True, eq=False)
class NoisyProblem:
  """A problem whose gradient oracle is unbiased but noisy.

  With ξ ~ N(0, I) drawn from the key of each call,

    additive:        g̃(x) = ∇f(x) + σ ξ,          Var g̃ᵢ = σ²
    multiplicative:  g̃(x) = ∇f(x) ⊙ (1 + σ ξ),    Var g̃ᵢ = σ² (∂ᵢf(x))²

  and E g̃(x) = ∇f(x) in both cases. Additive noise keeps a variance floor at x*,
  so a constant step size stalls at a noise ball (the classic SGD regime);
  multiplicative noise vanishes at x* (the interpolation regime). Values are exact;
  only gradients are noisy.

  Everything else passes through to the wrapped problem: `value`, `grad`,
  `minimizer`, `optimal_value`, `init`, `dim`, `name`, `bounds`, and any other
  attribute (for a `Quadratic`: `mu`, `L`, `hessian`, `condition_number`).

  Attributes:
    problem: the exact problem.
    noise_scale: σ ≥ 0.
    noise: ``"additive"`` or ``"multiplicative"``.

  Build one with `noisy`.

  Reference: Bottou, Curtis & Nocedal, "Optimization methods for large-scale machine
  learning", SIAM Review 60(2), 2018, Sec. 4 (the two noise regimes).
  """

  problem: Problem
  noise_scale: float
  noise: str = "additive"

  def __post_init__(self) -> None:
    where = "noisy"
    if not isinstance(self.problem, Problem):
      raise TypeError(f"{where}: problem must be a Problem, got {type(self.problem).__name__}")
    scale = _validation.check_real(where, "noise_scale", self.noise_scale, 0.0)
    object.__setattr__(self, "noise_scale", scale)
    _validation.check_choice(where, "noise", self.noise, NOISES)

  def stochastic_grad(self, x: jax.Array, key: jax.Array) -> jax.Array:
    """g̃(x): ∇f(x) + σ ξ (additive) or ∇f(x) ⊙ (1 + σ ξ) (multiplicative), ξ ~ N(0, I)."""
    return self._perturb(self.problem.grad(x), key)

  def stochastic_value_and_grad(self, x: jax.Array, key: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(f(x), g̃(x)): the exact value and a stochastic gradient."""
    value, grad = self.problem.value_and_grad(x)
    return value, self._perturb(grad, key)

  def grad_variance(self, x: jax.Array) -> jax.Array:
    """The per-coordinate variance of g̃(x): σ² (additive) or σ² ∇f(x)² (multiplicative)."""
    grad = self.problem.grad(x)
    if self.noise == "additive":
      return jnp.full_like(grad, self.noise_scale**2)
    return (self.noise_scale * grad) ** 2

  def _perturb(self, grad: jax.Array, key: jax.Array) -> jax.Array:
    xi = jax.random.normal(key, grad.shape, grad.dtype)
    if self.noise == "additive":
      return grad + self.noise_scale * xi
    return grad * (1.0 + self.noise_scale * xi)

  # Pass-throughs, spelled out for readers and type checkers; the rest go via __getattr__.
  @property
  def name(self) -> str:
    return self.problem.name

  @property
  def value(self) -> Callable[[jax.Array], jax.Array]:
    return self.problem.value

  @property
  def init(self) -> jax.Array:
    return self.problem.init

  @property
  def minimizer(self) -> jax.Array:
    return self.problem.minimizer

  @property
  def optimal_value(self) -> float:
    return self.problem.optimal_value

  @property
  def bounds(self) -> Bounds | None:
    return self.problem.bounds

  @property
  def dim(self) -> int:
    return self.problem.dim

  def grad(self, x: jax.Array) -> jax.Array:
    """The exact gradient ∇f(x)."""
    return self.problem.grad(x)

  def value_and_grad(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    """The exact (f(x), ∇f(x))."""
    return self.problem.value_and_grad(x)

  def distance_to_minimizer(self, x: jax.Array) -> jax.Array:
    """‖x − x*‖₂."""
    return self.problem.distance_to_minimizer(x)

  def __getattr__(self, name: str) -> Any:
    # Only called when normal lookup fails; guard against recursion before `problem` is set.
    if name.startswith("_") or name == "problem":
      raise AttributeError(name)
    try:
      return getattr(self.problem, name)
    except AttributeError:
      raise AttributeError(
        f"NoisyProblem wrapping {type(self.problem).__name__} {self.problem.name!r} "
        f"has no attribute {name!r}"
      ) from None


def noisy(problem: Problem, noise_scale: float, *, noise: str = "additive") -> NoisyProblem:
  """Wraps `problem` with an unbiased stochastic gradient oracle of scale σ.

  additive: g̃ = ∇f(x) + σ ξ; multiplicative: g̃ = ∇f(x) ⊙ (1 + σ ξ); ξ ~ N(0, I).

  Args:
    problem: the exact problem.
    noise_scale: σ, finite and ≥ 0 (0 gives the exact gradient).
    noise: ``"additive"`` or ``"multiplicative"``.

  Returns:
    A `NoisyProblem`.

  Example:
    >>> import jax
    >>> from optlab.problems import noisy, quadratic
    >>> p = noisy(quadratic(dim=4, condition_number=10.0), 0.1)
    >>> g = p.stochastic_grad(p.init, jax.random.key(1))
    >>> g.shape, p.L
    ((4,), 10.0)

  Reference: Bottou, Curtis & Nocedal, SIAM Review 60(2), 2018, Sec. 4.
  """
  return NoisyProblem(problem=problem, noise_scale=noise_scale, noise=noise)
