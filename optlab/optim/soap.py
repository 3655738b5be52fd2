"""SOAP: Adam in the eigenbasis of Shampoo's preconditioner (Vyas et al., 2024)."""

from __future__ import annotations

import functools
import string
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from optlab.optim import _common as c
from optlab.optim import _validation as v
from optlab.optim._matrix_functions import eigenbasis, refresh_eigenbasis
from optlab.optim.shampoo import check_integer, working_dtype

HIGHEST = jax.lax.Precision.HIGHEST


class ScaleBySoapState(NamedTuple):
  """State of :func:`scale_by_soap` (every buffer in float32, or float64 for float64 params)."""

  count: jax.Array  # int32 scalar, the number of calls (the first only sets up the bases)
  mu: optax.Updates  # first moment M, in the original coordinates
  nu: optax.Updates  # second moment V, in the rotated coordinates
  stats: optax.Updates  # per leaf, one (n, n) statistic (L, R, …) per rotated axis
  bases: optax.Updates  # per leaf, the eigenbases (Q_L, Q_R, …), shaped as `stats`


def _rotated_axes(shape, max_precond_dim: int, precondition_1d: bool) -> tuple[int, ...]:
  if len(shape) == 0 or (len(shape) == 1 and not precondition_1d):
    return ()
  return tuple(d for d, n in enumerate(shape) if 0 < n <= max_precond_dim)


def _letters(k: int) -> str:
  return string.ascii_lowercase[:k]


def _outer(g: jax.Array, axis: int) -> jax.Array:
  """The contraction of g with itself over every axis but `axis` (G Gᵀ for axis 0)."""
  letters = _letters(g.ndim)
  other = letters.replace(letters[axis], "Y")
  return jnp.einsum(f"{letters},{other}->{letters[axis]}Y", g, g, precision=HIGHEST)


def _rotate(x: jax.Array, bases, axes, *, back: bool = False) -> jax.Array:
  """x ×_axis Qᵀ for every rotated axis (Q_Lᵀ X Q_R), or x ×_axis Q with ``back``."""
  letters = _letters(x.ndim)
  for basis, axis in zip(bases, axes, strict=True):
    other = letters.replace(letters[axis], "Y")
    spec = f"{letters[axis]}Y" if back else f"Y{letters[axis]}"
    x = jnp.einsum(f"{other},{spec}->{letters}", x, basis, precision=HIGHEST)
  return x


class _Config(NamedTuple):
  """The structural (static) arguments of :func:`scale_by_soap`."""

  precondition_frequency: int
  max_precond_dim: int
  precondition_1d: bool

  def axes(self, x) -> tuple[int, ...]:
    return _rotated_axes(np.shape(x), self.max_precond_dim, self.precondition_1d)


