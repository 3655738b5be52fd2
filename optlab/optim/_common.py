"""Small pieces shared by optlab's transforms: dtype handling, bias correction, step sizes."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from optlab.optim import _validation as v


def cast_like(tree: Any, reference: Any) -> Any:
  """Casts every leaf of `tree` to the dtype of the matching leaf of `reference`.

  Injected hyperparameters are float32 arrays; without this cast they would
  promote bfloat16 updates and states to float32, changing the state's dtype
  after one step (and forcing a recompilation).
  """
  return jax.tree.map(lambda x, r: jnp.asarray(x).astype(jnp.result_type(r)), tree, reference)


def zeros_like(params: Any) -> Any:
  return jax.tree.map(jnp.zeros_like, params)


def full_like(params: Any, value: Any) -> Any:
  return jax.tree.map(lambda p: jnp.full_like(p, value), params)


def bias_correction(moment: Any, decay: Any, count: jax.Array) -> Any:
  """Returns `moment / (1 - decay**count)` (Kingma & Ba 2015), in float32 or wider."""

  def correct(m):
    dtype = jnp.promote_types(m.dtype, jnp.float32)  # float64 moments stay float64
    return m / (1.0 - jnp.asarray(decay, dtype) ** count.astype(dtype))

  return jax.tree.map(correct, moment)


def divide(numerator: jax.Array, denominator: jax.Array) -> jax.Array:
  """``numerator / denominator``, with 0 where the denominator is 0.

  With ε = 0 an adaptive denominator is 0 exactly when every gradient of that
  coordinate so far was 0, so the numerator is 0 too: the update is 0, not the
  NaN of 0/0.
  """
  return numerator / jnp.where(denominator == 0, jnp.ones_like(denominator), denominator)


def step_size(learning_rate: optax.ScalarOrSchedule, count: jax.Array) -> jax.Array:
  """The learning rate at step `count` (0-based), whether a number or a schedule."""
  if callable(learning_rate):
    return jnp.asarray(learning_rate(count))
  return jnp.asarray(learning_rate)


class ScaleByLearningRateState(NamedTuple):
  """State of :func:`scale_by_learning_rate`: the number of updates applied so far."""

  count: jax.Array  # int32 scalar


def scale_by_learning_rate(
    learning_rate: optax.ScalarOrSchedule, *, flip_sign: bool = True
) -> optax.GradientTransformation:
  """Scales updates by ``-learning_rate`` (or ``+`` with ``flip_sign=False``).

  .. math:: u_t = -\\alpha_t\\, d_t

  Like ``optax.scale_by_learning_rate``, but the result keeps the dtype of the
  incoming updates, so bfloat16 parameters stay bfloat16 when the learning rate
  is an injected float32 hyperparameter.

  Args:
    learning_rate: a number ≥ 0 or a schedule ``step -> rate``.
    flip_sign: when True (the default) the step goes down the gradient.

  Returns:
    An ``optax.GradientTransformation``.
  """
  v.check_learning_rate("scale_by_learning_rate", learning_rate)
  sign = -1.0 if flip_sign else 1.0

  def init_fn(params):
    del params
    return ScaleByLearningRateState(count=jnp.zeros([], jnp.int32))

  def update_fn(updates, state, params=None):
    if params is not None:
      v.check_same_structure("scale_by_learning_rate", updates, params, "params")
    rate = sign * step_size(learning_rate, state.count)
    new_updates = jax.tree.map(lambda u: (rate * u).astype(u.dtype), updates)
    return new_updates, ScaleByLearningRateState(count=optax.safe_increment(state.count))

  return optax.GradientTransformation(init_fn, update_fn)
