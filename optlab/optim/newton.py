"""Second-order baselines for small problems: Newton's method and L-BFGS, as optax transforms.

Both need the objective itself, not just its gradient, so their ``update`` takes
extra keyword arguments, as ``optax.lbfgs`` does::

    value, grad = jax.value_and_grad(f)(params)
    updates, state = tx.update(grad, state, params, value=value, grad=grad, value_fn=f)

They are meant for full-batch problems with at most a few thousand parameters
(Newton forms the dense Hessian: O(n²) memory, O(n³) time per step).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, Literal, NamedTuple

import jax
import jax.numpy as jnp
import optax
from jax.flatten_util import ravel_pytree

from optlab.optim import _common as c
from optlab.optim import _validation as v
from optlab.optim.averaging import _check_int, scalar_dtype

Indefinite = Literal["shift", "abs", "none"]
INDEFINITE = ("shift", "abs", "none")
Linesearch = Literal["zoom", "none"]
LINESEARCHES = ("zoom", "none")


class NewtonState(NamedTuple):
  """State of :func:`newton`: the step count and what the last step did (for inspection)."""

  count: jax.Array  # int32
  step_size: jax.Array  # s accepted by the line search (1 without one; 0 if it failed)
  value_evaluations: jax.Array  # int32: calls of value_fn in the last line search
  min_eigenvalue: jax.Array  # smallest eigenvalue of H + λI at the last step
  shift: jax.Array  # τ added to the spectrum by indefinite="shift" (0 otherwise)


def _missing_value_fn(where: str) -> TypeError:
  return TypeError(
      f"{where}: update needs the objective as a keyword argument: "
      "tx.update(grads, state, params, value_fn=f) with f(params) -> scalar (value= "
      "is optional: f(params), if you have it). optlab.optim.info(name).extra_args "
      "lists what each optimizer's update needs."
  )


def newton(
    learning_rate: optax.ScalarOrSchedule = 1.0,
    damping: float = 0.0,
    *,
    indefinite: Indefinite = "shift",
    min_curvature: float = 1e-6,
    max_backtracking_steps: int = 20,
    backtracking_factor: float = 0.5,
    armijo: float = 1e-4,
) -> optax.GradientTransformationExtraArgs:
  r"""Newton's method with damping, a Hessian modification and a backtracking line search.

  With g = ∇f(θ_t) (the incoming updates) and the dense Hessian H = ∇²f(θ_t) of
  `value_fn` (``jax.hessian`` over the flattened parameters):

  .. math::
     (H + λ I + τ I)\, d_t = g, \qquad p_t = −α_t d_t, \qquad θ_{t+1} = θ_t + s_t p_t

  * λ = `damping` (Levenberg–Marquardt style; 0 is pure Newton).
  * τ guards against a Hessian that is not positive definite (Nocedal & Wright
    2006, Sec. 3.4). With μ_i the eigenvalues of H + λI, μ_min the smallest, and
    :math:`δ = \text{min\_curvature} · \max_i |μ_i|` (or 1 when H + λI = 0):
    ``"shift"`` (default) adds τ = 0 when μ_min ≥ δ, else
    :math:`τ = δ − μ_{min} + \max(0, −μ_{min})`, so that the smallest eigenvalue
    becomes δ + |μ_min|: a negative curvature is mirrored rather than flattened
    to δ (as N&W's Algorithm 3.3 does, τ ends between |μ_min| and 2|μ_min|), so
    the step along it is not the huge |g|/δ the line search would have to cut
    back, and p_t is a descent direction. ``"abs"`` replaces each μ_i by
    :math:`\max(|μ_i|, δ)` (the saddle-free Newton step of Dauphin et al. 2014).
    ``"none"`` solves :math:`(H + λI) d = g` as it is: near a saddle this step
    goes toward it (uphill along negative curvature), and a singular H gives
    non-finite updates.
  * s_t: backtracking (Armijo) on `value_fn`: the first of 1, ρ, ρ², … with
    :math:`f(θ + s p) ≤ f(θ) + c_1 s\, g^⊤ p`, at most `max_backtracking_steps`
    reductions; if none is accepted the step is 0 (state ``step_size`` = 0).
    ``max_backtracking_steps=0`` takes the full step s = 1 without evaluating f.

  With α = 1, λ = 0 and a positive definite H this is the textbook iteration
  θ ← θ − H⁻¹∇f(θ), exact in one step on a quadratic. The linear algebra runs
  in float32 (float64 for float64 parameters); the updates keep the parameters'
  dtypes. `value_fn` is called with the parameters in that dtype.

  Args:
    learning_rate: α ≥ 0, a number or a schedule. Injectable.
    damping: λ ≥ 0. Injectable.
    indefinite: ``"shift"``, ``"abs"`` or ``"none"`` (static).
    min_curvature: δ's factor, > 0 (relative to the largest |eigenvalue|). Injectable.
    max_backtracking_steps: ≥ 0 step halvings (static; 0 disables the line search).
    backtracking_factor: ρ in (0, 1). Injectable.
    armijo: c₁ in [0, 1). Injectable.

  Returns:
    An ``optax.GradientTransformationExtraArgs`` whose update needs ``params`` and
    ``value_fn=`` (``value=`` f(θ_t) is optional and saves one evaluation).

  Example:
    >>> import jax, jax.numpy as jnp, optax
    >>> from optlab.optim.newton import newton
    >>> f = lambda x: jnp.sum((x - 1.0) ** 2) + x[0] * x[1]
    >>> tx, x = newton(), jnp.zeros(2)
    >>> step = jax.jit(lambda x, state: tx.update(jax.grad(f)(x), state, x, value_fn=f))
    >>> updates, state = step(x, tx.init(x))
    >>> optax.apply_updates(x, updates)  # the minimizer, in one step
    Array([0.6666667, 0.6666667], dtype=float32)

  References:
    J. Nocedal, S. J. Wright, *Numerical Optimization*, 2nd ed., Springer 2006,
    Ch. 3 (Newton's method with Hessian modification, Algorithm 3.2; backtracking,
    Algorithm 3.1). Y. N. Dauphin et al., "Identifying and attacking the saddle
    point problem in high-dimensional non-convex optimization", NeurIPS 2014.
  """
  where = "newton"
  v.check_learning_rate(where, learning_rate)
  v.check_non_negative(where, "damping", damping)
  v.check_choice(where, "indefinite", indefinite, INDEFINITE)
  v.check_positive(where, "min_curvature", min_curvature)
  _check_int(where, "max_backtracking_steps", max_backtracking_steps, 0)
  v.check_range(where, "backtracking_factor", backtracking_factor, 0.0, 1.0,
                low_inclusive=False, high_inclusive=False)
  v.check_range(where, "armijo", armijo, 0.0, 1.0, high_inclusive=False)

  def init_fn(params):
    v.check_float_tree(where, params)
    dtype = scalar_dtype(params)
    return NewtonState(count=jnp.zeros([], jnp.int32), step_size=jnp.ones([], dtype),
                       value_evaluations=jnp.zeros([], jnp.int32),
                       min_eigenvalue=jnp.zeros([], dtype), shift=jnp.zeros([], dtype))

  def update_fn(updates, state, params=None, *, value_fn: Callable[[Any], Any] | None = None,
                value: Any = None, **extra_args):
    del extra_args
    if params is None:
      raise ValueError(f"{where}: update needs params; call tx.update(grads, state, params, "
                       "value_fn=f)")
    v.check_same_structure(where, updates, params, "params")
    if value_fn is None:
      raise _missing_value_fn(where)
    return step_fn(_strong(updates), state, _strong(params), _strong(value), value_fn)

  # Compiled once per objective (value_fn is static), so that eager calls do not run
  # the Hessian, eigh and line search op by op; inside a jitted step this is inlined.
  @functools.partial(jax.jit, static_argnames=("value_fn",))
  def step_fn(updates, state, params, value, value_fn):
    dtype = state.step_size.dtype
    x, unravel = ravel_pytree(jax.tree.map(lambda p: jnp.asarray(p, dtype), params))
    g, _ = ravel_pytree(jax.tree.map(lambda u: jnp.asarray(u, dtype), updates))

    def f(flat):
      return jnp.asarray(value_fn(unravel(flat)), dtype)

    hessian = jax.hessian(f)(x)
    hessian = 0.5 * (hessian + hessian.T)
    direction, min_eigenvalue, shift = _solve(
        hessian + jnp.asarray(damping, dtype) * jnp.eye(x.size, dtype=dtype), g,
        indefinite, jnp.asarray(min_curvature, dtype))
    p = -c.step_size(learning_rate, state.count).astype(dtype) * direction
    if max_backtracking_steps == 0:
      step, evaluations = jnp.ones([], dtype), jnp.zeros([], jnp.int32)
    else:
      f0 = f(x) if value is None else jnp.asarray(value, dtype)
      step, evaluations = _backtrack(
          f, x, p, f0, jnp.dot(g, p), max_backtracking_steps,
          jnp.asarray(backtracking_factor, dtype), jnp.asarray(armijo, dtype))
      evaluations = evaluations + (1 if value is None else 0)
    new_updates = c.cast_like(unravel(step * p), updates)
    return new_updates, NewtonState(
        count=optax.safe_increment(state.count), step_size=step, value_evaluations=evaluations,
        min_eigenvalue=min_eigenvalue, shift=shift)

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def _solve(matrix: jax.Array, g: jax.Array, indefinite: str,
           min_curvature: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
  """d with (modified) matrix · d = g, the smallest eigenvalue, and the shift τ."""
  eigenvalues, vectors = jnp.linalg.eigh(matrix)
  smallest = eigenvalues[0]
  zero = jnp.zeros([], matrix.dtype)
  if indefinite == "none":
    return jnp.linalg.solve(matrix, g), smallest, zero
  scale = jnp.max(jnp.abs(eigenvalues))
  floor = jnp.where(scale > 0, min_curvature * scale, 1.0).astype(matrix.dtype)
  if indefinite == "shift":
    shift = jnp.where(smallest < floor, floor - smallest + jnp.maximum(-smallest, zero), zero)
    modified = eigenvalues + shift
  else:
    shift = zero
    modified = jnp.maximum(jnp.abs(eigenvalues), floor)
  return vectors @ ((vectors.T @ g) / modified), smallest, shift


def _backtrack(f: Callable[[jax.Array], jax.Array], x: jax.Array, p: jax.Array, f0: jax.Array,
               slope: jax.Array, max_steps: int, factor: jax.Array,
               armijo: jax.Array) -> tuple[jax.Array, jax.Array]:
  """The first s in 1, ρ, ρ², … (≤ max_steps reductions) with Armijo's decrease, or 0."""

  def accepted(s):
    return f(x + s * p) <= f0 + armijo * s * slope  # False for a non-finite value

  def cond(carry):
    _, reductions, ok = carry
    return ~ok & (reductions < max_steps)

  def body(carry):
    s, reductions, _ = carry
    s = s * factor
    return s, reductions + 1, accepted(s)

  one = jnp.ones([], x.dtype)
  s, reductions, ok = jax.lax.while_loop(cond, body, (one, jnp.zeros([], jnp.int32),
                                                      accepted(one)))
  return jnp.where(ok, s, jnp.zeros_like(s)), reductions + 1


def lbfgs(
    learning_rate: optax.ScalarOrSchedule = 1.0,
    memory_size: int = 10,
    scale_init_precond: bool = True,
    max_linesearch_steps: int = 20,
    linesearch: Linesearch = "zoom",
) -> optax.GradientTransformationExtraArgs:
  r"""L-BFGS with a zoom (strong Wolfe) line search: ``optax.lbfgs`` with optlab's checks.

  With s_i = θ_{i+1} − θ_i, y_i = g_{i+1} − g_i, ρ_i = 1/(y_i^⊤ s_i) over the last m
  = `memory_size` pairs, the two-loop recursion (Nocedal & Wright 2006,
  Algorithm 7.4) computes :math:`d_t = H_t g_t`, H_t the L-BFGS inverse-Hessian
  approximation from :math:`H_t^0 = γ_t I`, :math:`γ_t = s_{t−1}^⊤ y_{t−1} /
  y_{t−1}^⊤ y_{t−1}` (at t = 0, :math:`\min(1, 1/\|g_0\|)` when
  ``scale_init_precond``); then

  .. math:: θ_{t+1} = θ_t − η_t α_t\, d_t

  with η_t from the zoom line search (strong Wolfe conditions, Algorithms 3.5–3.6,
  first trial η = 1, at most `max_linesearch_steps` trials), or η_t = 1 with
  ``linesearch="none"``. This is ``optax.lbfgs``; optlab adds validation, a clear
  error for missing arguments or mismatched trees, and updates in the gradients'
  dtype.

  Args:
    learning_rate: α ≥ 0 (1 is standard: the line search picks the step). Injectable.
    memory_size: m ≥ 1 (static).
    scale_init_precond: scale the initial inverse Hessian as above (static).
    max_linesearch_steps: ≥ 1 trials of the line search (static).
    linesearch: ``"zoom"`` or ``"none"`` (static).

  Returns:
    An ``optax.GradientTransformationExtraArgs``; with the line search its update
    needs ``value=``, ``grad=`` and ``value_fn=`` (f(θ_t), ∇f(θ_t) and f).

  Example:
    >>> import jax, jax.numpy as jnp, optax
    >>> from optlab.optim.newton import lbfgs
    >>> f = lambda x: jnp.sum((x - 1.0) ** 2)
    >>> tx, x = lbfgs(), jnp.zeros(3)
    >>> state = tx.init(x)
    >>> value, grad = jax.value_and_grad(f)(x)
    >>> updates, state = tx.update(grad, state, x, value=value, grad=grad, value_fn=f)

  References:
    D. C. Liu, J. Nocedal, "On the limited memory BFGS method for large scale
    optimization", Mathematical Programming 45, 1989. J. Nocedal, S. J. Wright,
    *Numerical Optimization*, 2nd ed., Springer 2006, Ch. 7.2 and 3.5.
  """
  where = "lbfgs"
  v.check_learning_rate(where, learning_rate)
  _check_int(where, "memory_size", memory_size, 1)
  _check_int(where, "max_linesearch_steps", max_linesearch_steps, 1)
  v.check_choice(where, "linesearch", linesearch, LINESEARCHES)
  if not isinstance(scale_init_precond, bool):
    raise TypeError(f"{where}: scale_init_precond must be a bool, got {scale_init_precond!r}")
  search = (optax.scale_by_zoom_linesearch(max_linesearch_steps, initial_guess_strategy="one")
            if linesearch == "zoom" else None)
  inner = optax.lbfgs(learning_rate, memory_size, scale_init_precond, linesearch=search)
  needed = ("value", "grad", "value_fn") if linesearch == "zoom" else ()

  # Called eagerly, the line search's while loops would be traced and compiled anew at
  # every step (seconds each); compiled once per objective (value_fn is static), they are
  # not. Inside a jitted step this is inlined.
  @functools.partial(jax.jit, static_argnames=("value_fn",))
  def inner_update(updates, state, params, value, grad, value_fn):
    extra_args = {"value": value, "grad": grad, "value_fn": value_fn} if needed else {}
    new_updates, new_state = inner.update(updates, state, params, **extra_args)
    return new_updates, _strong(new_state)

  def init_fn(params):
    v.check_float_tree(where, params)
    # optax's initial state has weakly typed leaves that the first update makes
    # strong; fixing them keeps one trace per shape (no recompilation).
    return _strong(inner.init(params))

  def update_fn(updates, state, params=None, **extra_args):
    if params is None:
      raise ValueError(f"{where}: update needs params; call tx.update(grads, state, params, "
                       "value=f(params), grad=grads, value_fn=f)")
    v.check_same_structure(where, updates, params, "params")
    missing = [name for name in needed if extra_args.get(name) is None]
    if missing:
      raise TypeError(
          f"{where}: update needs the keyword arguments {', '.join(missing)} for its line "
          "search: tx.update(grads, state, params, value=f(params), grad=grads, value_fn=f)")
    if "grad" in needed:
      v.check_same_structure(where, extra_args["grad"], params, "params")
    new_updates, state = inner_update(
        _strong(updates), state, _strong(params), _strong(extra_args.get("value")),
        _strong(extra_args.get("grad")), extra_args.get("value_fn"))
    return c.cast_like(new_updates, updates), state

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def _strong(tree: Any) -> Any:
  """`tree` with weakly typed leaves made strong (same dtypes)."""
  return jax.tree.map(lambda x: jnp.asarray(x, jnp.result_type(x)), tree)
