"""Adam over many small leaves: the cost of passing arrays through ``jit``, and packing.

1M float32 parameters in 1000 leaves (500 matrices 50×30 and 500 vectors of
500). A jitted Adam step over the tree takes params, grads, m and v: 4000
arrays in and 3000 out, and the host work of passing each array (a few
microseconds) is most of the step; the arithmetic needs about 0.2 ms. Packing
(:mod:`optlab.optim.packed`) keeps the parameters in one buffer per dtype and
the optimizer's state on the buffers, so the step passes a handful of arrays.

Measured against: the same update on one 1M leaf (the arithmetic), and
PyTorch's ``torch.optim.Adam`` over the same 1000 tensors (``fused=True`` and
``foreach=True``) when torch is installed. ``packed_equal`` checks that the
packed step gives the tree step's numbers exactly.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import numpy as np

from optlab.benchmarks import _torch
from optlab.benchmarks._timing import best_time


def leaf_shapes(num_leaves: int = 1000, num_params: int = 1_000_000) -> list[tuple[int, ...]]:
  """Half matrices, half vectors, `num_params` in all (for the default sizes, exactly)."""
  per_leaf = num_params // num_leaves
  shapes: list[tuple[int, ...]] = []
  for i in range(num_leaves):
    if i % 2 == 0:
      rows = max(1, per_leaf * 3 // 2 // 30)
      shapes.append((rows, 30))
    else:
      shapes.append((max(1, per_leaf // 2),))
  return shapes


def make_tree(shapes: list[tuple[int, ...]], seed: int = 0) -> dict[str, object]:
  import jax.numpy as jnp

  rng = np.random.default_rng(seed)
  return {f"layer{i:04d}": jnp.asarray(rng.normal(size=s).astype(np.float32))
          for i, s in enumerate(shapes)}


def _jax_step(tx, params, grads) -> tuple[Callable[[], None], dict]:
  import jax
  import optax

  def step(params, state, grads):
    updates, state = tx.update(grads, state, params)
    return optax.apply_updates(params, updates), state

  step = jax.jit(step, donate_argnums=(0, 1))
  holder = {"params": jax.tree.map(lambda x: x.copy(), params), "grads": grads}
  holder["state"] = tx.init(holder["params"])

  def run():
    holder["params"], holder["state"] = step(holder["params"], holder["state"], holder["grads"])
    jax.block_until_ready(holder["params"])

  return run, holder


def _torch_step(shapes, *, fused: bool) -> Callable[[], None] | None:
  if not _torch.available():
    return None
  import torch

  device = _torch.device()
  params = [torch.nn.Parameter(torch.randn(s, device=device)) for s in shapes]
  for p in params:
    p.grad = torch.full_like(p, 1e-3)
  optimizer = torch.optim.Adam(params, lr=1e-3, fused=fused, foreach=not fused)
  return _torch.synchronized(optimizer.step)


def many_leaves(num_leaves: int = 1000, num_params: int = 1_000_000,
                repeats: int = 20, torch_baseline: bool = True) -> dict[str, float]:
  """Milliseconds per jitted Adam step: over the tree, packed, one leaf, and torch.

  Args:
    num_leaves: leaves of the tree.
    num_params: parameters in all.
    repeats: timed calls of each step (the best is kept).
    torch_baseline: also time ``torch.optim.Adam`` (fused and foreach), when installed.

  Returns:
    Milliseconds per step, the packed step's largest difference from the tree
    step, and the ratios.
  """
  import jax
  import optax

  from optlab import optim
  from optlab.optim.packed import Packing, packed

  shapes = leaf_shapes(num_leaves, num_params)
  params = make_tree(shapes)
  grads = jax.tree.map(lambda x: x * 1e-3 + 1e-4, make_tree(shapes, seed=1))
  packing = Packing.of(params)
  buffers, grad_buffers = packing.pack(params), packing.pack(grads)
  total = packing.num_params
  results: dict[str, float] = {"leaves": float(num_leaves), "params": float(total),
                               "load_1min": os.getloadavg()[0]}
  steps = {
      "optax_tree": _jax_step(optax.adam(1e-3), params, grads),
      "optlab_tree": _jax_step(optim.adam(1e-3), params, grads),
      "optax_packed": _jax_step(packed(optax.adam(1e-3), packing), buffers, grad_buffers),
      "optlab_packed": _jax_step(packed(optim.adam(1e-3), packing), buffers, grad_buffers),
      "optax_packed_per_leaf": _jax_step(packed(optax.adam(1e-3), packing, per_leaf=True),
                                         buffers, grad_buffers),
      "optax_one_leaf": _jax_step(optax.adam(1e-3), buffers[0], grad_buffers[0]),
  }
  for name, (run, _) in steps.items():
    results[f"{name}_ms"] = 1e3 * best_time(run, repeats=repeats, warmup=2)
  for fused in (True, False) if torch_baseline else ():
    run = _torch_step(shapes, fused=fused)
    if run is not None:
      name = "torch_fused" if fused else "torch_foreach"
      results[f"{name}_ms"] = 1e3 * best_time(run, repeats=repeats, warmup=2)
  # Same number of steps on both (warm-up included): the packed step must give the same bits.
  tree_params = steps["optax_tree"][1]["params"]
  packed_params = packing.unpack(steps["optax_packed"][1]["params"])
  difference = jax.tree.map(lambda a, b: float(np.max(np.abs(np.asarray(a) - np.asarray(b)))),
                            tree_params, packed_params)
  results["packed_max_abs_difference"] = max(jax.tree.leaves(difference))
  results["load_1min_end"] = os.getloadavg()[0]
  results["ratio_packed_speedup_vs_optax_tree"] = (
      results["optax_tree_ms"] / results["optax_packed_ms"])
  if "torch_fused_ms" in results:
    results["ratio_packed_speedup_vs_torch_fused"] = (
        results["torch_fused_ms"] / results["optax_packed_ms"])
  results["ratio_packed_over_one_leaf"] = results["optax_packed_ms"] / results["optax_one_leaf_ms"]
  return results
