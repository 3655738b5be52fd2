"""Shampoo (Gupta, Koren & Singer, 2018), in the practical form of Anil et al. (2020)."""

from __future__ import annotations

import functools
import math
import string
from typing import Any, Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from optlab.optim import _common as c
from optlab.optim import _validation as v
from optlab.optim._matrix_functions import ROOT_METHODS, RootMethod, inverse_pth_root
from optlab.optim.adamw import add_weight_decay

Graft = Literal["adam", "sgd", "none"]
GRAFTS = ("adam", "sgd", "none")
HIGHEST = jax.lax.Precision.HIGHEST


def check_integer(where: str, name: str, value: Any, minimum: int) -> None:
  """Structural arguments (sizes, frequencies) are Python integers ≥ `minimum`."""
  if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
    raise TypeError(f"{where}: {name} must be an integer ≥ {minimum}, got {value!r}")
  if value < minimum:
    raise ValueError(f"{where}: {name} must be an integer ≥ {minimum}, got {value!r}")


def working_dtype(x: Any) -> jnp.dtype:
  """float32, or the wider dtype of `x` (float64 stays float64)."""
  return jnp.promote_types(jnp.result_type(x), jnp.float32)


def weight_decay_term(weight_decay: Any) -> optax.GradientTransformation:
  """``u ← u + λθ`` (before the learning rate), skipped when λ is the number 0.

  When λ is a plain 0 the transform is the identity, so ``update`` does not need
  the parameters; an injected λ (an array) always adds λθ.
  """
  if isinstance(weight_decay, (int, float)) and weight_decay == 0:
    return optax.identity()
  return add_weight_decay(weight_decay)


class _Layout(NamedTuple):
  """How a parameter is cut into blocks; `None` layouts are graft-only (diagonal)."""

  shape: tuple[int, ...]
  preconditioned: tuple[bool, ...]  # per axis: has a statistic
  sizes: tuple[int, ...]  # per axis: side of a block (the whole axis if not preconditioned)
  counts: tuple[int, ...]  # per axis: number of blocks

  @property
  def num_blocks(self) -> int:
    return math.prod(self.counts)

  @property
  def order(self) -> int:
    return sum(self.preconditioned)

  def axes(self) -> list[int]:
    return [d for d, p in enumerate(self.preconditioned) if p]


