"""Adam (Kingma & Ba, 2015) and AdaMax, its infinity-norm variant from the same paper."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from optlab.optim import _common as c
from optlab.optim import _fusion
from optlab.optim import _validation as v


class ScaleByAdamState(NamedTuple):
  """State of :func:`scale_by_adam`."""

  count: jax.Array  # int32 scalar
  mu: optax.Updates  # first moment m_t
  nu: optax.Updates  # second moment v_t


def check_adam_hyperparameters(where: str, b1: float, b2: float, eps: float) -> None:
  v.check_decay(where, "b1", b1)
  v.check_decay(where, "b2", b2)
  v.check_non_negative(where, "eps", eps)


def scale_by_adam(
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    eps_root: float = 0.0,
) -> optax.GradientTransformation:
  r"""Adam's bias-corrected direction.

  .. math::
     m_t = β_1 m_{t-1} + (1−β_1) g_t, \quad v_t = β_2 v_{t-1} + (1−β_2) g_t^2, \quad
     d_t = \frac{m_t/(1−β_1^t)}{\sqrt{v_t/(1−β_2^t) + ε_{root}} + ε}

  When XLA:CPU's multi-output fusion is on (``optlab.optim._fusion``), d_t is
  computed from m_{t−1}, v_{t−1} and g_t so that the whole update is one loop
  over memory; the numbers differ from the default only by rounding.

  Args:
    b1: β₁ in [0, 1).
    b2: β₂ in [0, 1).
    eps: ε ≥ 0, outside the root (the paper's).
    eps_root: ε ≥ 0 under the root (0 in the paper; useful when differentiating
      through the update).

  Returns:
    An ``optax.GradientTransformation``.
  """
  where = "scale_by_adam"
  check_adam_hyperparameters(where, b1, b2, eps)
  v.check_non_negative(where, "eps_root", eps_root)

  def init_fn(params):
    v.check_float_tree(where, params)
    return ScaleByAdamState(
        count=jnp.zeros([], jnp.int32), mu=c.zeros_like(params), nu=c.zeros_like(params)
    )

  def update_fn(updates, state, params=None):
    del params
    v.check_same_structure(where, updates, state.mu, "first-moment buffer")
    v.check_float_tree(where, updates, "updates")
    mu = jax.tree.map(lambda m, g: b1 * m + (1 - b1) * g, state.mu, updates)
    nu = jax.tree.map(lambda n, g: b2 * n + (1 - b2) * g * g, state.nu, updates)
    if _fusion.single_pass_updates():
      # XLA:CPU with multi-output fusion: the direction recomputed from the old
      # moments is a sibling of m', v' (the barrier keeps CSE from merging it),
      # and the update becomes one loop over memory (see optlab.optim._fusion).
      old_mu, old_nu, grads = jax.lax.optimization_barrier((state.mu, state.nu, updates))
      mu_d = jax.tree.map(lambda m, g: b1 * m + (1 - b1) * g, old_mu, grads)
      nu_d = jax.tree.map(lambda n, g: b2 * n + (1 - b2) * g * g, old_nu, grads)
    else:
      mu_d, nu_d = mu, nu
    count = optax.safe_increment(state.count)
    mu_hat = c.bias_correction(mu_d, b1, count)
    nu_hat = c.bias_correction(nu_d, b2, count)
    new_updates = jax.tree.map(
        lambda m, n: c.divide(m, jnp.sqrt(n + eps_root) + eps), mu_hat, nu_hat
    )
    return c.cast_like(new_updates, updates), ScaleByAdamState(
        count=count, mu=c.cast_like(mu, state.mu), nu=c.cast_like(nu, state.nu)
    )

  return optax.GradientTransformation(init_fn, update_fn)


def adam(
    learning_rate: optax.ScalarOrSchedule = 0.001,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    eps_root: float = 0.0,
) -> optax.GradientTransformation:
  r"""Adam: adaptive moment estimation.

  .. math::
     m_t = β_1 m_{t-1} + (1−β_1) g_t, \quad v_t = β_2 v_{t-1} + (1−β_2) g_t^2, \\
     θ_{t+1} = θ_t − α_t\, \frac{m_t/(1−β_1^t)}{\sqrt{v_t/(1−β_2^t)} + ε}

  This is Algorithm 1 of the paper, which is also ``torch.optim.Adam`` and
  ``optax.adam``. The paper's faster ordering (Sec. 2, with ε̂ added to the
  uncorrected root) equals this with ε replaced by ε̂/√(1−β₂^t), which differs
  only while ε matters.

  Args:
    learning_rate: α ≥ 0, a number or a schedule.
    b1: β₁ in [0, 1).
    b2: β₂ in [0, 1).
    eps: ε ≥ 0, outside the root.
    eps_root: ε ≥ 0 under the root.

  Returns:
    An ``optax.GradientTransformation``.

  Example:
    >>> import jax.numpy as jnp, optax, optlab
    >>> tx = optax.chain(optax.clip_by_global_norm(1.0), optlab.optim.adam(1e-3))
    >>> state = tx.init({"w": jnp.zeros(3)})

  References:
    D. P. Kingma, J. Ba, "Adam: A Method for Stochastic Optimization", ICLR 2015.
  """
  v.check_learning_rate("adam", learning_rate)
  return optax.chain(scale_by_adam(b1, b2, eps, eps_root), c.scale_by_learning_rate(learning_rate))


class ScaleByAdamaxState(NamedTuple):
  """State of :func:`scale_by_adamax`."""

  count: jax.Array  # int32 scalar
  mu: optax.Updates  # first moment m_t
  nu: optax.Updates  # exponentially weighted infinity norm u_t


def scale_by_adamax(
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    *,
    eps_inside_max: bool = False,
) -> optax.GradientTransformation:
  r"""AdaMax's direction: the first moment over an infinity-norm scale.

  .. math::
     m_t = β_1 m_{t-1} + (1−β_1) g_t, \quad u_t = \max(β_2 u_{t-1}, |g_t|), \quad
     d_t = \frac{m_t}{(1−β_1^t)(u_t + ε)}

  Args:
    b1: β₁ in [0, 1).
    b2: β₂ in [0, 1).
    eps: ε ≥ 0. The paper has none; it only guards against u_t = 0.
    eps_inside_max: use :math:`u_t = \max(β_2 u_{t-1}, |g_t| + ε)` and
      :math:`d_t = m_t/((1−β_1^t) u_t)`, as PyTorch and optax do.

  Returns:
    An ``optax.GradientTransformation``.
  """
  where = "scale_by_adamax"
  check_adam_hyperparameters(where, b1, b2, eps)

  def init_fn(params):
    v.check_float_tree(where, params)
    return ScaleByAdamaxState(
        count=jnp.zeros([], jnp.int32), mu=c.zeros_like(params), nu=c.zeros_like(params)
    )

  def update_fn(updates, state, params=None):
    del params
    v.check_same_structure(where, updates, state.mu, "first-moment buffer")
    v.check_float_tree(where, updates, "updates")
    mu = jax.tree.map(lambda m, g: b1 * m + (1 - b1) * g, state.mu, updates)
    if eps_inside_max:
      nu = jax.tree.map(lambda n, g: jnp.maximum(b2 * n, jnp.abs(g) + eps), state.nu, updates)
      denominators = nu
    else:
      nu = jax.tree.map(lambda n, g: jnp.maximum(b2 * n, jnp.abs(g)), state.nu, updates)
      denominators = jax.tree.map(lambda n: n + eps, nu)
    count = optax.safe_increment(state.count)
    mu_hat = c.bias_correction(mu, b1, count)
    new_updates = jax.tree.map(c.divide, mu_hat, denominators)
    return c.cast_like(new_updates, updates), ScaleByAdamaxState(
        count=count, mu=c.cast_like(mu, state.mu), nu=c.cast_like(nu, state.nu)
    )

  return optax.GradientTransformation(init_fn, update_fn)


def adamax(
    learning_rate: optax.ScalarOrSchedule = 0.002,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    *,
    eps_inside_max: bool = False,
) -> optax.GradientTransformation:
  r"""AdaMax: Adam with the infinity norm (Algorithm 2 of the Adam paper).

  .. math::
     m_t = β_1 m_{t-1} + (1−β_1) g_t, \quad u_t = \max(β_2 u_{t-1}, |g_t|), \quad
     θ_{t+1} = θ_t − \frac{α_t}{1−β_1^t} \frac{m_t}{u_t + ε}

  The paper's defaults are α = 0.002, β₁ = 0.9, β₂ = 0.999 and no ε; ε is
  added to the denominator only to keep it non-zero. ``torch.optim.Adamax`` and
  ``optax.adamax`` add ε inside the maximum: ``eps_inside_max=True``.

  Args:
    learning_rate: α ≥ 0, a number or a schedule.
    b1: β₁ in [0, 1).
    b2: β₂ in [0, 1).
    eps: ε ≥ 0.
    eps_inside_max: the PyTorch/optax placement of ε.

  Returns:
    An ``optax.GradientTransformation``.

  Example:
    >>> import jax.numpy as jnp, optlab
    >>> state = optlab.optim.adamax().init(jnp.zeros(2))

  References:
    D. P. Kingma, J. Ba, "Adam: A Method for Stochastic Optimization", ICLR 2015, Sec. 7.1.
  """
  v.check_learning_rate("adamax", learning_rate)
  return optax.chain(
      scale_by_adamax(b1, b2, eps, eps_inside_max=eps_inside_max),
      c.scale_by_learning_rate(learning_rate),
  )
