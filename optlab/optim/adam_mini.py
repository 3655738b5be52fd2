"""Adam-mini (Zhang et al., 2024): Adam with one second-moment scalar per parameter block.

Also holds :func:`weight_decay_and_learning_rate`, the tail shared by optlab's
research optimizers (Adam-mini, MARS, Muon, Cautious AdamW): the learning rate and
a decoupled weight decay in either convention.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, NamedTuple

import jax
import jax.numpy as jnp
import optax

from optlab.optim import _common as c
from optlab.optim import _validation as v
from optlab.optim.adam import check_adam_hyperparameters
from optlab.optim.adamw import DECAY_CONVENTIONS, add_decoupled_weight_decay, add_weight_decay

DecayConvention = Literal["lr", "paper"]
BlockAxes = Callable[[tuple[Any, ...], tuple[int, ...]], "Sequence[int] | str | None"]
"""``(path, shape) -> kept axes``: one second moment per index along the kept axes."""


def weight_decay_and_learning_rate(
    learning_rate: optax.ScalarOrSchedule,
    weight_decay: float,
    decay_convention: DecayConvention = "lr",
    mask: Any | Callable[[optax.Params], Any] | None = None,
    *,
    where: str = "weight_decay_and_learning_rate",
) -> optax.GradientTransformation:
  r"""Scales a direction by −α_t and adds a decoupled weight decay.

  ``decay_convention="lr"`` (PyTorch's ``AdamW``, and the code of Muon, MARS,
  Adam-mini and Cautious optimizers): :math:`u_t = −α_t (d_t + λ θ_t)`.

  ``decay_convention="paper"`` (Loshchilov & Hutter 2019 with η_t = 1, as
  ``optlab.optim.adamw``'s default): :math:`u_t = −α_t d_t − λ θ_t`.

  Args:
    learning_rate: α ≥ 0, a number or a schedule.
    weight_decay: λ ≥ 0.
    decay_convention: ``"lr"`` or ``"paper"``.
    mask: where the decay applies (a tree of booleans or a function of the params).
    where: the name used in error messages.

  Returns:
    An ``optax.GradientTransformation`` (its update needs the params).
  """
  v.check_learning_rate(where, learning_rate)
  v.check_non_negative(where, "weight_decay", weight_decay)
  v.check_choice(where, "decay_convention", decay_convention, DECAY_CONVENTIONS)
  if decay_convention == "lr":
    return optax.chain(
        add_weight_decay(weight_decay, mask), c.scale_by_learning_rate(learning_rate)
    )
  return optax.chain(
      c.scale_by_learning_rate(learning_rate), add_decoupled_weight_decay(weight_decay, mask=mask)
  )


def _kept_axes(where: str, rule: BlockAxes | None, path: tuple[Any, ...], shape: tuple[int, ...]):
  """The kept axes of one leaf, normalized to a sorted tuple of non-negative ints."""
  ndim = len(shape)
  if rule is None:
    return ()
  axes = rule(path, shape)
  name = jax.tree_util.keystr(path) or "<root>"
  if axes is None:
    return ()
  if isinstance(axes, str):
    if axes != "all":
      raise ValueError(f"{where}: block_axes gave {axes!r} for leaf {name}; accepted: a sequence "
                       "of axes, None (one scalar for the leaf) or 'all' (one per coordinate)")
    return tuple(range(ndim))
  if isinstance(axes, int):
    axes = (axes,)
  normalized = []
  for axis in axes:
    if isinstance(axis, bool) or not isinstance(axis, int) or not -ndim <= axis < ndim:
      raise ValueError(f"{where}: block_axes gave axis {axis!r} for leaf {name} of shape {shape}; "
                       f"axes must be ints in [{-ndim}, {ndim})")
    normalized.append(axis % ndim)
  if len(set(normalized)) != len(normalized):
    raise ValueError(f"{where}: block_axes gave repeated axes {tuple(axes)} for leaf {name}")
  return tuple(sorted(normalized))


def _reduced_axes(kept: tuple[int, ...], ndim: int) -> tuple[int, ...]:
  return tuple(a for a in range(ndim) if a not in kept)


def blocks_by_path(
    rules: Mapping[str, Sequence[int] | str | None], default: Sequence[int] | str | None = None
) -> BlockAxes:
  """A ``block_axes`` rule from regular expressions on the leaf's path.

  The first pattern that ``re.search``-matches ``jax.tree_util.keystr(path)``
  gives the kept axes; ``default`` applies when none matches.

  Args:
    rules: ``{pattern: kept axes}``; kept axes are a sequence of ints, ``None``
      (one scalar for the whole leaf) or ``"all"`` (one per coordinate: Adam).
    default: the kept axes of leaves no pattern matches (``None``: one per leaf).

  Returns:
    A callable ``(path, shape) -> kept axes`` for ``block_axes``.

  Example:
    >>> import jax, jax.numpy as jnp
    >>> from optlab.optim.adam_mini import adam_mini, blocks_by_path
    >>> rule = blocks_by_path({"embed": (0,), r"query|key": (1,)})
    >>> tx = adam_mini(1e-3, block_axes=rule)
    >>> state = tx.init({"embed": jnp.zeros((10, 4)), "mlp": jnp.zeros((4, 4))})
    >>> [x.shape for x in jax.tree.leaves(state[0].nu)]
    [(10, 1), (1, 1)]
  """
  compiled = [(re.compile(pattern), axes) for pattern, axes in rules.items()]

  def rule(path, shape):
    del shape
    name = jax.tree_util.keystr(path)
    for pattern, axes in compiled:
      if pattern.search(name):
        return axes
    return default

  return rule


class ScaleByAdamMiniState(NamedTuple):
  """State of :func:`scale_by_adam_mini`."""

  count: jax.Array  # int32 scalar
  mu: optax.Updates  # first moment m_t, one per coordinate
  nu: optax.Updates  # second moment v_b, one per block (kept axes; reduced axes have size 1)


def scale_by_adam_mini(
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    *,
    block_axes: BlockAxes | None = None,
) -> optax.GradientTransformation:
  r"""Adam-mini's direction: Adam with one second moment per parameter block.

  For each block b of coordinates:

  .. math::
     m_t = β_1 m_{t-1} + (1−β_1) g_t, \quad
     v_{b,t} = β_2 v_{b,t-1} + (1−β_2)\, \mathrm{mean}_{i∈b}(g_{t,i}^2), \quad
     d_{t,i} = \frac{m_{t,i}/(1−β_1^t)}{\sqrt{v_{b(i),t}/(1−β_2^t)} + ε}

  By default every leaf is one block (the official code's rule for every layer
  except embeddings, output, query and key). ``block_axes(path, shape)`` gives
  the *kept* axes of a leaf: one v per index along them, the mean taken over
  the other axes. ``(0,)`` is one v per row (embeddings, the paper's rule for the
  output layer in PyTorch's ``(vocab, dim)`` layout); ``(1,)`` for an
  ``nnx.MultiHeadAttention`` query/key kernel of shape ``(in, heads, head_dim)``
  is one v per head (the paper's rule for Q and K); ``"all"`` is one v per
  coordinate (plain Adam, the official code's choice for embedding and output
  layers). :func:`blocks_by_path` builds a rule from path patterns.

  The block second moments are stored in float32 (float64 for float64 params):
  they are few, and in bfloat16 ``β₂ v`` would round back to ``v``.

  Args:
    b1: β₁ in [0, 1).
    b2: β₂ in [0, 1).
    eps: ε ≥ 0, outside the root.
    block_axes: None (one block per leaf) or ``(path, shape) -> kept axes``
      (a sequence of ints, ``None`` or ``"all"``).

  Returns:
    An ``optax.GradientTransformation``.
  """
  where = "scale_by_adam_mini"
  check_adam_hyperparameters(where, b1, b2, eps)
  if block_axes is not None and not callable(block_axes):
    raise TypeError(f"{where}: block_axes must be None or a callable (path, shape) -> kept axes "
                    f"(see blocks_by_path), got {type(block_axes).__name__}")

  def reduced_axes(path, x):
    return _reduced_axes(_kept_axes(where, block_axes, path, x.shape), x.ndim)

  def init_fn(params):
    v.check_float_tree(where, params)

    def block_zeros(path, p):
      reduced = reduced_axes(path, p)
      shape = tuple(1 if a in reduced else n for a, n in enumerate(p.shape))
      return jnp.zeros(shape, jnp.promote_types(p.dtype, jnp.float32))

    nu = jax.tree_util.tree_map_with_path(block_zeros, params)
    return ScaleByAdamMiniState(count=jnp.zeros([], jnp.int32), mu=c.zeros_like(params), nu=nu)

  def update_fn(updates, state, params=None):
    del params
    v.check_same_structure(where, updates, state.mu, "first-moment buffer")
    def new_block_moment(path, g, n):
      if n.ndim != g.ndim:
        raise ValueError(f"{where}: the second-moment buffer of leaf {jax.tree_util.keystr(path)} "
                         f"has shape {n.shape}, which does not match the updates {g.shape}")
      g = g.astype(n.dtype)
      return b2 * n + (1 - b2) * jnp.mean(g * g, axis=reduced_axes(path, g), keepdims=True)

    mu = jax.tree.map(lambda m, g: b1 * m + (1 - b1) * g, state.mu, updates)
    nu = jax.tree_util.tree_map_with_path(new_block_moment, updates, state.nu)
    count = optax.safe_increment(state.count)
    mu_hat = c.bias_correction(mu, b1, count)
    nu_hat = c.bias_correction(nu, b2, count)
    new_updates = jax.tree.map(
        lambda m, n: c.divide(m.astype(n.dtype), jnp.sqrt(n) + eps), mu_hat, nu_hat
    )
    return c.cast_like(new_updates, updates), ScaleByAdamMiniState(
        count=count, mu=c.cast_like(mu, state.mu), nu=c.cast_like(nu, state.nu)
    )

  return optax.GradientTransformation(init_fn, update_fn)


def adam_mini(
    learning_rate: optax.ScalarOrSchedule = 0.001,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    *,
    block_axes: BlockAxes | None = None,
    decay_convention: DecayConvention = "lr",
    mask: Any | Callable[[optax.Params], Any] | None = None,
) -> optax.GradientTransformation:
  r"""Adam-mini: Adam with one learning rate (second moment) per parameter block.

  Algorithm 1 of the paper, for each block b (coordinates i ∈ b):

  .. math::
     m_t = β_1 m_{t-1} + (1−β_1) g_t, \quad
     v_{b,t} = β_2 v_{b,t-1} + (1−β_2)\, \mathrm{mean}_{i∈b}(g_{t,i}^2), \\
     θ_{t+1} = θ_t − α_t \left(\frac{m_t/(1−β_1^t)}{\sqrt{v_{b,t}/(1−β_2^t)} + ε} + λ θ_t\right)

  The weight decay is multiplied by the learning rate as in the official code
  (PyTorch's AdamW, ``decay_convention="lr"``); ``"paper"`` is Loshchilov &
  Hutter's :math:`θ_{t+1} = θ_t − α_t d_t − λ θ_t`. Blocks: one per leaf by
  default; see :func:`scale_by_adam_mini` for ``block_axes`` (per row, per head,
  per coordinate) and :func:`blocks_by_path`. The state holds one first moment
  per coordinate and one second moment per block: about half of Adam's memory.

  Args:
    learning_rate: α ≥ 0, a number or a schedule.
    b1: β₁ in [0, 1).
    b2: β₂ in [0, 1).
    eps: ε ≥ 0.
    weight_decay: λ ≥ 0.
    block_axes: None (one block per leaf) or ``(path, shape) -> kept axes``.
    decay_convention: ``"lr"`` (the default, the paper's code) or ``"paper"``.
    mask: where the decay applies (a tree of booleans or a function of the params).

  Returns:
    An ``optax.GradientTransformation``.

  Example:
    >>> import jax.numpy as jnp, optax
    >>> from optlab.optim.adam_mini import adam_mini
    >>> tx = adam_mini(1e-3, weight_decay=0.1)
    >>> params = {"w": jnp.ones((3, 2)), "b": jnp.zeros(2)}
    >>> state = tx.init(params)
    >>> updates, state = tx.update(params, state, params)

  References:
    Y. Zhang, C. Chen, Z. Li, T. Ding, C. Wu, D. P. Kingma, Y. Ye, Z.-Q. Luo,
    R. Sun, "Adam-mini: Use Fewer Learning Rates To Gain More", arXiv:2406.16793, 2024.
  """
  where = "adam_mini"
  v.check_learning_rate(where, learning_rate)
  return optax.chain(
      scale_by_adam_mini(b1, b2, eps, block_axes=block_axes),
      weight_decay_and_learning_rate(learning_rate, weight_decay, decay_convention, mask,
                                     where=where),
  )
