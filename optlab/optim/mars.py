"""MARS (Yuan et al., 2024): variance-reduced AdamW ("MARS-AdamW", approximate version)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from optlab.optim import _common as c
from optlab.optim import _validation as v
from optlab.optim.adam import check_adam_hyperparameters
from optlab.optim.adam_mini import DecayConvention, weight_decay_and_learning_rate


class ScaleByMarsState(NamedTuple):
  """State of :func:`scale_by_mars`."""

  count: jax.Array  # int32 scalar
  mu: optax.Updates  # first moment of the corrected gradient, m_t
  nu: optax.Updates  # second moment of the corrected gradient, v_t
  previous_gradient: optax.Updates  # g_{t-1}


def _clip_to_unit_norm(x: jax.Array) -> jax.Array:
  """``x / ‖x‖₂`` when ‖x‖₂ > 1, else x (the paper's Clip(c, 1)), in float32 or wider."""
  x = x.astype(jnp.promote_types(x.dtype, jnp.float32))
  return x / jnp.maximum(1.0, jnp.sqrt(jnp.sum(x * x)))


def scale_by_mars(
    b1: float = 0.95,
    b2: float = 0.99,
    eps: float = 1e-8,
    gamma: float = 0.025,
    *,
    correct_first_step: bool = False,
) -> optax.GradientTransformation:
  r"""MARS-AdamW's direction: Adam on a variance-reduced, clipped gradient.

  .. math::
     c_t = g_t + γ \frac{β_1}{1−β_1} (g_t − g_{t−1}), \quad
     \tilde c_t = c_t / \max(1, \|c_t\|_2), \\
     m_t = β_1 m_{t−1} + (1−β_1) \tilde c_t, \quad
     v_t = β_2 v_{t−1} + (1−β_2) \tilde c_t^2, \quad
     d_t = \frac{m_t/(1−β_1^t)}{\sqrt{v_t/(1−β_2^t)} + ε}

  This is the approximate version ("MARS-approx", the paper's default): g_{t−1}
  is the previous step's gradient, at the previous parameters and on the
  previous batch, kept in the state. The norm is taken per leaf (per tensor, as
  in the official code).

  Args:
    b1: β₁ in [0, 1).
    b2: β₂ in [0, 1).
    eps: ε ≥ 0, outside the root.
    gamma: γ ≥ 0, the strength of the gradient correction (γ = 0 is AdamW on
      per-leaf clipped gradients).
    correct_first_step: the paper sets x_1 = x_0, so the correction vanishes at
      t = 1 and c_1 = g_1 (the default). True starts from g_0 = 0 as the official
      code does, so that c_1 = (1 + γβ₁/(1−β₁)) g_1.

  Returns:
    An ``optax.GradientTransformation``.
  """
  where = "scale_by_mars"
  check_adam_hyperparameters(where, b1, b2, eps)
  v.check_non_negative(where, "gamma", gamma)

  def init_fn(params):
    v.check_float_tree(where, params)
    return ScaleByMarsState(
        count=jnp.zeros([], jnp.int32),
        mu=c.zeros_like(params),
        nu=c.zeros_like(params),
        previous_gradient=c.zeros_like(params),
    )

  def update_fn(updates, state, params=None):
    del params
    v.check_same_structure(where, updates, state.mu, "first-moment buffer")
    first = state.count == 0
    scale = gamma * b1 / (1 - b1)

    def corrected(g, previous):
      if not correct_first_step:
        previous = jnp.where(first, g, previous)
      g32 = g.astype(jnp.promote_types(g.dtype, jnp.float32))
      return _clip_to_unit_norm(g32 + scale * (g32 - previous.astype(g32.dtype)))

    c_t = jax.tree.map(corrected, updates, state.previous_gradient)
    mu = jax.tree.map(lambda m, x: b1 * m + (1 - b1) * x, state.mu, c_t)
    nu = jax.tree.map(lambda n, x: b2 * n + (1 - b2) * x * x, state.nu, c_t)
    count = optax.safe_increment(state.count)
    mu_hat = c.bias_correction(mu, b1, count)
    nu_hat = c.bias_correction(nu, b2, count)
    new_updates = jax.tree.map(lambda m, n: c.divide(m, jnp.sqrt(n) + eps), mu_hat, nu_hat)
    return c.cast_like(new_updates, updates), ScaleByMarsState(
        count=count,
        mu=c.cast_like(mu, state.mu),
        nu=c.cast_like(nu, state.nu),
        previous_gradient=c.cast_like(updates, state.previous_gradient),
    )

  return optax.GradientTransformation(init_fn, update_fn)


def mars(
    learning_rate: optax.ScalarOrSchedule = 3e-3,
    b1: float = 0.95,
    b2: float = 0.99,
    eps: float = 1e-8,
    gamma: float = 0.025,
    weight_decay: float = 0.0,
    *,
    correct_first_step: bool = False,
    decay_convention: DecayConvention = "lr",
    mask: Any | Callable[[optax.Params], Any] | None = None,
) -> optax.GradientTransformation:
  r"""MARS-AdamW: AdamW on a scaled stochastic recursive momentum (STORM) gradient.

  Algorithm 2 of the paper (approximate version, :math:`∇f(x_{t−1}, ξ_t) ≈ g_{t−1}`):

  .. math::
     c_t = g_t + γ \frac{β_1}{1−β_1} (g_t − g_{t−1}), \quad
     \tilde c_t = \begin{cases} c_t/\|c_t\|_2 & \|c_t\|_2 > 1 \\ c_t & \text{else}\end{cases} \\
     m_t = β_1 m_{t−1} + (1−β_1) \tilde c_t, \quad v_t = β_2 v_{t−1} + (1−β_2) \tilde c_t^2, \\
     θ_{t+1} = θ_t − α_t \left(\frac{m_t/(1−β_1^t)}{\sqrt{v_t/(1−β_2^t)} + ε} + λ θ_t\right)

  Defaults are the official code's (α = 3·10⁻³, β = (0.95, 0.99), γ = 0.025,
  λ = 0; its GPT-2 runs use α = 6·10⁻³ with warm-up and cosine decay, λ = 10⁻²).
  The weight decay is multiplied by the learning rate, as in that code
  (``decay_convention="lr"``); ``"paper"`` is Loshchilov & Hutter's
  :math:`θ_{t+1} = θ_t − α_t d_t − λ θ_t`.

  Every leaf is updated by MARS, as in the paper. The official code by default
  sends vectors (biases, norms) to plain AdamW with β = (0.9, 0.95); to do the
  same, use ``optax.partition`` with :func:`optlab.optim.adamw` for them.

  Args:
    learning_rate: α ≥ 0, a number or a schedule.
    b1: β₁ in [0, 1).
    b2: β₂ in [0, 1).
    eps: ε ≥ 0.
    gamma: γ ≥ 0, the strength of the variance-reduction correction.
    weight_decay: λ ≥ 0.
    correct_first_step: see :func:`scale_by_mars` (False: c_1 = g_1, the paper;
      True: g_0 = 0, the official code).
    decay_convention: ``"lr"`` (the default) or ``"paper"``.
    mask: where the decay applies (a tree of booleans or a function of the params).

  Returns:
    An ``optax.GradientTransformation``.

  Example:
    >>> import jax.numpy as jnp
    >>> from optlab.optim.mars import mars
    >>> tx = mars(3e-3, weight_decay=1e-2)
    >>> params = {"w": jnp.ones((3, 2)), "b": jnp.zeros(2)}
    >>> updates, state = tx.update(params, tx.init(params), params)

  References:
    H. Yuan, Y. Liu, S. Wu, X. Zhou, Q. Gu, "MARS: Unleashing the Power of
    Variance Reduction for Training Large Models", arXiv:2411.10438, 2024.
  """
  where = "mars"
  v.check_learning_rate(where, learning_rate)
  return optax.chain(
      scale_by_mars(b1, b2, eps, gamma, correct_first_step=correct_first_step),
      weight_decay_and_learning_rate(learning_rate, weight_decay, decay_convention, mask,
                                     where=where),
  )
