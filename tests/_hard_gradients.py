"""Stability-test support shared by the Shampoo and SOAP tests (not collected by pytest)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax


def hard_gradients(rng, steps, shape=(6, 4)):
  """Ill-conditioned (κ = 1e8), rank-1, zero-row/column and all-zero matrix gradients."""
  m, n = shape
  u, _ = np.linalg.qr(rng.normal(size=(m, m)))
  v, _ = np.linalg.qr(rng.normal(size=(n, n)))
  out = []
  for t in range(steps):
    kind = t % 4
    if kind == 0:
      g = (u[:, :n] * np.geomspace(1.0, 1e-8, n)) @ v.T * (1.0 + 0.1 * rng.normal())
    elif kind == 1:
      g = np.outer(rng.normal(size=m), rng.normal(size=n))
    elif kind == 2:
      g = rng.normal(size=shape)
      g[1], g[:, 2] = 0.0, 0.0
    else:
      g = np.zeros(shape)
    out.append(g)
  return np.stack(out)


def run_scan(tx, params, gradients):
  """Applies `tx` over a stack of matrix gradients ({"w": g, "b": first row}) in one scan."""
  def body(carry, g):
    params, state = carry
    grads = {"w": g.astype(params["w"].dtype), "b": g[0].astype(params["b"].dtype)}
    updates, state = tx.update(grads, state, params)
    return (optax.apply_updates(params, updates), state), None

  (params, state), _ = jax.lax.scan(body, (params, tx.init(params)), gradients)
  return params, state


def assert_tree_finite(tree):
  for leaf in jax.tree.leaves(tree):
    assert bool(jnp.all(jnp.isfinite(jnp.asarray(leaf, jnp.float32)))), leaf
