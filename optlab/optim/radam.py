"""RAdam: Adam with a rectified adaptive learning rate (Liu et al., 2020)."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from optlab.optim import _common as c
from optlab.optim import _validation as v
from optlab.optim.adam import check_adam_hyperparameters


class ScaleByRadamState(NamedTuple):
  """State of :func:`scale_by_radam`."""

  count: jax.Array  # int32 scalar
  mu: optax.Updates  # first moment m_t
  nu: optax.Updates  # second moment v_t


def rectification(b2, count: jax.Array, threshold) -> tuple[jax.Array, jax.Array]:
  """Returns (r_t, whether ρ_t > threshold) for the 1-based step `count`."""
  t = count.astype(jnp.float32)
  b2 = jnp.asarray(b2, jnp.float32)
  rho_inf = 2.0 / (1.0 - b2) - 1.0
  b2_t = b2**t
  rho_t = rho_inf - 2.0 * t * b2_t / (1.0 - b2_t)
  tractable = rho_t > threshold
  safe_rho = jnp.where(tractable, rho_t, rho_inf)
  r_t = jnp.sqrt(
      (safe_rho - 4.0) * (safe_rho - 2.0) * rho_inf
      / ((rho_inf - 4.0) * (rho_inf - 2.0) * safe_rho)
  )
  return r_t, tractable


def scale_by_radam(
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    threshold: float = 4.0,
) -> optax.GradientTransformation:
  r"""RAdam's direction (see :func:`radam` for the rule).

  Args:
    b1: β₁ in [0, 1).
    b2: β₂ in [0, 1).
    eps: ε ≥ 0.
    threshold: the rectified step is used once ρ_t > threshold (≥ 4).

  Returns:
    An ``optax.GradientTransformation``.
  """
  where = "scale_by_radam"
  check_adam_hyperparameters(where, b1, b2, eps)
  v.check_range(where, "threshold", threshold, 4.0)

  def init_fn(params):
    v.check_float_tree(where, params)
    return ScaleByRadamState(
        count=jnp.zeros([], jnp.int32), mu=c.zeros_like(params), nu=c.zeros_like(params)
    )

  def update_fn(updates, state, params=None):
    del params
    v.check_same_structure(where, updates, state.mu, "first-moment buffer")
    v.check_float_tree(where, updates, "updates")
    mu = jax.tree.map(lambda m, g: b1 * m + (1 - b1) * g, state.mu, updates)
    nu = jax.tree.map(lambda n, g: b2 * n + (1 - b2) * g * g, state.nu, updates)
    count = optax.safe_increment(state.count)
    mu_hat = c.bias_correction(mu, b1, count)
    nu_hat = c.bias_correction(nu, b2, count)
    r_t, tractable = rectification(b2, count, threshold)
    new_updates = jax.tree.map(
        lambda m, n: jnp.where(tractable, r_t * c.divide(m, jnp.sqrt(n) + eps), m), mu_hat, nu_hat
    )
    return c.cast_like(new_updates, updates), ScaleByRadamState(
        count=count, mu=c.cast_like(mu, state.mu), nu=c.cast_like(nu, state.nu)
    )

  return optax.GradientTransformation(init_fn, update_fn)


def radam(
    learning_rate: optax.ScalarOrSchedule = 0.001,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    threshold: float = 4.0,
) -> optax.GradientTransformation:
  r"""RAdam: Adam whose adaptive step is switched on once its variance is tractable.

  .. math::
     ρ_∞ = \frac{2}{1−β_2} − 1, \quad ρ_t = ρ_∞ − \frac{2 t β_2^t}{1 − β_2^t}, \quad
     r_t = \sqrt{\frac{(ρ_t−4)(ρ_t−2)ρ_∞}{(ρ_∞−4)(ρ_∞−2)ρ_t}} \\
     θ_{t+1} = θ_t − α_t \begin{cases}
        r_t\, \hat m_t / (\sqrt{\hat v_t} + ε) & ρ_t > 4 \\
        \hat m_t & \text{otherwise (SGD with momentum)}
     \end{cases}

  with :math:`\hat m_t, \hat v_t` Adam's bias-corrected moments. The paper's
  Algorithm 2 switches at ρ_t > 4 (the default); its official code, PyTorch and
  optax switch at ρ_t > 5: ``threshold=5.0`` matches them.

  Args:
    learning_rate: α ≥ 0, a number or a schedule.
    b1: β₁ in [0, 1).
    b2: β₂ in [0, 1).
    eps: ε ≥ 0 (the paper has none).
    threshold: ρ_t above which the rectified adaptive step is used (≥ 4).

  Returns:
    An ``optax.GradientTransformation``.

  Example:
    >>> import jax.numpy as jnp, optlab
    >>> state = optlab.optim.radam(threshold=5.0).init(jnp.zeros(2))

  References:
    L. Liu, H. Jiang, P. He, W. Chen, X. Liu, J. Gao, J. Han, "On the Variance of
    the Adaptive Learning Rate and Beyond", ICLR 2020.
  """
  v.check_learning_rate("radam", learning_rate)
  return optax.chain(
      scale_by_radam(b1, b2, eps, threshold), c.scale_by_learning_rate(learning_rate)
  )