@functools.partial(jax.jit, static_argnames="config")
def _soap_update(updates, state, params, b1, b2, shampoo_beta, eps, weight_decay,
                 config: _Config):
  """One step of :func:`scale_by_soap` (`params` is None without weight decay).

  Compiled as a whole so that eager use does not trace the `lax.switch` again
  at every call; inside a caller's `jit` it is simply inlined.
  """
  treedef = jax.tree.structure(updates)
  grads = treedef.flatten_up_to(updates)
  axes = [config.axes(g) for g in grads]
  g32 = [g.astype(working_dtype(g)) for g in grads]
  dtype = jnp.result_type(jnp.float32, *g32)
  t = state.count
  first = t == 0
  steps = jnp.maximum(t, 1).astype(dtype)  # s, the Adam step (guarded at the first call)
  beta1, beta2 = jnp.asarray(b1, dtype), jnp.asarray(b2, dtype)
  beta_s = jnp.asarray(shampoo_beta, dtype)
  scale = jnp.sqrt(1.0 - beta2**steps) / (1.0 - beta1**steps)

  old_mu = treedef.flatten_up_to(state.mu)
  old_nu = treedef.flatten_up_to(state.nu)
  old_stats = treedef.flatten_up_to(state.stats)
  old_bases = treedef.flatten_up_to(state.bases)
  leaf_params = [None] * len(grads) if params is None else treedef.flatten_up_to(params)

  mu, nu, directions, stats = [], [], [], []
  for g, m, n, h, q, ax, p in zip(g32, old_mu, old_nu, old_stats, old_bases, axes,
                                  leaf_params, strict=True):
    new_m = beta1 * m + (1.0 - beta1) * g
    new_n = beta2 * n + (1.0 - beta2) * jnp.square(_rotate(g, q, ax))
    normalized = _rotate(new_m, q, ax) / (jnp.sqrt(new_n) + eps)
    d = scale * _rotate(normalized, q, ax, back=True)
    if p is not None:
      d = d + weight_decay * p.astype(d.dtype)
    mu.append(jnp.where(first, m, new_m).astype(m.dtype))
    nu.append(jnp.where(first, n, new_n).astype(n.dtype))
    directions.append(jnp.where(first, jnp.zeros_like(d), d))
    stats.append(tuple((beta_s * hh + (1.0 - beta_s) * _outer(g, a)).astype(hh.dtype)
                       for hh, a in zip(h, ax, strict=True)))

  bases = old_bases
  if any(axes):

    def initial(stats, bases, nu):
      del bases
      return [tuple(eigenbasis(h).astype(h.dtype) for h in leaf) for leaf in stats], nu

    def refresh(stats, bases, nu):
      new_bases, new_nu = [], []
      for leaf_stats, leaf_bases, n, ax in zip(stats, bases, nu, axes, strict=True):
        leaf_new = []
        for h, q, a in zip(leaf_stats, leaf_bases, ax, strict=True):
          new_q, order = refresh_eigenbasis(h, q)
          leaf_new.append(new_q.astype(q.dtype))
          n = jnp.take(n, order, axis=a)
        new_bases.append(tuple(leaf_new))
        new_nu.append(n)
      return new_bases, new_nu

    def keep(stats, bases, nu):
      del stats
      return list(bases), nu

    refreshing = (t > 0) & (jnp.mod(t, config.precondition_frequency) == 0)
    branch = jnp.where(first, 0, jnp.where(refreshing, 1, 2))
    bases, nu = jax.lax.switch(branch, (initial, refresh, keep), stats, old_bases, nu)

  new_updates = [d.astype(g.dtype) for d, g in zip(directions, grads, strict=True)]
  return treedef.unflatten(new_updates), ScaleBySoapState(
      count=optax.safe_increment(t),
      mu=treedef.unflatten(mu),
      nu=treedef.unflatten(nu),
      stats=treedef.unflatten(stats),
      bases=treedef.unflatten([tuple(b) for b in bases]),
  )


