"""AdaGrad (Duchi, Hazan & Singer, 2011)."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from optlab.optim import _common as c
from optlab.optim import _validation as v


class ScaleByAdagradState(NamedTuple):
  """State of :func:`scale_by_adagrad`."""

  count: jax.Array  # int32 scalar
  sum_of_squares: optax.Updates  # G_t = G_0 + Σ g_s²


def scale_by_adagrad(
    eps: float = 1e-10,
    initial_accumulator_value: float = 0.0,
    *,
    eps_in_sqrt: bool = False,
) -> optax.GradientTransformation:
  r"""Rescales updates by the root of the sum of all past squared gradients.

  .. math::
     G_t = G_{t-1} + g_t^2, \qquad d_t = g_t / (\sqrt{G_t} + ε)

  Args:
    eps: ε ≥ 0, the δ of the paper; keeps the division finite.
    initial_accumulator_value: G_0 ≥ 0. The paper and PyTorch use 0; optax uses 0.1.
    eps_in_sqrt: put ε under the root, :math:`g/\sqrt{G_t + ε}`, as optax does.
      The paper and PyTorch add it outside (the default).

  Returns:
    An ``optax.GradientTransformation``.
  """
  where = "scale_by_adagrad"
  v.check_non_negative(where, "eps", eps)
  v.check_non_negative(where, "initial_accumulator_value", initial_accumulator_value)

  def init_fn(params):
    v.check_float_tree(where, params)
    return ScaleByAdagradState(
        count=jnp.zeros([], jnp.int32),
        sum_of_squares=c.full_like(params, initial_accumulator_value),
    )

  def update_fn(updates, state, params=None):
    del params
    v.check_same_structure(where, updates, state.sum_of_squares, "accumulator")
    v.check_float_tree(where, updates, "updates")
    sum_of_squares = jax.tree.map(lambda s, g: s + g * g, state.sum_of_squares, updates)
    if eps_in_sqrt:
      denominators = jax.tree.map(lambda s: jnp.sqrt(s + eps), sum_of_squares)
    else:
      denominators = jax.tree.map(lambda s: jnp.sqrt(s) + eps, sum_of_squares)
    new_updates = jax.tree.map(c.divide, updates, denominators)
    return c.cast_like(new_updates, updates), ScaleByAdagradState(
        count=optax.safe_increment(state.count),
        sum_of_squares=c.cast_like(sum_of_squares, state.sum_of_squares),
    )

  return optax.GradientTransformation(init_fn, update_fn)


def adagrad(
    learning_rate: optax.ScalarOrSchedule = 0.01,
    eps: float = 1e-10,
    initial_accumulator_value: float = 0.0,
    *,
    eps_in_sqrt: bool = False,
) -> optax.GradientTransformation:
  r"""AdaGrad: per-coordinate step sizes from the accumulated squared gradients.

  .. math::
     G_t = G_{t-1} + g_t^2, \qquad θ_{t+1} = θ_t − α_t\, g_t / (\sqrt{G_t} + ε)

  Defaults follow the paper (G_0 = 0, ε outside the root), which is also
  ``torch.optim.Adagrad``. ``optax.adagrad`` is matched by
  ``initial_accumulator_value=0.1, eps=1e-7, eps_in_sqrt=True``.

  Args:
    learning_rate: α ≥ 0, a number or a schedule.
    eps: ε ≥ 0.
    initial_accumulator_value: G_0 ≥ 0.
    eps_in_sqrt: ε under the root (optax) instead of outside (paper, PyTorch).

  Returns:
    An ``optax.GradientTransformation``.

  Example:
    >>> import jax.numpy as jnp, optlab
    >>> tx = optlab.optim.adagrad(0.1)
    >>> updates, _ = tx.update(jnp.array([3.0]), tx.init(jnp.array([0.0])))
    >>> round(float(updates[0]), 6)
    -0.1

  References:
    J. Duchi, E. Hazan, Y. Singer, "Adaptive Subgradient Methods for Online
    Learning and Stochastic Optimization", JMLR 12, 2011.
  """
  v.check_learning_rate("adagrad", learning_rate)
  return optax.chain(
      scale_by_adagrad(eps, initial_accumulator_value, eps_in_sqrt=eps_in_sqrt),
      c.scale_by_learning_rate(learning_rate),
  )
