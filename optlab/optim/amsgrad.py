"""AMSGrad (Reddi, Kale & Kumar, 2018)."""

from __future__ import annotations

from typing import Literal, NamedTuple

import jax
import jax.numpy as jnp
import optax

from optlab.optim import _common as c
from optlab.optim import _validation as v
from optlab.optim.adam import check_adam_hyperparameters

BiasCorrection = Literal["none", "after_max", "before_max"]
BIAS_CORRECTIONS = ("none", "after_max", "before_max")


class ScaleByAmsgradState(NamedTuple):
  """State of :func:`scale_by_amsgrad`."""

  count: jax.Array  # int32 scalar
  mu: optax.Updates  # first moment m_t
  nu: optax.Updates  # second moment v_t
  nu_max: optax.Updates  # the running maximum v̂_t (of v_t, or of v_t/(1−β₂^t))


def scale_by_amsgrad(
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    *,
    bias_correction: BiasCorrection = "none",
) -> optax.GradientTransformation:
  r"""AMSGrad's direction: Adam's, with a non-decreasing second moment.

  ``bias_correction="none"`` (the paper's Algorithm 2):
  :math:`\hat v_t = \max(\hat v_{t-1}, v_t)`, :math:`d_t = m_t/(\sqrt{\hat v_t} + ε)`.

  ``"after_max"`` (``torch.optim.Adam(amsgrad=True)``): the maximum of the raw
  v_t, then both moments bias-corrected,
  :math:`d_t = \frac{m_t/(1−β_1^t)}{\sqrt{\hat v_t/(1−β_2^t)} + ε}`.

  ``"before_max"`` (``optax.amsgrad``): the maximum of the bias-corrected
  second moments, :math:`\hat v_t = \max(\hat v_{t-1}, v_t/(1−β_2^t))`,
  :math:`d_t = \frac{m_t/(1−β_1^t)}{\sqrt{\hat v_t} + ε}`.

  Args:
    b1: β₁ in [0, 1).
    b2: β₂ in [0, 1).
    eps: ε ≥ 0 (the paper has none).
    bias_correction: which convention, as above.

  Returns:
    An ``optax.GradientTransformation``.
  """
  where = "scale_by_amsgrad"
  check_adam_hyperparameters(where, b1, b2, eps)
  v.check_choice(where, "bias_correction", bias_correction, BIAS_CORRECTIONS)

  def init_fn(params):
    v.check_float_tree(where, params)
    return ScaleByAmsgradState(
        count=jnp.zeros([], jnp.int32),
        mu=c.zeros_like(params),
        nu=c.zeros_like(params),
        nu_max=c.zeros_like(params),
    )

  def update_fn(updates, state, params=None):
    del params
    v.check_same_structure(where, updates, state.mu, "first-moment buffer")
    v.check_float_tree(where, updates, "updates")
    mu = jax.tree.map(lambda m, g: b1 * m + (1 - b1) * g, state.mu, updates)
    nu = jax.tree.map(lambda n, g: b2 * n + (1 - b2) * g * g, state.nu, updates)
    count = optax.safe_increment(state.count)
    if bias_correction == "none":
      nu_max = jax.tree.map(jnp.maximum, state.nu_max, nu)
      numerators, denominators = mu, nu_max
    elif bias_correction == "after_max":
      nu_max = jax.tree.map(jnp.maximum, state.nu_max, nu)
      numerators = c.bias_correction(mu, b1, count)
      denominators = c.bias_correction(nu_max, b2, count)
    else:
      nu_max = jax.tree.map(jnp.maximum, state.nu_max, c.bias_correction(nu, b2, count))
      numerators = c.bias_correction(mu, b1, count)
      denominators = nu_max
    new_updates = jax.tree.map(
        lambda m, n: c.divide(m, jnp.sqrt(n) + eps), numerators, denominators
    )
    return c.cast_like(new_updates, updates), ScaleByAmsgradState(
        count=count,
        mu=c.cast_like(mu, state.mu),
        nu=c.cast_like(nu, state.nu),
        nu_max=c.cast_like(nu_max, state.nu_max),
    )

  return optax.GradientTransformation(init_fn, update_fn)


def amsgrad(
    learning_rate: optax.ScalarOrSchedule = 0.001,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    *,
    bias_correction: BiasCorrection = "none",
) -> optax.GradientTransformation:
  r"""AMSGrad: Adam whose second-moment estimate never decreases.

  .. math::
     m_t = β_1 m_{t-1} + (1−β_1) g_t, \quad v_t = β_2 v_{t-1} + (1−β_2) g_t^2, \\
     \hat v_t = \max(\hat v_{t-1}, v_t), \quad θ_{t+1} = θ_t − α_t m_t/(\sqrt{\hat v_t} + ε)

  The default is the paper's Algorithm 2, which has no bias correction.
  ``bias_correction="after_max"`` matches ``torch.optim.Adam(amsgrad=True)``;
  ``"before_max"`` matches ``optax.amsgrad`` (see :func:`scale_by_amsgrad`).

  Args:
    learning_rate: α ≥ 0, a number or a schedule (the paper's analysis uses α/√t).
    b1: β₁ in [0, 1).
    b2: β₂ in [0, 1).
    eps: ε ≥ 0.
    bias_correction: ``"none"``, ``"after_max"`` or ``"before_max"``.

  Returns:
    An ``optax.GradientTransformation``.

  Example:
    >>> import jax.numpy as jnp, optlab
    >>> tx = optlab.optim.amsgrad(1e-3, bias_correction="after_max")
    >>> state = tx.init(jnp.zeros(5))

  References:
    S. J. Reddi, S. Kale, S. Kumar, "On the Convergence of Adam and Beyond", ICLR 2018.
  """
  v.check_learning_rate("amsgrad", learning_rate)
  return optax.chain(
      scale_by_amsgrad(b1, b2, eps, bias_correction=bias_correction),
      c.scale_by_learning_rate(learning_rate),
  )