def _layout(shape, block_size, max_dim, precondition_1d) -> _Layout | None:
  shape = tuple(int(n) for n in shape)
  if len(shape) == 0 or 0 in shape or (len(shape) == 1 and not precondition_1d):
    return None
  preconditioned = tuple(n <= max_dim for n in shape)
  if not any(preconditioned):
    return None
  sizes = tuple(min(n, block_size) if p else n for n, p in zip(shape, preconditioned, strict=True))
  counts = tuple(-(-n // s) for n, s in zip(shape, sizes, strict=True))
  return _Layout(shape, preconditioned, sizes, counts)


def _to_blocks(x: jax.Array, layout: _Layout) -> jax.Array:
  """(n_1, …, n_k) → (blocks, s_1, …, s_k), zero-padding each axis to counts·sizes."""
  k = len(layout.shape)
  pad = [(0, c_ * s - n) for n, s, c_ in zip(layout.shape, layout.sizes, layout.counts,
                                              strict=True)]
  x = jnp.pad(x, pad) if any(p for _, p in pad) else x
  x = x.reshape([d for c_, s in zip(layout.counts, layout.sizes, strict=True) for d in (c_, s)])
  x = x.transpose([*range(0, 2 * k, 2), *range(1, 2 * k, 2)])
  return x.reshape((layout.num_blocks, *layout.sizes))


def _from_blocks(blocks: jax.Array, layout: _Layout) -> jax.Array:
  k = len(layout.shape)
  x = blocks.reshape(layout.counts + layout.sizes)
  x = x.transpose([a for d in range(k) for a in (d, k + d)])
  x = x.reshape([c_ * s for c_, s in zip(layout.counts, layout.sizes, strict=True)])
  return x[tuple(slice(0, n) for n in layout.shape)]


def _letters(k: int) -> str:
  return string.ascii_lowercase[:k]


def _outer(blocks: jax.Array, axis: int) -> jax.Array:
  """Per block, the contraction of G with itself over every axis but `axis`: (blocks, s, s)."""
  letters = _letters(blocks.ndim - 1)
  other = letters.replace(letters[axis], "Y")
  return jnp.einsum(f"z{letters},z{other}->z{letters[axis]}Y", blocks, blocks, precision=HIGHEST)


def _apply(blocks: jax.Array, matrices: jax.Array, axis: int) -> jax.Array:
  """Per block, multiplies `axis` of G by a (s, s) matrix: G ×_axis P."""
  letters = _letters(blocks.ndim - 1)
  other = letters.replace(letters[axis], "Y")
  return jnp.einsum(f"z{other},z{letters[axis]}Y->z{letters}", blocks, matrices, precision=HIGHEST)


def _unit_per_block(blocks: jax.Array) -> jax.Array:
  """Each block divided by its Frobenius norm (0 stays 0), without overflow."""
  axes = tuple(range(1, blocks.ndim))
  scale = jnp.max(jnp.abs(blocks), axis=axes, keepdims=True)
  blocks = blocks / jnp.where(scale > 0, scale, 1.0)
  norm = jnp.sqrt(jnp.sum(blocks * blocks, axis=axes, keepdims=True))
  return blocks / jnp.where(norm > 0, norm, 1.0)


def _norm_per_block(blocks: jax.Array) -> jax.Array:
  axes = tuple(range(1, blocks.ndim))
  return jnp.sqrt(jnp.sum(blocks * blocks, axis=axes, keepdims=True))


class ScaleByShampooState(NamedTuple):
  """State of :func:`scale_by_shampoo` (every buffer in float32, or float64 for float64 params)."""

  count: jax.Array  # int32 scalar, the number of steps taken
  mu: optax.Updates  # momentum of the final direction, like the params
  nu: optax.Updates  # second moment of the Adam/AdaGrad graft, like the params (None otherwise)
  stats: optax.Updates  # per leaf, one (blocks, s, s) statistic per preconditioned axis
  roots: optax.Updates  # per leaf, the inverse roots in use, shaped as `stats`


class _Config(NamedTuple):
  """The structural (static) arguments of :func:`scale_by_shampoo`."""

  block_size: int
  precondition_frequency: int
  start_preconditioning_step: int
  graft: str
  max_preconditioner_dim: int
  precondition_1d: bool
  relative_matrix_eps: bool
  root_method: str

  def layout(self, x) -> _Layout | None:
    return _layout(np.shape(x), self.block_size, self.max_preconditioner_dim,
                   self.precondition_1d)


def _compute_roots(stats, roots, layouts, matrix_eps, config: _Config):
  new = []
  for leaf_stats, leaf_roots, layout in zip(stats, roots, layouts, strict=True):
    if layout is None:
      new.append(())
      continue
    leaf_new = []
    for h, old in zip(leaf_stats, leaf_roots, strict=True):
      root = inverse_pth_root(h, 2 * layout.order, eps=matrix_eps,
                              relative=config.relative_matrix_eps,
                              method=config.root_method)
      finite = jnp.all(jnp.isfinite(root), axis=(-2, -1), keepdims=True)
      leaf_new.append(jnp.where(finite, root.astype(old.dtype), old))
    new.append(tuple(leaf_new))
  return new


@functools.partial(jax.jit, static_argnames="config")
def _shampoo_update(updates, state, b1, b2, eps, matrix_eps, config: _Config):
  """One step of :func:`scale_by_shampoo`, compiled once per shape and configuration.

  Compiling it as a whole keeps eager use fast (a `lax.cond` run eagerly would
  be traced again at every call); inside a caller's `jit` it is simply inlined.
  """
  treedef = jax.tree.structure(updates)
  grads = treedef.flatten_up_to(updates)
  layouts = [config.layout(g) for g in grads]
  t = state.count
  count = optax.safe_increment(t)

  dtype = jnp.result_type(jnp.float32, *[working_dtype(g) for g in grads])
  beta2 = jnp.asarray(b2, dtype)
  is_sum = beta2 == 1
  weight = jnp.where(is_sum, 1.0, 1.0 - beta2)
  g32 = [g.astype(working_dtype(g)) for g in grads]
  blocks = [None if lay is None else _to_blocks(g, lay) for g, lay in zip(g32, layouts,
                                                                            strict=True)]

  # Statistics, every step.
  stats = []
  for b, lay, old in zip(blocks, layouts, treedef.flatten_up_to(state.stats), strict=True):
    if lay is None:
      stats.append(())
      continue
    stats.append(tuple(
        (beta2 * h + weight * _outer(b, axis)).astype(h.dtype)
        for h, axis in zip(old, lay.axes(), strict=True)
    ))

  # Inverse roots, every f steps (only when they will be used).
  roots = treedef.flatten_up_to(state.roots)
  if any(lay is not None for lay in layouts):
    refresh = jnp.mod(t, config.precondition_frequency) == 0
    if config.start_preconditioning_step > config.precondition_frequency:
      refresh = refresh & (t + config.precondition_frequency > config.start_preconditioning_step)
    if config.precondition_frequency == 1 and config.start_preconditioning_step <= 1:
      roots = _compute_roots(stats, roots, layouts, matrix_eps, config)
    else:
      roots = jax.lax.cond(refresh, lambda s, r: _compute_roots(s, r, layouts, matrix_eps, config),
                           lambda s, r: list(r), stats, roots)

  # Graft direction.
  if config.graft == "adam":
    correction = jnp.where(is_sum, 1.0, 1.0 - beta2 ** count.astype(dtype))
    nu = [(beta2 * n + weight * g * g).astype(n.dtype)
          for n, g in zip(treedef.flatten_up_to(state.nu), g32, strict=True)]
    grafts = [g / (jnp.sqrt(n / correction) + eps) for g, n in zip(g32, nu, strict=True)]
  else:
    nu = None
    grafts = g32

  # Shampoo direction with the graft's norm, per block.
  preconditioning = t >= config.start_preconditioning_step
  directions = []
  for a, b, lay, leaf_roots in zip(grafts, blocks, layouts, roots, strict=True):
    if lay is None:
      directions.append(a)
      continue
    s = b
    for root, axis in zip(leaf_roots, lay.axes(), strict=True):
      s = _apply(s, root, axis)
    if config.graft == "none":
      grafted = s
    else:
      grafted = _unit_per_block(s) * _norm_per_block(_to_blocks(a, lay))
    grafted = _from_blocks(grafted, lay)
    if config.start_preconditioning_step == 0:
      directions.append(grafted)
    else:
      directions.append(jnp.where(preconditioning, grafted, a))

  # Momentum on the final direction.
  beta1 = jnp.asarray(b1, dtype)
  mu = [(beta1 * m + (1.0 - beta1) * d).astype(m.dtype)
        for m, d in zip(treedef.flatten_up_to(state.mu), directions, strict=True)]
  correction1 = 1.0 - beta1 ** count.astype(dtype)
  new_updates = [(m / correction1).astype(g.dtype) for m, g in zip(mu, grads, strict=True)]

  return treedef.unflatten(new_updates), ScaleByShampooState(
      count=count,
      mu=treedef.unflatten(mu),
      nu=None if nu is None else treedef.unflatten(nu),
      stats=treedef.unflatten(stats),
      roots=treedef.unflatten([tuple(r) for r in roots]),
  )


def scale_by_shampoo(
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    matrix_eps: float = 1e-6,
    *,
    block_size: int = 128,
    precondition_frequency: int = 10,
    start_preconditioning_step: int = 10,
    graft: Graft = "adam",
    max_preconditioner_dim: int = 4096,
    precondition_1d: bool = False,
    relative_matrix_eps: bool = True,
    root_method: RootMethod = "eigh",
) -> optax.GradientTransformation:
  r"""Shampoo's blocked, grafted, momentum direction (without the learning rate).

  At step t (0-based), for each block :math:`G` of a parameter of order k (one
  statistic per preconditioned axis i; for a matrix :math:`L = H_1, R = H_2`):

  .. math::
     H_i &← β_2 H_i + w\, G_{(i)} G_{(i)}^⊤ \quad (w = 1−β_2;\ w = 1 \text{ when } β_2 = 1) \\
     P_i &= (H_i + r I)^{-1/(2k)} \quad \text{recomputed when } t \bmod f = 0 \\
     S &= G ×_1 P_1 ×_2 ⋯ ×_k P_k \quad (\text{a matrix: } S = P_L\, G\, P_R) \\
     A &= g / (\sqrt{ν_t / (1−β_2^{t+1})} + ε), \quad ν_t = β_2 ν_{t−1} + w g^2
        \quad (\text{graft} = \text{adam}; \; A = g \text{ for sgd}) \\
     D &= \frac{\|A_{block}\|}{\|S\|} S \text{ if } t ≥ t_0, \text{ else } A \\
     m_t &= β_1 m_{t−1} + (1−β_1) D, \quad d_t = m_t / (1−β_1^{t+1})

  with the ridge :math:`r = ε_M λ_{max}(H_i)` (``relative_matrix_eps``) or
  :math:`r = ε_M`. :math:`G_{(i)}` is the unfolding of G along axis i.

  Conventions chosen (each documented, most one argument away):

  - **Blocking** (Anil et al. 2020): every preconditioned axis is cut into
    chunks of ``block_size`` (the last one shorter); each block has its own
    statistics, inverse roots and graft norm. Internally the last chunk is
    zero-padded, which leaves the result exactly that of the shorter block.
  - **Order**: k counts the preconditioned axes. Vectors (biases, norm
    scales) use the graft direction alone by default, as SOAP's reference code;
    ``precondition_1d=True`` gives them the paper's order-1 case, one full
    n × n statistic per block and exponent −1/2 (full-matrix AdaGrad per
    block; in float32 it needs ``matrix_eps`` ≳ 1e-4, see below). Axes longer
    than ``max_preconditioner_dim`` (embedding tables) get no statistic, and k
    counts only the others (one-sided Shampoo). Scalars, and leaves with no
    preconditioned axis, use the graft direction alone.
  - **Statistics** are updated every step; inverse roots every
    ``precondition_frequency`` steps (at t = 0, f, 2f, … from the statistics
    including g_t; a refresh whose roots would never be used before
    ``start_preconditioning_step`` is skipped). Until
    ``start_preconditioning_step`` the direction is the graft's.
  - **Grafting** (Agarwal et al. 2020): Shampoo's direction with the norm of
    Adam's (``graft="adam"``; with β₂ = 1 it is AdaGrad, as in Anil et al.) or
    of the gradient (``"sgd"``), per block. ``"none"`` is the paper's raw
    direction.
  - **Momentum** is an EMA of the final direction with bias correction, so the
    step size is that of the graft; β₁ = 0 turns it off.
  - **Robustness**: matrix work in float32 (or float64), see
    :mod:`optlab.optim._matrix_functions`; a refreshed root that is not finite
    is discarded and the previous one kept; grafting norms are computed
    without overflow and a zero Shampoo direction gives a zero step. In
    float32 the eigenvalues of a statistic carry rounding noise of about
    :math:`10^{-7}` to :math:`10^{-5}` of the largest; directions below the
    ridge are amplified by up to :math:`ε_M^{-1/(2k)}`, so with a small ε_M a
    one-ulp change (jit versus eager) can move the update by a fraction of a
    percent. Raise ``matrix_eps`` when bitwise-stable runs matter.

  The paper's Algorithm (Gupta et al., Alg. 1/2, with :math:`L_0 = εI`) is
  ``b1=0, b2=1, graft="none", precondition_frequency=1,
  start_preconditioning_step=0, relative_matrix_eps=False, precondition_1d=True``
  with a ``block_size`` at least the largest dimension.

  Args:
    b1: β₁ in [0, 1), momentum of the final direction.
    b2: β₂ in [0, 1]: EMA of the statistics and the Adam graft; 1 sums them
      (the paper; AdaGrad grafting).
    eps: ε > 0 of the Adam graft (outside the root).
    matrix_eps: ε_M > 0, the ridge added before inverse roots.
    block_size: largest side of a block, ≥ 1.
    precondition_frequency: f ≥ 1, steps between inverse-root computations.
    start_preconditioning_step: t₀ ≥ 0, steps that use the graft direction alone.
    graft: ``"adam"``, ``"sgd"`` or ``"none"``.
    max_preconditioner_dim: axes longer than this are not preconditioned.
    precondition_1d: precondition vectors with a full (blocked) statistic;
      False gives them the graft direction.
    relative_matrix_eps: scale ε_M by the largest eigenvalue of each statistic.
    root_method: ``"eigh"`` or ``"newton"`` (coupled Newton iteration).

  Returns:
    An ``optax.GradientTransformation``.
  """
  where = "scale_by_shampoo"
  _check_shampoo(where, b1, b2, eps, matrix_eps, block_size, precondition_frequency,
                 start_preconditioning_step, graft, max_preconditioner_dim, root_method)

  config = _Config(block_size, precondition_frequency, start_preconditioning_step, graft,
                   max_preconditioner_dim, precondition_1d, relative_matrix_eps, root_method)

  def init_fn(params):
    v.check_float_tree(where, params)

    def zeros(p):
      return jnp.zeros(jnp.shape(p), working_dtype(p))

    def statistics(p, make):
      layout = config.layout(p)
      if layout is None:
        return ()
      return tuple(make(layout.num_blocks, layout.sizes[d], working_dtype(p))
                   for d in layout.axes())

    zero_stats = lambda b, s, dt: jnp.zeros((b, s, s), dt)  # noqa: E731
    eye_stats = lambda b, s, dt: jnp.broadcast_to(jnp.eye(s, dtype=dt), (b, s, s))  # noqa: E731
    return ScaleByShampooState(
        count=jnp.zeros([], jnp.int32),
        mu=jax.tree.map(zeros, params),
        nu=jax.tree.map(zeros, params) if graft == "adam" else None,
        stats=jax.tree.map(lambda p: statistics(p, zero_stats), params),
        roots=jax.tree.map(lambda p: statistics(p, eye_stats), params),
    )

  def update_fn(updates, state, params=None):
    del params
    v.check_same_structure(where, updates, state.mu, "momentum buffer")
    return _shampoo_update(updates, state, b1, b2, eps, matrix_eps, config=config)

  return optax.GradientTransformation(init_fn, update_fn)


def _check_shampoo(where, b1, b2, eps, matrix_eps, block_size, precondition_frequency,
                   start_preconditioning_step, graft, max_preconditioner_dim, root_method):
  v.check_decay(where, "b1", b1)
  v.check_range(where, "b2", b2, 0.0, 1.0)
  v.check_positive(where, "eps", eps)
  v.check_positive(where, "matrix_eps", matrix_eps)
  check_integer(where, "block_size", block_size, 1)
  check_integer(where, "precondition_frequency", precondition_frequency, 1)
  check_integer(where, "start_preconditioning_step", start_preconditioning_step, 0)
  check_integer(where, "max_preconditioner_dim", max_preconditioner_dim, 1)
  v.check_choice(where, "graft", graft, GRAFTS)
  v.check_choice(where, "root_method", root_method, ROOT_METHODS)


def shampoo(
    learning_rate: optax.ScalarOrSchedule = 1e-3,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    matrix_eps: float = 1e-6,
    weight_decay: float = 0.0,
    *,
    block_size: int = 128,
    precondition_frequency: int = 10,
    start_preconditioning_step: int = 10,
    graft: Graft = "adam",
    max_preconditioner_dim: int = 4096,
    precondition_1d: bool = False,
    relative_matrix_eps: bool = True,
    root_method: RootMethod = "eigh",
) -> optax.GradientTransformation:
  r"""Shampoo: Kronecker-factored preconditioning, blocked and grafted.

  For a matrix parameter W with gradient G (Gupta et al. 2018, Algorithm 1):

  .. math::
     L_t = L_{t−1} + G_t G_t^⊤, \quad R_t = R_{t−1} + G_t^⊤ G_t, \quad
     W_{t+1} = W_t − η\, L_t^{−1/4} G_t R_t^{−1/4}

  and for a tensor of order k, one statistic per axis and exponent −1/(2k)
  (Algorithm 2). The practical version of Anil et al. (2020) used here adds
  exponential moving averages (β₂), blocking of large layers, inverse roots
  recomputed every ``precondition_frequency`` steps, a delay before
  preconditioning, learning-rate grafting (Adam or SGD norm per block) and
  momentum; see :func:`scale_by_shampoo` for the exact rule and how to recover
  the paper's. Weight decay is decoupled and multiplied by the learning rate
  (the ``torch.optim.AdamW`` form): :math:`W ← W − η(d_t + λW)`.

  Args:
    learning_rate: η ≥ 0, a number or a schedule.
    b1: β₁ in [0, 1), momentum.
    b2: β₂ in [0, 1]; 1 accumulates sums, as the paper.
    eps: ε > 0 of the Adam graft.
    matrix_eps: ε_M > 0, ridge of the inverse roots (relative to λ_max by default).
    weight_decay: λ ≥ 0 (``update`` then needs ``params`` unless λ is the number 0).
    block_size: largest side of a preconditioned block.
    precondition_frequency: steps between inverse-root computations.
    start_preconditioning_step: steps that use the graft direction alone.
    graft: ``"adam"``, ``"sgd"`` or ``"none"``.
    max_preconditioner_dim: axes longer than this are not preconditioned.
    precondition_1d: precondition vectors with a full (blocked) statistic.
    relative_matrix_eps: scale ε_M by the largest eigenvalue.
    root_method: ``"eigh"`` or ``"newton"``.

  Returns:
    An ``optax.GradientTransformation``.

  Example:
    >>> import jax.numpy as jnp, optlab
    >>> from optlab.optim.shampoo import shampoo
    >>> tx = shampoo(1e-3, block_size=64)
    >>> params = {"w": jnp.ones((100, 30)), "b": jnp.zeros(30)}
    >>> updates, state = tx.update(params, tx.init(params))

  References:
    V. Gupta, T. Koren, Y. Singer, "Shampoo: Preconditioned Stochastic Tensor
    Optimization", ICML 2018; R. Anil, V. Gupta, T. Koren, K. Regan, Y. Singer,
    "Scalable Second Order Optimization for Deep Learning", arXiv:2002.09018,
    2020; N. Agarwal, R. Anil, E. Hazan, T. Koren, C. Zhang, "Disentangling
    Adaptive Gradient Methods from Learning Rates", arXiv:2002.11803, 2020.
  """
  v.check_learning_rate("shampoo", learning_rate)
  v.check_non_negative("shampoo", "weight_decay", weight_decay)
  return optax.chain(
      scale_by_shampoo(
          b1, b2, eps, matrix_eps,
          block_size=block_size,
          precondition_frequency=precondition_frequency,
          start_preconditioning_step=start_preconditioning_step,
          graft=graft,
          max_preconditioner_dim=max_preconditioner_dim,
          precondition_1d=precondition_1d,
          relative_matrix_eps=relative_matrix_eps,
          root_method=root_method,
      ),
      weight_decay_term(weight_decay),
      c.scale_by_learning_rate(learning_rate),
  )

