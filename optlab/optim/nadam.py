"""NAdam: Adam with Nesterov momentum (Dozat, 2016)."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from optlab.optim import _common as c
from optlab.optim import _validation as v
from optlab.optim.adam import check_adam_hyperparameters


class ScaleByNadamState(NamedTuple):
  """State of :func:`scale_by_nadam`."""

  count: jax.Array  # int32 scalar
  mu: optax.Updates  # first moment m_t
  nu: optax.Updates  # second moment n_t
  mu_product: jax.Array  # float32 scalar: Π_{i≤t} μ_i


def _momentum_coefficient(b1, momentum_decay, step):
  """μ_t = β₁ (1 − ½ · 0.96^{t ψ}), or β₁ when ψ is None (constant momentum)."""
  if momentum_decay is None:
    return jnp.asarray(b1, jnp.float32)
  return b1 * (1.0 - 0.5 * 0.96 ** (step.astype(jnp.float32) * momentum_decay))


def scale_by_nadam(
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    momentum_decay: float | None = 0.004,
) -> optax.GradientTransformation:
  r"""NAdam's direction (see :func:`nadam` for the rule).

  Args:
    b1: β₁ in [0, 1).
    b2: β₂ in [0, 1).
    eps: ε ≥ 0.
    momentum_decay: ψ ≥ 0 of the momentum schedule μ_t = β₁(1 − ½·0.96^{tψ});
      None keeps μ_t = β₁ (optax's form).

  Returns:
    An ``optax.GradientTransformation``.
  """
  where = "scale_by_nadam"
  check_adam_hyperparameters(where, b1, b2, eps)
  if momentum_decay is not None:
    v.check_non_negative(where, "momentum_decay", momentum_decay)

  def init_fn(params):
    v.check_float_tree(where, params)
    return ScaleByNadamState(
        count=jnp.zeros([], jnp.int32),
        mu=c.zeros_like(params),
        nu=c.zeros_like(params),
        mu_product=jnp.ones([], jnp.float32),
    )

  def update_fn(updates, state, params=None):
    del params
    v.check_same_structure(where, updates, state.mu, "first-moment buffer")
    v.check_float_tree(where, updates, "updates")
    count = optax.safe_increment(state.count)
    mu_t = _momentum_coefficient(b1, momentum_decay, count)
    mu_next = _momentum_coefficient(b1, momentum_decay, count + 1)
    if momentum_decay is None:
      product = (jnp.asarray(b1, jnp.float32) ** count.astype(jnp.float32))
    else:
      product = state.mu_product * mu_t
    product_next = product * mu_next
    mu = jax.tree.map(lambda m, g: b1 * m + (1 - b1) * g, state.mu, updates)
    nu = jax.tree.map(lambda n, g: b2 * n + (1 - b2) * g * g, state.nu, updates)
    nu_hat = c.bias_correction(nu, b2, count)
    gradient_weight = (1.0 - mu_t) / (1.0 - product)
    moment_weight = mu_next / (1.0 - product_next)
    new_updates = jax.tree.map(
        lambda g, m, n: c.divide(gradient_weight * g + moment_weight * m, jnp.sqrt(n) + eps),
        updates,
        mu,
        nu_hat,
    )
    return c.cast_like(new_updates, updates), ScaleByNadamState(
        count=count,
        mu=c.cast_like(mu, state.mu),
        nu=c.cast_like(nu, state.nu),
        mu_product=product.astype(jnp.float32),
    )

  return optax.GradientTransformation(init_fn, update_fn)


def nadam(
    learning_rate: optax.ScalarOrSchedule = 0.002,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    momentum_decay: float | None = 0.004,
) -> optax.GradientTransformation:
  r"""NAdam: Nesterov-accelerated adaptive moment estimation.

  .. math::
     μ_t = β_1 (1 − ½ · 0.96^{tψ}), \quad
     m_t = β_1 m_{t-1} + (1−β_1) g_t, \quad n_t = β_2 n_{t-1} + (1−β_2) g_t^2, \\
     \bar m_t = \frac{(1−μ_t)\, g_t}{1 − \prod_{i≤t} μ_i}
              + \frac{μ_{t+1}\, m_t}{1 − \prod_{i≤t+1} μ_i},
     \quad θ_{t+1} = θ_t − α_t \frac{\bar m_t}{\sqrt{n_t/(1−β_2^t)} + ε}

  This is Algorithm 2 of the paper with its momentum warm-up schedule
  (ψ = 0.004, i.e. 0.96 every 250 steps), in the form of the Keras
  implementation and ``torch.optim.NAdam`` (whose defaults these are): the first
  moment is averaged with the constant β₁, the schedule enters the weights.
  ``momentum_decay=None`` sets μ_t = β₁ for all t, which is ``optax.nadam``.

  Args:
    learning_rate: α ≥ 0, a number or a schedule.
    b1: β₁ in [0, 1).
    b2: β₂ in [0, 1).
    eps: ε ≥ 0.
    momentum_decay: ψ ≥ 0, or None for constant momentum.

  Returns:
    An ``optax.GradientTransformation``.

  Example:
    >>> import jax.numpy as jnp, optlab
    >>> state = optlab.optim.nadam(momentum_decay=None).init(jnp.zeros(2))

  References:
    T. Dozat, "Incorporating Nesterov Momentum into Adam", ICLR 2016 Workshop.
  """
  v.check_learning_rate("nadam", learning_rate)
  return optax.chain(
      scale_by_nadam(b1, b2, eps, momentum_decay), c.scale_by_learning_rate(learning_rate)
  )
