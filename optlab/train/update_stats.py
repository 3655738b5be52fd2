"""Per-layer size of each optimizer step: update-to-weight ratio and effective learning rate.

``fit(update_stats=True)`` records, per parameter leaf, ``‖Δθ‖/‖θ‖`` (the
update-to-weight ratio; Karpathy's rule of thumb is ~1e-3) and ``‖Δθ‖/‖g‖`` (the
effective learning rate: for SGD it is α, for adaptive methods it shows the step
the preconditioner actually takes), averaged over each epoch's steps.
:mod:`optlab.diagnostics.updates` plots them.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from optlab.train.paths import flatten_with_paths

UPDATE_RATIO = "update_ratio"
EFFECTIVE_LR = "effective_lr"


def update_statistic_names(params: Any, *, with_grads: bool = True) -> list[str]:
  """The keys :func:`update_statistics` returns for `params`, in order."""
  paths = flatten_with_paths(params)[0]
  kinds = (UPDATE_RATIO, EFFECTIVE_LR) if with_grads else (UPDATE_RATIO,)
  return [f"{kind}/{path}" for kind in kinds for path in paths]


def update_statistics(params: Any, updates: Any, grads: Any = None) -> dict[str, jax.Array]:
  """Per-layer size of an optimizer step: ``‖Δθ‖/‖θ‖`` and the effective learning rate ``‖Δθ‖/‖g‖``.

  For every parameter array ``l`` (a "layer" in the per-tensor sense of LARS:
  a kernel and its bias are reported separately), with ``θ_l`` the parameters
  *before* the step, ``Δθ_l`` the update applied and ``g_l`` the gradient:

    ``update_ratio/<path>  = ‖Δθ_l‖₂ / ‖θ_l‖₂``  (relative step size; ~1e-3 is the
    classic healthy range),
    ``effective_lr/<path> = ‖Δθ_l‖₂ / ‖g_l‖₂``  (the learning rate an SGD step of the
    same length would need: exactly ``lr`` for SGD, adaptive for Adam & co.).

  ``<path>`` is the parameter's path as :mod:`optlab.train.paths` names it
  (``"layers/0/kernel"``). A ratio whose denominator is zero (a zero-initialized
  bias, a zero gradient) is NaN: it is undefined, and epoch averages skip it.
  Norms are computed in float32. Jit-able; cheap (one reduction per leaf).

  Args:
    params: the parameters before the step (an ``nnx.State`` or any pytree).
    updates: the updates ``Δθ`` (``optax.apply_updates(params, updates)`` is the
      new point), a tree like `params`.
    grads: the gradients, a tree like `params`; None omits ``effective_lr``.

  Returns:
    A dict from ``"update_ratio/<path>"`` (and ``"effective_lr/<path>"``) to float32
    scalars, in the order of :func:`update_statistic_names`.

  Raises:
    ValueError: `updates` or `grads` has another tree structure than `params`.

  Example:
    >>> import jax.numpy as jnp
    >>> params = {"w": jnp.array([3.0, 4.0])}
    >>> grads = {"w": jnp.array([1.0, 0.0])}
    >>> stats = update_statistics(params, {"w": -0.1 * grads["w"]}, grads)
    >>> {k: round(float(v), 4) for k, v in stats.items()}
    {'update_ratio/w': 0.02, 'effective_lr/w': 0.1}

  References:
    You, Gitman, Ginsburg, *Large Batch Training of Convolutional Networks* (LARS),
    2017 (arXiv:1708.03888): per-layer ``‖θ‖/‖g‖`` ratios.
  """
  trees = {"updates": updates} if grads is None else {"updates": updates, "grads": grads}
  structure = jax.tree.structure(params)
  for name, tree in trees.items():
    if jax.tree.structure(tree) != structure:
      raise ValueError(f"update_statistics: {name} has tree structure {jax.tree.structure(tree)}"
                       f", params has tree structure {structure}")

  def norm(x):
    return jnp.sqrt(jnp.sum(jnp.square(jnp.asarray(x, jnp.float32))))

  def ratio(numerator, denominator):
    defined = denominator > 0
    return jnp.where(defined, numerator / jnp.where(defined, denominator, 1.0), jnp.nan)

  paths, param_leaves = flatten_with_paths(params)
  update_norms = [norm(u) for u in jax.tree.leaves(updates)]
  stats = {f"{UPDATE_RATIO}/{path}": ratio(u, norm(p))
           for path, p, u in zip(paths, param_leaves, update_norms, strict=True)}
  if grads is not None:
    stats.update({f"{EFFECTIVE_LR}/{path}": ratio(u, norm(g)) for path, g, u in
                  zip(paths, jax.tree.leaves(grads), update_norms, strict=True)})
  return stats


def accumulate_statistics(totals: tuple[dict, dict], stats: dict[str, jax.Array]
                          ) -> tuple[dict, dict]:
  """Adds one step's statistics to running (sums, counts), skipping non-finite values."""
  sums, counts = totals
  finite = {k: jnp.isfinite(v) for k, v in stats.items()}
  return ({k: sums[k] + jnp.where(finite[k], stats[k], 0.0) for k in sums},
          {k: counts[k] + finite[k].astype(jnp.int32) for k in counts})


def zero_statistics(names: list[str]) -> tuple[dict, dict]:
  return ({k: jnp.zeros([], jnp.float32) for k in names},
          {k: jnp.zeros([], jnp.int32) for k in names})


def mean_statistics(totals: tuple[dict, dict]) -> dict[str, jax.Array]:
  """Means of the accumulated statistics (NaN where no step defined one)."""
  sums, counts = totals
  return {k: jnp.where(counts[k] > 0, sums[k] / jnp.maximum(counts[k], 1), jnp.nan) for k in sums}
