"""Cautious optimizers (Liang et al., 2024): mask the update where its sign disagrees with g."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, NamedTuple

import jax
import jax.numpy as jnp
import optax

from optlab.optim import _common as c
from optlab.optim import _validation as v
from optlab.optim.adam import scale_by_adam
from optlab.optim.adam_mini import DecayConvention, weight_decay_and_learning_rate

Normalization = Literal["paper", "mean", "none"]
NORMALIZATIONS = ("paper", "mean", "none")
UpdatesAre = Literal["steps", "directions"]
UPDATES_ARE = ("steps", "directions")


def _cautious_mask(u: jax.Array, g: jax.Array, sign: float, normalization: str,
                   min_fraction: Any) -> jax.Array:
  """φ scaled by the normalization, in float32 (or wider)."""
  dtype = jnp.promote_types(jnp.result_type(u), jnp.float32)
  # Signs, not the product u·g, so that tiny bfloat16 values do not underflow to 0.
  keep = (sign * jnp.sign(u).astype(dtype) * jnp.sign(g).astype(dtype)) > 0
  phi = keep.astype(dtype)
  if normalization == "none" or phi.size == 0:
    return phi
  if normalization == "paper":
    return phi * (phi.size / (jnp.sum(phi) + 1.0))
  return phi / jnp.maximum(jnp.mean(phi), min_fraction)


def cautious(
    base: optax.GradientTransformation,
    *,
    normalization: Normalization = "paper",
    updates_are: UpdatesAre = "steps",
    min_fraction: float = 1e-3,
) -> optax.GradientTransformationExtraArgs:
  r"""Wraps any optimizer so that it only moves where its step agrees with the gradient.

  With g the incoming gradient and u the base optimizer's update:

  .. math::
     φ_i = \mathbb{1}[u_i g_i < 0], \qquad u'_i = u_i\, φ_i\, s(φ)

  optax updates are *added* to the parameters, so a step u agrees with the
  descent direction −g exactly when u_i g_i < 0 (``updates_are="steps"``, for a
  complete optimizer such as ``optlab.optim.adam(1e-3)`` or ``optax.lion(1e-4)``).
  For a ``scale_by_*`` direction d that is later multiplied by −α, pass
  ``updates_are="directions"``: φ_i = 1[d_i g_i > 0]. This is the paper's
  φ(u ∘ g) in its sign convention (the PyTorch code's ``exp_avg * grad > 0``).
  Components where u_i g_i = 0 are masked.

  The scale s(φ) keeps the update's size (per leaf, the code's per-tensor rule):

  * ``"paper"`` (Algorithm 2): :math:`s = d / (\|φ\|_0 + 1)`, d the leaf's size.
  * ``"mean"`` (the official code now, after timm):
    :math:`s = 1 / \max(\mathrm{mean}(φ), \text{min\_fraction})`.
    With every sign in agreement this is exactly 1: the base update.
  * ``"none"``: s = 1.

  Args:
    base: any ``optax.GradientTransformation``.
    normalization: ``"paper"``, ``"mean"`` or ``"none"``.
    updates_are: ``"steps"`` (added to the params) or ``"directions"`` (to be
      multiplied by −α).
    min_fraction: the floor on mean(φ) of ``"mean"``, in (0, 1].

  Returns:
    An ``optax.GradientTransformationExtraArgs`` with the base's state.

  Example:
    >>> import jax.numpy as jnp, optax
    >>> from optlab.optim.cautious import cautious
    >>> tx = cautious(optax.lion(1e-4))
    >>> params = jnp.array([1.0, -2.0])
    >>> updates, state = tx.update(params, tx.init(params), params)

  References:
    K. Liang, L. Chen, B. Liu, Q. Liu, "Cautious Optimizers: Improving Training
    with One Line of Code", arXiv:2411.16085, 2024.
  """
  where = "cautious"
  if not isinstance(base, optax.GradientTransformation):
    raise TypeError(f"{where}: base must be an optax.GradientTransformation, got "
                    f"{type(base).__name__}")
  v.check_choice(where, "normalization", normalization, NORMALIZATIONS)
  v.check_choice(where, "updates_are", updates_are, UPDATES_ARE)
  v.check_range(where, "min_fraction", min_fraction, 0.0, 1.0, low_inclusive=False)
  sign = -1.0 if updates_are == "steps" else 1.0
  base = optax.with_extra_args_support(base)

  def init_fn(params):
    return base.init(params)

  def update_fn(updates, state, params=None, **extra_args):
    if params is not None:
      v.check_same_structure(where, updates, params, "params")
    new_updates, state = base.update(updates, state, params, **extra_args)
    v.check_same_structure(where, new_updates, updates, "gradients")

    def apply(u, g):
      return (u * _cautious_mask(u, g, sign, normalization, min_fraction)).astype(u.dtype)

    return jax.tree.map(apply, new_updates, updates), state

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def cautious_adamw(
    learning_rate: optax.ScalarOrSchedule = 0.001,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    weight_decay: float = 1e-4,
    *,
    normalization: Normalization = "paper",
    decay_convention: DecayConvention = "paper",
    mask: Any | Callable[[optax.Params], Any] | None = None,
) -> optax.GradientTransformation:
  r"""Cautious AdamW (C-AdamW): AdamW whose Adam step is masked where it disagrees with g.

  .. math::
     d_t = \frac{\hat m_t}{\sqrt{\hat v_t} + ε}, \quad φ_t = \mathbb{1}[d_t ∘ g_t > 0], \quad
     θ_{t+1} = θ_t − α_t\, s(φ_t)\, φ_t ∘ d_t − \text{decay}

  The mask touches the Adam step only, not the weight decay, as in the official
  code. Defaults and ``decay_convention`` are those of
  :func:`optlab.optim.adamw` (``"paper"``: the decay λθ is not multiplied by α),
  so that ``cautious_adamw`` and ``adamw`` differ only by the mask; the official
  code's PyTorch AdamW is ``decay_convention="lr"``. ``normalization`` is the
  scale s of :func:`cautious` (``"mean"``: the official code).

  Args:
    learning_rate: α ≥ 0, a number or a schedule.
    b1: β₁ in [0, 1).
    b2: β₂ in [0, 1).
    eps: ε ≥ 0.
    weight_decay: λ ≥ 0.
    normalization: ``"paper"``, ``"mean"`` or ``"none"``.
    decay_convention: ``"paper"`` or ``"lr"``.
    mask: where the decay applies (a tree of booleans or a function of the params).

  Returns:
    An ``optax.GradientTransformation``.

  Example:
    >>> import jax.numpy as jnp
    >>> from optlab.optim.cautious import cautious_adamw
    >>> tx = cautious_adamw(1e-3, weight_decay=1e-4)
    >>> state = tx.init({"w": jnp.ones((2, 2))})

  References:
    K. Liang, L. Chen, B. Liu, Q. Liu, "Cautious Optimizers: Improving Training
    with One Line of Code", arXiv:2411.16085, 2024.
  """
  where = "cautious_adamw"
  v.check_learning_rate(where, learning_rate)
  return optax.chain(
      cautious(scale_by_adam(b1, b2, eps), normalization=normalization, updates_are="directions"),
      weight_decay_and_learning_rate(learning_rate, weight_decay, decay_convention, mask,
                                     where=where),
  )


class ScaleByLionState(NamedTuple):
  """State of :func:`scale_by_lion`."""

  count: jax.Array  # int32 scalar
  mu: optax.Updates  # momentum m_t


def scale_by_lion(b1: float = 0.9, b2: float = 0.99) -> optax.GradientTransformation:
  r"""Lion's direction (Chen et al., 2023), keeping dtypes under injected hyperparameters.

  .. math::
     d_t = \mathrm{sign}(β_1 m_{t−1} + (1−β_1) g_t), \quad m_t = β_2 m_{t−1} + (1−β_2) g_t

  Args:
    b1: β₁ in [0, 1], the interpolation that gives the sign.
    b2: β₂ in [0, 1), the momentum decay.

  Returns:
    An ``optax.GradientTransformation``.
  """
  where = "scale_by_lion"
  v.check_range(where, "b1", b1, 0.0, 1.0)
  v.check_decay(where, "b2", b2)

  def init_fn(params):
    v.check_float_tree(where, params)
    return ScaleByLionState(count=jnp.zeros([], jnp.int32), mu=c.zeros_like(params))

  def update_fn(updates, state, params=None):
    del params
    v.check_same_structure(where, updates, state.mu, "momentum buffer")
    direction = jax.tree.map(lambda m, g: jnp.sign(b1 * m + (1 - b1) * g), state.mu, updates)
    mu = jax.tree.map(lambda m, g: b2 * m + (1 - b2) * g, state.mu, updates)
    return c.cast_like(direction, updates), ScaleByLionState(
        count=optax.safe_increment(state.count), mu=c.cast_like(mu, state.mu)
    )

  return optax.GradientTransformation(init_fn, update_fn)


def cautious_lion(
    learning_rate: optax.ScalarOrSchedule = 1e-4,
    b1: float = 0.9,
    b2: float = 0.99,
    weight_decay: float = 0.0,
    *,
    normalization: Normalization = "paper",
    decay_convention: DecayConvention = "lr",
    mask: Any | Callable[[optax.Params], Any] | None = None,
) -> optax.GradientTransformation:
  r"""Cautious Lion (C-Lion): Lion's sign step, masked where it disagrees with g.

  .. math::
     d_t = \mathrm{sign}(β_1 m_{t−1} + (1−β_1) g_t), \quad φ_t = \mathbb{1}[d_t ∘ g_t > 0], \\
     θ_{t+1} = θ_t − α_t (s(φ_t)\, φ_t ∘ d_t + λ θ_t), \quad m_t = β_2 m_{t−1} + (1−β_2) g_t

  Lion's weight decay is multiplied by the learning rate (``decay_convention="lr"``,
  Chen et al. 2023 and ``optax.lion``). Defaults are optax's.

  Args:
    learning_rate: α ≥ 0, a number or a schedule.
    b1: β₁ in [0, 1].
    b2: β₂ in [0, 1).
    weight_decay: λ ≥ 0.
    normalization: ``"paper"``, ``"mean"`` or ``"none"`` (see :func:`cautious`).
    decay_convention: ``"lr"`` or ``"paper"``.
    mask: where the decay applies (a tree of booleans or a function of the params).

  Returns:
    An ``optax.GradientTransformation``.

  References:
    K. Liang, L. Chen, B. Liu, Q. Liu, "Cautious Optimizers: Improving Training
    with One Line of Code", arXiv:2411.16085, 2024; X. Chen et al., "Symbolic
    Discovery of Optimization Algorithms", NeurIPS 2023.
  """
  where = "cautious_lion"
  v.check_learning_rate(where, learning_rate)
  return optax.chain(
      cautious(scale_by_lion(b1, b2), normalization=normalization, updates_are="directions"),
      weight_decay_and_learning_rate(learning_rate, weight_decay, decay_convention, mask,
                                     where=where),
  )
