"""First-step compile time per model and optimizer, and the persistent compilation cache.

The first call of a jitted step traces, lowers and compiles it; for an optimizer
over a tree, XLA compiles a few loops per leaf, so the time grows with the
number of leaves (measured reference on 2 cores: optax Adam over 1000 leaves
6.2 s, ``chain(clip_by_global_norm, adamw)`` 16 s). Packing the tree
(:mod:`optlab.optim.packed`) leaves a handful of loops whatever the number of
leaves. The cases: Adam and clip+AdamW over 100 and 1000 leaves (1M parameters
in all, as in ``many_leaves``), over the tree and packed, and the training step
of an MLP with 100 leaves (value and gradient of the cross-entropy, then
Adam) over its tree and packed.

The cases run in fresh child processes, three times: without a cache (the cold
compile times reported), then twice sharing a new cache directory
(:mod:`optlab._cache`): the first fills it, the second should load every
program from it (``cached_*``). ``second_process_new_cache_entries`` counts the
files the second process added (0: nothing recompiled).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

from optlab.benchmarks._child import run_child

CASES = ("adam", "clip_adamw")


def _optimizer(name: str):
  import optax

  if name == "adam":
    return optax.adam(1e-3)
  return optax.chain(optax.clip_by_global_norm(1.0), optax.adamw(1e-3, weight_decay=1e-4))


def _compile_seconds(fn, *args) -> tuple[float, float]:
  """(seconds to trace and lower, seconds in all) of the first call's compilation."""
  import jax

  start = time.perf_counter()
  lowered = jax.jit(fn, donate_argnums=(0, 1)).lower(*args)
  traced = time.perf_counter() - start
  lowered.compile()
  return traced, time.perf_counter() - start


def _record(results: dict[str, float], key: str, seconds: tuple[float, float]) -> None:
  results[f"{key}_trace_s"], results[f"{key}_s"] = seconds


def _optimizer_step(tx):
  import optax

  def step(params, state, grads):
    updates, state = tx.update(grads, state, params)
    return optax.apply_updates(params, updates), state

  return step


def _mlp_cases(hidden_layers: int) -> dict[str, float]:
  """The training step of an MLP (2 leaves per layer), over its tree and packed."""
  import jax
  import jax.numpy as jnp
  import optax
  from flax import nnx

  from optlab import models
  from optlab.optim.packed import Packing, packed
  from optlab.train.state import split_model
  from optlab.train.steps import cross_entropy

  model = models.MLP(16, [16] * hidden_layers, 4, rngs=nnx.Rngs(0))
  graphdef, _, params, rest = split_model(model)
  x = jax.ShapeDtypeStruct((32, 16), jnp.float32)
  y = jax.ShapeDtypeStruct((32,), jnp.int32)
  packing = Packing.of(params)

  def make_step(tx, unpack):
    def step(params, opt_state, x, y):
      def loss_fn(params):
        merged = nnx.merge(graphdef, unpack(params), rest, copy=True)
        return cross_entropy(merged(x), y)

      loss, grads = jax.value_and_grad(loss_fn)(params)
      updates, opt_state = tx.update(grads, opt_state, params)
      return optax.apply_updates(params, updates), opt_state, loss

    return step

  results = {"mlp_leaves": float(packing.num_leaves)}
  tx = optax.adam(1e-3)
  _record(results, "mlp_adam_tree", _compile_seconds(make_step(tx, lambda p: p), params,
                                                     tx.init(params), x, y))
  ptx = packed(tx, packing)
  buffers = packing.pack(params)
  _record(results, "mlp_adam_packed", _compile_seconds(make_step(ptx, packing.unpack), buffers,
                                                       ptx.init(buffers), x, y))
  return results