def scale_by_soap(
    b1: float = 0.95,
    b2: float = 0.95,
    shampoo_beta: float | None = None,
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    *,
    precondition_frequency: int = 10,
    max_precond_dim: int = 10000,
    precondition_1d: bool = False,
) -> optax.GradientTransformation:
  r"""SOAP's direction: Adam run in the eigenbasis of Shampoo's statistics.

  For a matrix gradient :math:`G_t` (the same per axis for tensors), with
  eigenbases :math:`Q_L, Q_R` of Shampoo's statistics L, R (Vyas et al. 2024,
  Algorithm 3):

  .. math::
     G' &= Q_L^⊤ G_t Q_R, \quad M_t = β_1 M_{t−1} + (1−β_1) G_t, \quad
     M' = Q_L^⊤ M_t Q_R \\
     V_t &= β_2 V_{t−1} + (1−β_2)\, G' ⊙ G', \quad
     N' = \frac{M'}{\sqrt{V_t} + ε}, \quad
     d_t = \frac{\sqrt{1−β_2^s}}{1−β_1^s}\, Q_L N' Q_R^⊤ + λ W_t \\
     L &← β_s L + (1−β_s) G_t G_t^⊤, \quad R ← β_s R + (1−β_s) G_t^⊤ G_t, \quad
     Q_L, Q_R ← \mathrm{Eigenvectors}(L, Q_L), (R, Q_R) \text{ if } s \bmod f = 0

  What this implements, precisely (it follows the authors' reference code):

  - **First call** (count 0): L, R ← (1−β_s)·(G Gᵀ, GᵀG), and the bases are
    their exact eigenvectors (``eigh``, largest eigenvalue first). The update
    is zero and M, V are untouched, so that the gradient that built a basis is
    never projected onto it (the reference code skips this step).
  - **Then** the s-th Adam step (s = count ≥ 1) is as above: the first moment
    M is kept in the original coordinates and rotated with the current bases
    at each step (the reference code stores it rotated and re-projects it when
    the basis changes, which is the same); V lives in the rotated coordinates.
    Bias correction and ε follow the reference code (ε added to the
    uncorrected root, the step scaled by :math:`\sqrt{1−β_2^s}/(1−β_1^s)`).
  - **Statistics** are updated after the step with the same gradient, every
    step. When s is a multiple of f the bases are refreshed by one step of
    power iteration and a QR factorization (Algorithm 4), after sorting the
    columns by their estimated eigenvalue; V is permuted by the same sort along
    each axis and otherwise not re-projected (as the reference code).
  - Axes longer than ``max_precond_dim`` are not rotated (identity basis).
    Vectors are not rotated unless ``precondition_1d`` (then a full n × n
    statistic); scalars never: for them SOAP is Adam.
  - **Weight decay** λ is decoupled and multiplied by the learning rate, and
    skipped on the first call. (The reference code decays the already-updated
    parameters, :math:`W ← (W − η u)(1 − ηλ)`; this is :math:`W − η(u + λW)`,
    which differs by :math:`η^2 λ u`.)

  The sign of each basis vector is arbitrary (QR and ``eigh`` may choose
  either); the direction does not depend on it.

  Args:
    b1: β₁ in [0, 1).
    b2: β₂ in [0, 1).
    shampoo_beta: β_s in [0, 1), the EMA of L and R; None uses β₂ (the reference code).
    eps: ε > 0.
    weight_decay: λ ≥ 0 (``update`` then needs ``params`` unless λ is the number 0).
    precondition_frequency: f ≥ 1, Adam steps between basis refreshes.
    max_precond_dim: axes longer than this are not rotated.
    precondition_1d: rotate vectors too.

  Returns:
    An ``optax.GradientTransformation``.
  """
  where = "scale_by_soap"
  _check_soap(where, b1, b2, shampoo_beta, eps, weight_decay, precondition_frequency,
              max_precond_dim)
  beta_s_value = b2 if shampoo_beta is None else shampoo_beta
  no_decay = isinstance(weight_decay, (int, float)) and weight_decay == 0

  config = _Config(precondition_frequency, max_precond_dim, precondition_1d)
  axes_of = config.axes

  def init_fn(params):
    v.check_float_tree(where, params)

    def zeros(p):
      return jnp.zeros(jnp.shape(p), working_dtype(p))

    def matrices(p, make):
      return tuple(make(jnp.shape(p)[d], working_dtype(p)) for d in axes_of(p))

    return ScaleBySoapState(
        count=jnp.zeros([], jnp.int32),
        mu=jax.tree.map(zeros, params),
        nu=jax.tree.map(zeros, params),
        stats=jax.tree.map(lambda p: matrices(p, lambda n, dt: jnp.zeros((n, n), dt)), params),
        bases=jax.tree.map(lambda p: matrices(p, lambda n, dt: jnp.eye(n, dtype=dt)), params),
    )

  def update_fn(updates, state, params=None):
    v.check_same_structure(where, updates, state.mu, "first-moment buffer")
    if not no_decay:
      if params is None:
        raise ValueError(f"{where}: weight decay needs the parameters: call update(updates, "
                         "state, params)")
      v.check_same_structure(where, updates, params, "params")
    return _soap_update(updates, state, None if no_decay else params, b1, b2, beta_s_value, eps,
                        weight_decay, config=config)

  return optax.GradientTransformation(init_fn, update_fn)


