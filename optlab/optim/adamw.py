"""AdamW: Adam with decoupled weight decay (Loshchilov & Hutter, 2019)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, NamedTuple

import jax
import jax.numpy as jnp
import optax

from optlab.optim import _common as c
from optlab.optim import _validation as v
from optlab.optim.adam import scale_by_adam

DecayConvention = Literal["paper", "lr"]
DECAY_CONVENTIONS = ("paper", "lr")


class DecoupledWeightDecayState(NamedTuple):
  """State of :func:`add_decoupled_weight_decay`."""

  count: jax.Array  # int32 scalar


def _add_scaled_params(
    where: str,
    coefficient: Callable[[jax.Array], Any],
    mask: Any | Callable[[optax.Params], Any] | None,
) -> optax.GradientTransformation:
  """u ← u + coefficient(t) · θ, keeping the dtype of the updates."""

  def init_fn(params):
    del params
    return DecoupledWeightDecayState(count=jnp.zeros([], jnp.int32))

  def update_fn(updates, state, params=None):
    if params is None:
      raise ValueError(f"{where}: weight decay needs the parameters: call update(updates, "
                       "state, params)")
    v.check_same_structure(where, updates, params, "params")
    scale = coefficient(state.count)
    new_updates = jax.tree.map(lambda u, p: (u + scale * p).astype(u.dtype), updates, params)
    return new_updates, DecoupledWeightDecayState(count=optax.safe_increment(state.count))

  transform = optax.GradientTransformation(init_fn, update_fn)
  return optax.masked(transform, mask) if mask is not None else transform


def add_decoupled_weight_decay(
    weight_decay: float,
    schedule_multiplier: optax.Schedule | None = None,
    mask: Any | Callable[[optax.Params], Any] | None = None,
) -> optax.GradientTransformation:
  r"""Adds a decay toward zero that is *not* scaled by the learning rate.

  .. math:: u_t ← u_t − η_t\, λ\, θ_t

  Place it after the learning-rate scaling in a chain. η_t is the schedule
  multiplier of Loshchilov & Hutter (1 when None).

  Args:
    weight_decay: λ ≥ 0.
    schedule_multiplier: η_t, a schedule of the step, or None for 1.
    mask: a tree of booleans (or a function of the params returning one) that is
      True where the decay applies, as in ``optax.add_decayed_weights``.

  Returns:
    An ``optax.GradientTransformation``.
  """
  where = "add_decoupled_weight_decay"
  v.check_non_negative(where, "weight_decay", weight_decay)
  v.check_callable_or_none(where, "schedule_multiplier", schedule_multiplier)
  if schedule_multiplier is None:
    return _add_scaled_params(where, lambda count: -weight_decay, mask)
  return _add_scaled_params(where, lambda count: -weight_decay * schedule_multiplier(count), mask)


def add_weight_decay(
    weight_decay: float,
    mask: Any | Callable[[optax.Params], Any] | None = None,
) -> optax.GradientTransformation:
  r"""Adds λθ to the updates, :math:`u_t ← u_t + λ θ_t`, before the learning rate scales them.

  ``optax.add_decayed_weights``, but keeping the dtype of the updates when λ is
  an injected float32 hyperparameter.

  Args:
    weight_decay: λ ≥ 0.
    mask: where the decay applies (a tree of booleans or a function of the params).

  Returns:
    An ``optax.GradientTransformation``.
  """
  where = "add_weight_decay"
  v.check_non_negative(where, "weight_decay", weight_decay)
  return _add_scaled_params(where, lambda count: weight_decay, mask)


def adamw(
    learning_rate: optax.ScalarOrSchedule = 0.001,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    weight_decay: float = 1e-4,
    *,
    decay_convention: DecayConvention = "paper",
    schedule_multiplier: optax.Schedule | None = None,
    mask: Any | Callable[[optax.Params], Any] | None = None,
) -> optax.GradientTransformation:
  r"""AdamW: Adam with weight decay decoupled from the adaptive step.

  The paper (Algorithm 2, line 12), ``decay_convention="paper"``:

  .. math::
     θ_{t+1} = θ_t − η_t \left( α\, \frac{\hat m_t}{\sqrt{\hat v_t} + ε} + λ θ_t \right)

  where α is the learning rate and η_t the schedule multiplier: the decay follows
  the schedule but is not multiplied by α. ``decay_convention="lr"`` is the form
  of ``torch.optim.AdamW`` and ``optax.adamw``, where the decay is multiplied by
  the learning rate:

  .. math::
     θ_{t+1} = θ_t − α_t \left( \frac{\hat m_t}{\sqrt{\hat v_t} + ε} + λ θ_t \right)

  A PyTorch setting (α, λ_torch) is the paper setting (α, λ = α·λ_torch) under a
  constant learning rate.

  Args:
    learning_rate: α ≥ 0, a number or a schedule. In the paper convention a
      schedule here multiplies only the Adam step; give the schedule shared by
      both terms as ``schedule_multiplier``.
    b1: β₁ in [0, 1).
    b2: β₂ in [0, 1).
    eps: ε ≥ 0.
    weight_decay: λ ≥ 0.
    decay_convention: ``"paper"`` or ``"lr"``.
    schedule_multiplier: η_t (paper convention only), a schedule; None means 1.
    mask: where the decay applies (a tree of booleans or a function of the params).

  Returns:
    An ``optax.GradientTransformation``.

  Example:
    >>> import jax.numpy as jnp, optax, optlab
    >>> eta = optax.cosine_decay_schedule(1.0, decay_steps=1000)
    >>> tx = optlab.optim.adamw(1e-3, weight_decay=1e-4, schedule_multiplier=eta)
    >>> state = tx.init({"w": jnp.ones((2, 2)), "b": jnp.zeros(2)})

  References:
    I. Loshchilov, F. Hutter, "Decoupled Weight Decay Regularization", ICLR 2019.
  """
  where = "adamw"
  v.check_learning_rate(where, learning_rate)
  v.check_non_negative(where, "weight_decay", weight_decay)
  v.check_choice(where, "decay_convention", decay_convention, DECAY_CONVENTIONS)
  v.check_callable_or_none(where, "schedule_multiplier", schedule_multiplier)
  if decay_convention == "lr":
    if schedule_multiplier is not None:
      raise ValueError(
          "adamw: schedule_multiplier belongs to decay_convention='paper'; with 'lr' pass "
          "the schedule as learning_rate"
      )
    return optax.chain(
        scale_by_adam(b1, b2, eps),
        add_weight_decay(weight_decay, mask),
        c.scale_by_learning_rate(learning_rate),
    )
  if schedule_multiplier is None:
    adam_rate = learning_rate
  elif callable(learning_rate):
    adam_rate = lambda count: learning_rate(count) * schedule_multiplier(count)  # noqa: E731
  else:
    adam_rate = lambda count: learning_rate * schedule_multiplier(count)  # noqa: E731
  return optax.chain(
      scale_by_adam(b1, b2, eps),
      c.scale_by_learning_rate(adam_rate),
      add_decoupled_weight_decay(weight_decay, schedule_multiplier, mask),
  )
