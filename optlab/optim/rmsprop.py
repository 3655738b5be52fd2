"""RMSProp (Tieleman & Hinton, 2012) and its centered form (Graves, 2013)."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from optlab.optim import _common as c
from optlab.optim import _validation as v
from optlab.optim import momentum as momentum_lib


class ScaleByRmspropState(NamedTuple):
  """State of :func:`scale_by_rmsprop`."""

  count: jax.Array  # int32 scalar
  nu: optax.Updates  # running mean of g²
  mu: optax.Updates  # running mean of g (centered form); zeros otherwise


def scale_by_rmsprop(
    decay: float = 0.9,
    eps: float = 1e-8,
    *,
    centered: bool = False,
    eps_in_sqrt: bool = False,
    initial_scale: float = 0.0,
) -> optax.GradientTransformation:
  r"""Divides updates by a running root mean square of the gradients.

  .. math::
     ν_t = ρ ν_{t-1} + (1−ρ) g_t^2, \qquad d_t = g_t / (\sqrt{ν_t} + ε)

  Centered (Graves 2013): :math:`m_t = ρ m_{t-1} + (1−ρ) g_t` and
  :math:`d_t = g_t / (\sqrt{ν_t − m_t^2} + ε)`.

  Args:
    decay: ρ in [0, 1).
    eps: ε ≥ 0.
    centered: subtract the square of the running mean (an estimate of the variance).
    eps_in_sqrt: ε under the root, :math:`g/\sqrt{ν + ε}` (optax's default and
      TensorFlow's); the default puts it outside, as PyTorch does.
    initial_scale: ν_0 ≥ 0 (0 in PyTorch and optax; TensorFlow 1 used 1).

  Returns:
    An ``optax.GradientTransformation``.
  """
  where = "scale_by_rmsprop"
  v.check_decay(where, "decay", decay)
  v.check_non_negative(where, "eps", eps)
  v.check_non_negative(where, "initial_scale", initial_scale)

  def init_fn(params):
    v.check_float_tree(where, params)
    return ScaleByRmspropState(
        count=jnp.zeros([], jnp.int32),
        nu=c.full_like(params, initial_scale),
        mu=c.zeros_like(params),
    )

  def update_fn(updates, state, params=None):
    del params
    v.check_same_structure(where, updates, state.nu, "second-moment buffer")
    v.check_float_tree(where, updates, "updates")
    nu = jax.tree.map(lambda n, g: decay * n + (1 - decay) * g * g, state.nu, updates)
    if centered:
      mu = jax.tree.map(lambda m, g: decay * m + (1 - decay) * g, state.mu, updates)
      variance = jax.tree.map(lambda n, m: n - m * m, nu, mu)
    else:
      mu = state.mu
      variance = nu
    if eps_in_sqrt:
      new_updates = jax.tree.map(lambda g, s: c.divide(g, jnp.sqrt(s + eps)), updates, variance)
    else:
      new_updates = jax.tree.map(lambda g, s: c.divide(g, jnp.sqrt(s) + eps), updates, variance)
    return c.cast_like(new_updates, updates), ScaleByRmspropState(
        count=optax.safe_increment(state.count),
        nu=c.cast_like(nu, state.nu),
        mu=c.cast_like(mu, state.mu),
    )

  return optax.GradientTransformation(init_fn, update_fn)


def rmsprop(
    learning_rate: optax.ScalarOrSchedule = 0.001,
    decay: float = 0.9,
    eps: float = 1e-8,
    momentum: float = 0.0,
    *,
    centered: bool = False,
    eps_in_sqrt: bool = False,
) -> optax.GradientTransformation:
  r"""RMSProp, plain or centered, with optional heavy-ball momentum.

  .. math::
     ν_t = ρ ν_{t-1} + (1−ρ) g_t^2, \qquad
     b_t = μ b_{t-1} + g_t / (\sqrt{ν_t} + ε), \qquad θ_{t+1} = θ_t − α_t b_t

  (μ = 0 gives :math:`θ_{t+1} = θ_t − α_t g_t/(\sqrt{ν_t}+ε)`). With ``centered=True``
  the denominator is :math:`\sqrt{ν_t − m_t^2} + ε` with m the running mean of g.
  The defaults (ρ = 0.9, from the lecture) put ε outside the root as PyTorch does;
  ``torch.optim.RMSprop(alpha=ρ)`` is matched exactly. ``optax.rmsprop`` is matched
  by ``eps_in_sqrt=True``.

  Args:
    learning_rate: α ≥ 0, a number or a schedule.
    decay: ρ in [0, 1).
    eps: ε ≥ 0.
    momentum: μ in [0, 1).
    centered: the centered variant of Graves (2013).
    eps_in_sqrt: ε under the root (optax, TensorFlow).

  Returns:
    An ``optax.GradientTransformation``.

  Example:
    >>> import jax.numpy as jnp, optlab
    >>> tx = optlab.optim.rmsprop(0.01, centered=True)
    >>> state = tx.init(jnp.zeros(4))

  References:
    T. Tieleman, G. Hinton, "Lecture 6.5 — RMSProp: Divide the gradient by a
    running average of its recent magnitude", COURSERA: Neural Networks for
    Machine Learning, 2012.
    A. Graves, "Generating Sequences With Recurrent Neural Networks", arXiv:1308.0850, 2013.
  """
  v.check_learning_rate("rmsprop", learning_rate)
  v.check_decay("rmsprop", "momentum", momentum)
  return optax.chain(
      scale_by_rmsprop(decay, eps, centered=centered, eps_in_sqrt=eps_in_sqrt),
      momentum_lib.sgd(learning_rate, momentum),
  )
