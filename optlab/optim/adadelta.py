"""AdaDelta (Zeiler, 2012)."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from optlab.optim import _common as c
from optlab.optim import _validation as v


class ScaleByAdadeltaState(NamedTuple):
  """State of :func:`scale_by_adadelta`."""

  count: jax.Array  # int32 scalar
  accumulated_gradients: optax.Updates  # E[g²]
  accumulated_updates: optax.Updates  # E[Δx²]


def scale_by_adadelta(rho: float = 0.95, eps: float = 1e-6) -> optax.GradientTransformation:
  r"""AdaDelta's unit-corrected direction (without the sign flip).

  .. math::
     E[g^2]_t = ρ E[g^2]_{t-1} + (1−ρ) g_t^2, \quad
     d_t = \frac{\sqrt{E[Δx^2]_{t-1} + ε}}{\sqrt{E[g^2]_t + ε}}\, g_t, \quad
     E[Δx^2]_t = ρ E[Δx^2]_{t-1} + (1−ρ) d_t^2

  Args:
    rho: ρ in [0, 1).
    eps: ε ≥ 0 (must be > 0 for the first step to move).

  Returns:
    An ``optax.GradientTransformation``.
  """
  where = "scale_by_adadelta"
  v.check_decay(where, "rho", rho)
  v.check_non_negative(where, "eps", eps)

  def init_fn(params):
    v.check_float_tree(where, params)
    return ScaleByAdadeltaState(
        count=jnp.zeros([], jnp.int32),
        accumulated_gradients=c.zeros_like(params),
        accumulated_updates=c.zeros_like(params),
    )

  def update_fn(updates, state, params=None):
    del params
    v.check_same_structure(where, updates, state.accumulated_gradients, "accumulator")
    v.check_float_tree(where, updates, "updates")
    acc_g = jax.tree.map(
        lambda a, g: rho * a + (1 - rho) * g * g, state.accumulated_gradients, updates
    )
    direction = jax.tree.map(
        lambda g, ag, ax: c.divide(jnp.sqrt(ax + eps) * g, jnp.sqrt(ag + eps)),
        updates,
        acc_g,
        state.accumulated_updates,
    )
    acc_x = jax.tree.map(
        lambda a, d: rho * a + (1 - rho) * d * d, state.accumulated_updates, direction
    )
    return c.cast_like(direction, updates), ScaleByAdadeltaState(
        count=optax.safe_increment(state.count),
        accumulated_gradients=c.cast_like(acc_g, state.accumulated_gradients),
        accumulated_updates=c.cast_like(acc_x, state.accumulated_updates),
    )

  return optax.GradientTransformation(init_fn, update_fn)


def adadelta(
    learning_rate: optax.ScalarOrSchedule = 1.0,
    rho: float = 0.95,
    eps: float = 1e-6,
) -> optax.GradientTransformation:
  r"""AdaDelta: step sizes with the units of the parameters, no learning rate needed.

  .. math::
     E[g^2]_t = ρ E[g^2]_{t-1} + (1−ρ) g_t^2, \quad
     Δx_t = −\frac{\sqrt{E[Δx^2]_{t-1} + ε}}{\sqrt{E[g^2]_t + ε}}\, g_t, \quad
     E[Δx^2]_t = ρ E[Δx^2]_{t-1} + (1−ρ) Δx_t^2, \quad θ_{t+1} = θ_t + α_t Δx_t

  The paper has no learning rate (α = 1, the default) and uses ρ = 0.95,
  ε = 1e-6 (its MNIST setting). ``torch.optim.Adadelta(lr, rho, eps)`` computes
  the same; ``optax.adadelta`` too (its default ρ is 0.9). The accumulator
  :math:`E[Δx^2]` tracks the update before the multiplication by α, as in PyTorch and optax.

  Args:
    learning_rate: α ≥ 0, a number or a schedule.
    rho: ρ in [0, 1).
    eps: ε ≥ 0.

  Returns:
    An ``optax.GradientTransformation``.

  Example:
    >>> import jax.numpy as jnp, optlab
    >>> tx = optlab.optim.adadelta()
    >>> state = tx.init(jnp.ones(2))

  References:
    M. D. Zeiler, "ADADELTA: An Adaptive Learning Rate Method", arXiv:1212.5701, 2012.
  """
  v.check_learning_rate("adadelta", learning_rate)
  return optax.chain(scale_by_adadelta(rho, eps), c.scale_by_learning_rate(learning_rate))