def _check_soap(where, b1, b2, shampoo_beta, eps, weight_decay, precondition_frequency,
                max_precond_dim):
  v.check_decay(where, "b1", b1)
  v.check_decay(where, "b2", b2)
  if shampoo_beta is not None:
    v.check_decay(where, "shampoo_beta", shampoo_beta)
  v.check_positive(where, "eps", eps)
  v.check_non_negative(where, "weight_decay", weight_decay)
  check_integer(where, "precondition_frequency", precondition_frequency, 1)
  check_integer(where, "max_precond_dim", max_precond_dim, 1)


def soap(
    learning_rate: optax.ScalarOrSchedule = 3e-3,
    b1: float = 0.95,
    b2: float = 0.95,
    shampoo_beta: float | None = None,
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    *,
    precondition_frequency: int = 10,
    max_precond_dim: int = 10000,
    precondition_1d: bool = False,
) -> optax.GradientTransformation:
  r"""SOAP: ShampoO with Adam in the Preconditioner's eigenbasis.

  .. math::
     G' = Q_L^⊤ G Q_R, \quad V_t = β_2 V_{t−1} + (1−β_2) G'^{⊙2}, \quad
     W_{t+1} = W_t − η \left(\frac{\sqrt{1−β_2^s}}{1−β_1^s}
       Q_L \frac{Q_L^⊤ M_t Q_R}{\sqrt{V_t}+ε} Q_R^⊤ + λ W_t\right)

  where :math:`Q_L, Q_R` are eigenbases of Shampoo's statistics
  :math:`L = \mathrm{EMA}_{β_s}(GG^⊤)`, :math:`R = \mathrm{EMA}_{β_s}(G^⊤G)`,
  refreshed every ``precondition_frequency`` steps by one power-iteration step
  and a QR factorization (``eigh`` the first time). The first call only builds
  the bases (a zero update), as the reference code. See
  :func:`scale_by_soap` for every detail. Defaults are the reference code's,
  except ``weight_decay`` (0 here, 0.01 there).

  Args:
    learning_rate: η ≥ 0, a number or a schedule.
    b1: β₁ in [0, 1).
    b2: β₂ in [0, 1).
    shampoo_beta: β_s in [0, 1) for L and R; None uses β₂.
    eps: ε > 0.
    weight_decay: λ ≥ 0, decoupled, multiplied by η.
    precondition_frequency: steps between basis refreshes.
    max_precond_dim: axes longer than this are not rotated.
    precondition_1d: rotate vectors too (else Adam).

  Returns:
    An ``optax.GradientTransformation``.

  Example:
    >>> import jax.numpy as jnp
    >>> from optlab.optim.soap import soap
    >>> tx = soap(3e-3, precondition_frequency=10)
    >>> params = {"w": jnp.ones((4, 3)), "b": jnp.zeros(3)}
    >>> updates, state = tx.update(params, tx.init(params))  # the first call is zero

  References:
    N. Vyas, D. Morwani, R. Zhao, I. Shapira, D. Brandfonbrener, L. Janson,
    S. Kakade, "SOAP: Improving and Stabilizing Shampoo using Adam",
    arXiv:2409.11321, 2024 (ICLR 2025).
  """
  v.check_learning_rate("soap", learning_rate)
  return optax.chain(
      scale_by_soap(
          b1, b2, shampoo_beta, eps, weight_decay,
          precondition_frequency=precondition_frequency,
          max_precond_dim=max_precond_dim,
          precondition_1d=precondition_1d,
      ),
      c.scale_by_learning_rate(learning_rate),
  )