def measure(leaf_counts: tuple[int, ...], num_params: int, mlp_layers: int) -> dict[str, float]:
  """This process's compile times (seconds), for each case."""
  import jax

  from optlab.benchmarks.leaves import leaf_shapes
  from optlab.optim.packed import Packing, packed

  results: dict[str, float] = {}
  for count in leaf_counts:
    shapes = leaf_shapes(count, num_params)
    tree = {f"layer{i:04d}": jax.ShapeDtypeStruct(s, "float32") for i, s in enumerate(shapes)}
    packing = Packing.of(tree)
    buffers = packing.buffer_structs()
    for case in CASES:
      tx = _optimizer(case)
      _record(results, f"{case}_{count}_tree", _compile_seconds(
          _optimizer_step(tx), tree, jax.eval_shape(tx.init, tree), tree))
      ptx = packed(tx, packing)
      _record(results, f"{case}_{count}_packed", _compile_seconds(
          _optimizer_step(ptx), buffers, jax.eval_shape(ptx.init, buffers), buffers))
  if mlp_layers:
    results |= _mlp_cases(mlp_layers)
  return results


def _count_entries(directory: Path) -> int:
  return sum(1 for p in directory.rglob("*") if p.is_file() and not p.name.startswith("."))


def _child(cache_dir: Path | None, args: list[str]) -> tuple[dict[str, float], float]:
  start = time.perf_counter()
  result = run_child("optlab.benchmarks.compile_time", args, caller="compile_time",
                     env={"OPTLAB_CACHE_DIR": str(cache_dir) if cache_dir is not None else "off"},
                     drop=("PYTEST_CURRENT_TEST",))
  return result, time.perf_counter() - start


def compile_time(leaf_counts: tuple[int, ...] = (100, 1000), num_params: int = 1_000_000,
                 mlp_layers: int = 49) -> dict[str, float]:
  """Cold compile seconds per case (first process) and warm (second process, same cache).

  Args:
    leaf_counts: the numbers of leaves of the optimizer cases.
    num_params: parameters in each tree.
    mlp_layers: hidden layers of the MLP case (2 leaves each; 0 skips it).

  Returns:
    ``<case>_s`` (no cache; ``<case>_trace_s`` of it traces and lowers, which
    the cache cannot skip) and ``cached_<case>_s`` (from the cache) per case, the
    cache entry counts, and the ratios (cold tree over cold packed at the
    largest leaf count, and cold over cached).
  """
  args = [",".join(map(str, leaf_counts)), str(num_params), str(mlp_layers)]
  results: dict[str, float] = {"load_1min": os.getloadavg()[0]}
  cold, cold_wall = _child(None, args)
  with tempfile.TemporaryDirectory(prefix="optlab-compile-cache-") as tmp:
    cache_dir = Path(tmp)
    _, fill_wall = _child(cache_dir, args)
    entries = _count_entries(cache_dir)
    warm, warm_wall = _child(cache_dir, args)
    added = _count_entries(cache_dir) - entries
  results |= cold
  results |= {f"cached_{k}": v for k, v in warm.items()
              if k.endswith("_s") and not k.endswith("_trace_s")}
  results |= {"process_without_cache_s": cold_wall, "first_process_with_cache_s": fill_wall,
              "second_process_with_cache_s": warm_wall,
              "cache_entries": float(entries), "second_process_new_cache_entries": float(added),
              "load_1min_end": os.getloadavg()[0]}
  largest = max(leaf_counts)
  for case in CASES:
    results[f"ratio_{case}_{largest}_tree_over_packed"] = (
        cold[f"{case}_{largest}_tree_s"] / cold[f"{case}_{largest}_packed_s"])
  for case in CASES:
    key = f"{case}_{largest}_tree_s"
    results[f"ratio_{case}_{largest}_tree_cold_over_cached"] = cold[key] / warm[key]
  return results


if __name__ == "__main__":
  from optlab import _cache

  directory = _cache.configured_cache_dir()
  if directory is not None and _cache.enable(directory, min_compile_seconds=0.0) is None:
    raise SystemExit("compile_time: could not enable the compilation cache")
  counts = tuple(int(c) for c in sys.argv[1].split(",") if c)
  print(json.dumps(measure(counts, int(sys.argv[2]), int(sys.argv[3]))))
