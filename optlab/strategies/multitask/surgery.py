"""Gradient surgery over per-task gradients: PCGrad (Yu et al. 2020)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

Surgery = Callable[[Any, jax.Array], Any]

# ------------------------------------------------------------------------ gradient surgery


def task_gram(task_grads: Any) -> jax.Array:
  """The (T, T) Gram matrix ``G_ij = g_i · g_j`` of per-task gradients, summed over the
  leaves of a pytree whose leaves carry a leading task axis (float32)."""
  leaves = jax.tree.leaves(task_grads)
  if not leaves:
    raise ValueError("task_grads has no arrays")
  num = leaves[0].shape[0] if leaves[0].ndim else None
  if num is None or any(leaf.ndim == 0 or leaf.shape[0] != num for leaf in leaves):
    raise ValueError("every leaf of task_grads needs the same leading task axis; got "
                     f"shapes {[tuple(leaf.shape) for leaf in leaves]}")
  flat = [leaf.reshape(num, -1).astype(jnp.float32) for leaf in leaves]
  return sum(jnp.matmul(f, f.T, precision=jax.lax.Precision.HIGHEST) for f in flat)


def pcgrad_coefficients(gram: jax.Array, key: jax.Array) -> jax.Array:
  """PCGrad in the span of the task gradients: ``C`` (T, T) with ``g_i^PC = Σ_j C_ij g_j``.

  Every projection subtracts a multiple of an original g_j, so g_i^PC stays in their span
  and all of Algorithm 1's dot products follow from the Gram matrix:
  ``g_i^PC · g_j = (C G)_ij``. Task i's order is the argsort of row i of
  ``uniform(key, (T, T))``.
  """
  num = gram.shape[0]
  eye = jnp.eye(num, dtype=jnp.float32)

  def one(i, order):
    c = eye[i]
    for k in range(num):  # T is small and static: unrolled
      j = order[k]
      dot = jnp.dot(c, gram[:, j])
      gjj = gram[j, j]
      conflict = (dot < 0) & (j != i)
      c = c - jnp.where(conflict, dot / jnp.where(gjj > 0, gjj, 1.0), 0.0) * eye[j]
    return c

  orders = jnp.argsort(jax.random.uniform(key, (num, num)), axis=1)
  return jax.vmap(one)(jnp.arange(num), orders)


def _combine(coefficients: jax.Array, task_grads: Any) -> Any:
  return jax.tree.map(
      lambda g: jnp.tensordot(coefficients, g.astype(jnp.float32), axes=(-1, 0),
                              precision=jax.lax.Precision.HIGHEST).astype(g.dtype), task_grads)


def pcgrad_project(task_grads: Any, key: jax.Array) -> Any:
  """PCGrad's projected per-task gradients (Yu et al. 2020, Algorithm 1).

  For each task i, ``g_i^PC ← g_i``; then for each j ≠ i in a random order: if
  ``g_i^PC · g_j < 0``, ``g_i^PC ← g_i^PC − (g_i^PC · g_j / ‖g_j‖²) g_j`` (projection
  onto the normal plane of the *original* g_j). Dot products are over all leaves. The
  loop runs on T × T coefficients (:func:`pcgrad_coefficients`), then one contraction per
  leaf forms the gradients.

  Args:
    task_grads: a pytree whose leaves carry a leading task axis (T, ...).
    key: a PRNG key for the orders (task i's order is the argsort of row i of
      ``uniform(key, (T, T))``).

  Returns:
    The projected gradients, same structure as `task_grads`.

  Example:
    >>> import jax, jax.numpy as jnp
    >>> g = jnp.array([[1.0, 0.0], [-1.0, 1.0]])
    >>> pcgrad_project(g, jax.random.key(0)).tolist()
    [[0.5, 0.5], [0.0, 1.0]]

  Reference: T. Yu, S. Kumar, A. Gupta, S. Levine, K. Hausman, C. Finn, "Gradient
  Surgery for Multi-Task Learning", NeurIPS 2020.
  """
  return _combine(pcgrad_coefficients(task_gram(task_grads), key), task_grads)


def pcgrad(task_grads: Any, key: jax.Array, reduction: str = "sum") -> Any:
  """PCGrad (Yu et al. 2020): project conflicting per-task gradients, then combine them.

  ``Δθ = Σ_i g_i^PC`` (the paper; ``reduction="mean"`` divides by T, as some
  implementations do). See :func:`pcgrad_project` for the projection. Pass it as
  ``surgery=pcgrad`` to :func:`make_multitask_step` or :func:`fit_multitask`; the
  gradients it receives are the weighted ones, ``w_i ∇L_i``.

  Args:
    task_grads: a pytree whose leaves carry a leading task axis (T, ...).
    key: a PRNG key for the random orders.
    reduction: ``"sum"`` (default, the paper) or ``"mean"``.

  Returns:
    One gradient pytree (the task axis reduced).

  Example:
    >>> import jax, jax.numpy as jnp
    >>> pcgrad(jnp.array([[1.0, 0.0], [-1.0, 1.0]]), jax.random.key(0)).tolist()
    [0.5, 1.5]
  """
  if reduction not in ("sum", "mean"):
    raise ValueError(f"pcgrad: reduction must be 'sum' or 'mean', got {reduction!r}")
  coefficients = pcgrad_coefficients(task_gram(task_grads), key)
  total = jnp.sum(coefficients, axis=0)  # Σ_i g_i^PC = Σ_j (Σ_i C_ij) g_j
  if reduction == "mean":
    total = total / coefficients.shape[0]
  return _combine(total, task_grads)
